//! Building the headers the packet path writes: the outer Ethernet, IP and UDP headers of
//! an SVR packet between waypoints, and the original headers an egress restores in front
//! of a carried payload. The checksums written are computed in full.

use std::fmt;
use std::net::IpAddr;

use super::FiveTuple;
use super::checksum::{self, protocol};
use super::parse::{ETHERNET_LEN, ETHERTYPE_IPV4, ETHERTYPE_IPV6, IPV4_LEN, IPV6_LEN, UDP_LEN};

/// Fields of the IP header that are written as given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpHeaderFields {
    /// Type of service or traffic class.
    pub tos: u8,
    /// TTL or hop limit.
    pub ttl: u8,
    /// IPv4 identification; ignored for IPv6.
    pub identification: u16,
    /// IPv4 don't-fragment flag; ignored for IPv6.
    pub dont_fragment: bool,
    /// IPv6 flow label; ignored for IPv4.
    pub flow_label: u32,
}

/// The link-layer addresses of a frame to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Macs {
    pub source: [u8; 6],
    pub destination: [u8; 6],
}

/// Length of the Ethernet and IP headers for `address`'s family.
pub fn ip_frame_header_len(address: IpAddr) -> usize {
    ETHERNET_LEN + if address.is_ipv4() { IPV4_LEN } else { IPV6_LEN }
}

/// Length of the outer Ethernet, IP and UDP headers of an SVR packet.
pub fn outer_header_len(source: IpAddr) -> usize {
    ip_frame_header_len(source) + UDP_LEN
}

/// Length of the headers an egress puts in front of a carried payload of `tuple`'s session:
/// Ethernet and IP, plus UDP for UDP sessions, whose carried payload is the UDP payload.
pub fn restored_header_len(tuple: &FiveTuple) -> usize {
    let udp = if tuple.protocol == protocol::UDP { UDP_LEN } else { 0 };
    ip_frame_header_len(tuple.source) + udp
}

/// Writes the outer headers of an SVR packet into `frame`, whose bytes after
/// [`outer_header_len`] already hold the SVR UDP payload.
pub fn emit_outer(
    frame: &mut [u8],
    macs: Macs,
    waypoints: &FiveTuple,
    fields: &IpHeaderFields,
) -> Result<(), BuildError> {
    let header_len = outer_header_len(waypoints.source);
    let udp_len = frame.len().saturating_sub(header_len - UDP_LEN);
    emit_ip_frame(frame, macs, waypoints, fields)?;
    let udp_start = header_len - UDP_LEN;
    let udp = &mut frame[udp_start..];
    udp[0..2].copy_from_slice(&waypoints.source_port.to_be_bytes());
    udp[2..4].copy_from_slice(&waypoints.destination_port.to_be_bytes());
    udp[4..6].copy_from_slice(&(udp_len as u16).to_be_bytes());
    checksum::fill_l4(waypoints.source, waypoints.destination, protocol::UDP, udp);
    Ok(())
}

/// Writes the original headers of `tuple` into `frame`, whose bytes after
/// [`restored_header_len`] already hold the carried payload. A UDP datagram gets a new
/// checksum, and any other message keeps the one it carries
/// ([`checksum::travels_with_message`]).
pub fn emit_restored(
    frame: &mut [u8],
    macs: Macs,
    tuple: &FiveTuple,
    fields: &IpHeaderFields,
) -> Result<(), BuildError> {
    emit_ip_frame(frame, macs, tuple, fields)?;
    let l4_start = ip_frame_header_len(tuple.source);
    let l4 = &mut frame[l4_start..];
    if tuple.protocol == protocol::UDP {
        let len = l4.len() as u16;
        l4[0..2].copy_from_slice(&tuple.source_port.to_be_bytes());
        l4[2..4].copy_from_slice(&tuple.destination_port.to_be_bytes());
        l4[4..6].copy_from_slice(&len.to_be_bytes());
        checksum::fill_l4(tuple.source, tuple.destination, tuple.protocol, l4);
    } else if !l4_header_fits(tuple.protocol, l4.len()) {
        return Err(BuildError::ShortMessage { protocol: tuple.protocol, len: l4.len() });
    }
    Ok(())
}

fn l4_header_fits(protocol: u8, len: usize) -> bool {
    match protocol {
        protocol::TCP => len >= 20,
        protocol::ICMP | protocol::ICMPV6 => len >= 8,
        _ => true,
    }
}

/// Writes Ethernet and IP headers; the IP payload is the rest of `frame`.
pub(super) fn emit_ip_frame(
    frame: &mut [u8],
    macs: Macs,
    tuple: &FiveTuple,
    fields: &IpHeaderFields,
) -> Result<(), BuildError> {
    let header_len = ip_frame_header_len(tuple.source);
    if frame.len() < header_len {
        return Err(BuildError::ShortBuffer { needed: header_len, available: frame.len() });
    }
    let ip_len = frame.len() - ETHERNET_LEN;
    frame[0..6].copy_from_slice(&macs.destination);
    frame[6..12].copy_from_slice(&macs.source);

    match (tuple.source, tuple.destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            let total_len = u16::try_from(ip_len)
                .map_err(|_| BuildError::TooLong { len: ip_len, max: usize::from(u16::MAX) })?;
            frame[12..14].copy_from_slice(&ETHERTYPE_IPV4.to_be_bytes());
            let ip = &mut frame[ETHERNET_LEN..ETHERNET_LEN + IPV4_LEN];
            ip[0] = 0x45;
            ip[1] = fields.tos;
            ip[2..4].copy_from_slice(&total_len.to_be_bytes());
            ip[4..6].copy_from_slice(&fields.identification.to_be_bytes());
            let flags: u16 = if fields.dont_fragment { 0x4000 } else { 0 };
            ip[6..8].copy_from_slice(&flags.to_be_bytes());
            ip[8] = fields.ttl;
            ip[9] = tuple.protocol;
            ip[10..12].fill(0);
            ip[12..16].copy_from_slice(&source.octets());
            ip[16..20].copy_from_slice(&destination.octets());
            let sum = checksum::ipv4_header(ip);
            ip[10..12].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(source), IpAddr::V6(destination)) => {
            let payload_len = ip_len - IPV6_LEN;
            let payload_len = u16::try_from(payload_len).map_err(|_| BuildError::TooLong {
                len: payload_len,
                max: usize::from(u16::MAX),
            })?;
            frame[12..14].copy_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
            let ip = &mut frame[ETHERNET_LEN..ETHERNET_LEN + IPV6_LEN];
            let word = (6u32 << 28) | (u32::from(fields.tos) << 20) | (fields.flow_label & 0xfffff);
            ip[0..4].copy_from_slice(&word.to_be_bytes());
            ip[4..6].copy_from_slice(&payload_len.to_be_bytes());
            ip[6] = tuple.protocol;
            ip[7] = fields.ttl;
            ip[8..24].copy_from_slice(&source.octets());
            ip[24..40].copy_from_slice(&destination.octets());
        }
        _ => return Err(BuildError::FamilyMismatch),
    }
    Ok(())
}

/// Why headers could not be written. These are local faults: the caller sized the frame
/// or picked the addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum BuildError {
    /// The frame is shorter than the headers.
    ShortBuffer { needed: usize, available: usize },
    /// The IP packet would not fit its 16-bit length field.
    TooLong { len: usize, max: usize },
    /// Source and destination are of different address families.
    FamilyMismatch,
    /// A carried TCP or ICMP message shorter than its header.
    ShortMessage { protocol: u8, len: usize },
}

impl fmt::Display for BuildError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            BuildError::ShortBuffer { needed, available } => {
                write!(f, "frame of {available} bytes cannot hold {needed} bytes of headers")
            }
            BuildError::TooLong { len, max } => {
                write!(f, "ip packet of {len} bytes exceeds the maximum of {max}")
            }
            BuildError::FamilyMismatch => {
                f.write_str("source and destination addresses are of different families")
            }
            BuildError::ShortMessage { protocol, len } => {
                write!(
                    f,
                    "carried protocol {protocol} message of {len} bytes is shorter than its header"
                )
            }
        }
    }
}

impl std::error::Error for BuildError {}
