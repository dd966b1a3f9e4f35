//! Parsing of Ethernet frames carrying IPv4 or IPv6 and UDP, TCP, ICMP or another
//! protocol, into the offsets and fields the packet path needs. Every malformed case is a
//! [`ParseError`]; nothing here panics on any input.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::FiveTuple;
use super::checksum::{self, protocol};

/// Length of an Ethernet II header.
pub const ETHERNET_LEN: usize = 14;
/// Length of an IPv4 header without options.
pub const IPV4_LEN: usize = 20;
/// Length of the IPv6 fixed header.
pub const IPV6_LEN: usize = 40;
/// Length of a UDP header.
pub const UDP_LEN: usize = 8;
/// EtherType of IPv4.
pub const ETHERTYPE_IPV4: u16 = 0x0800;
/// EtherType of IPv6.
pub const ETHERTYPE_IPV6: u16 = 0x86dd;

/// ICMP echo request and reply types, whose identifier stands in for a port.
const ICMP_ECHO_TYPES: [u8; 2] = [0, 8];
const ICMPV6_ECHO_TYPES: [u8; 2] = [128, 129];

/// The IP header fields that are not in the 5-tuple and must cross to the egress.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IpFields {
    /// IPv4: type of service, identification, the don't-fragment flag and TTL.
    V4 { tos: u8, identification: u16, dont_fragment: bool, ttl: u8 },
    /// IPv6: traffic class, flow label and hop limit.
    V6 { traffic_class: u8, flow_label: u32, hop_limit: u8 },
}

impl IpFields {
    /// The TTL or hop limit.
    pub fn ttl(&self) -> u8 {
        match *self {
            IpFields::V4 { ttl, .. } => ttl,
            IpFields::V6 { hop_limit, .. } => hop_limit,
        }
    }

    /// The type of service or traffic class byte (DSCP and ECN).
    pub fn tos(&self) -> u8 {
        match *self {
            IpFields::V4 { tos, .. } => tos,
            IpFields::V6 { traffic_class, .. } => traffic_class,
        }
    }
}

/// A parsed frame: where each layer starts and the fields read from it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ParsedFrame {
    /// Destination MAC address.
    pub destination_mac: [u8; 6],
    /// Source MAC address.
    pub source_mac: [u8; 6],
    /// The 5-tuple; ports are zero for protocols without them, and ICMP echo uses its
    /// identifier as both ports.
    pub tuple: FiveTuple,
    /// The IP header fields outside the tuple.
    pub ip: IpFields,
    /// Offset of the L4 message (after the IP header and, for IPv6, any extension headers
    /// it does not parse, which stay in the message).
    pub l4_start: usize,
    /// Offset of the UDP payload, or `l4_start` for other protocols.
    pub payload_start: usize,
    /// End of the IP packet; Ethernet padding after it is ignored.
    pub end: usize,
}

impl ParsedFrame {
    /// The bytes an SVR packet carries for this frame: the UDP payload for UDP, the whole
    /// L4 message otherwise.
    pub fn carried(&self) -> std::ops::Range<usize> {
        self.payload_start..self.end
    }
}

/// Parses an Ethernet frame with an IPv4 or IPv6 packet.
pub fn parse_frame(frame: &[u8]) -> Result<ParsedFrame, ParseError> {
    if frame.len() < ETHERNET_LEN {
        return Err(ParseError::Truncated { layer: Layer::Ethernet, len: frame.len() });
    }
    let destination_mac = mac(&frame[0..6]);
    let source_mac = mac(&frame[6..12]);
    let ethertype = u16::from_be_bytes([frame[12], frame[13]]);

    let ip = &frame[ETHERNET_LEN..];
    let (source, destination, protocol, fields, header_len, ip_len) = match ethertype {
        ETHERTYPE_IPV4 => parse_ipv4(ip)?,
        ETHERTYPE_IPV6 => parse_ipv6(ip)?,
        other => return Err(ParseError::UnsupportedEtherType { ethertype: other }),
    };

    let l4_start = ETHERNET_LEN + header_len;
    let end = ETHERNET_LEN + ip_len;
    let l4 = &frame[l4_start..end];
    let (source_port, destination_port, payload_offset) = parse_l4(protocol, l4)?;

    Ok(ParsedFrame {
        destination_mac,
        source_mac,
        tuple: FiveTuple { source, destination, source_port, destination_port, protocol },
        ip: fields,
        l4_start,
        payload_start: l4_start + payload_offset,
        end,
    })
}

/// Parses a frame received on a WAN port, which must be UDP to carry SVR.
pub fn parse_wan_frame(frame: &[u8]) -> Result<ParsedFrame, ParseError> {
    let parsed = parse_frame(frame)?;
    if parsed.tuple.protocol != protocol::UDP {
        return Err(ParseError::NotUdp { protocol: parsed.tuple.protocol });
    }
    Ok(parsed)
}

type IpParts = (IpAddr, IpAddr, u8, IpFields, usize, usize);

/// IPv4 header (RFC 791 section 3.1):
///
/// ```text
///  0                   1                   2                   3
/// +-------+-------+---------------+-------------------------------+
/// |Version|  IHL  |Type of Service|          Total Length         |
/// +-------+-------+---------------+-----+-------------------------+
/// |         Identification        |Flags|      Fragment Offset    |
/// +---------------+---------------+-----+-------------------------+
/// |  Time to Live |    Protocol   |         Header Checksum       |
/// +---------------+---------------+-------------------------------+
/// |                 Source and Destination Address                |
/// +---------------------------------------------------------------+
/// ```
fn parse_ipv4(ip: &[u8]) -> Result<IpParts, ParseError> {
    if ip.len() < IPV4_LEN {
        return Err(ParseError::Truncated { layer: Layer::Ipv4, len: ip.len() });
    }
    let version = ip[0] >> 4;
    if version != 4 {
        return Err(ParseError::IpVersionMismatch { version, ethertype: ETHERTYPE_IPV4 });
    }
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    if header_len < IPV4_LEN {
        return Err(ParseError::Ipv4HeaderLength { header_len });
    }
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if total_len < header_len || total_len > ip.len() {
        return Err(ParseError::IpLength { declared: total_len, available: ip.len() });
    }
    if checksum::finish(checksum::accumulate(0, &ip[..header_len])) != 0 {
        return Err(ParseError::Ipv4Checksum);
    }
    let flags_offset = u16::from_be_bytes([ip[6], ip[7]]);
    // More-fragments set or a non-zero offset: a fragment, whose ports may be missing.
    if flags_offset & 0x3fff != 0 {
        return Err(ParseError::Fragment);
    }

    let fields = IpFields::V4 {
        tos: ip[1],
        identification: u16::from_be_bytes([ip[4], ip[5]]),
        dont_fragment: flags_offset & 0x4000 != 0,
        ttl: ip[8],
    };
    let source = IpAddr::V4(Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]));
    let destination = IpAddr::V4(Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]));
    Ok((source, destination, ip[9], fields, header_len, total_len))
}

/// IPv6 fixed header (RFC 8200 section 3): version, traffic class, flow label, payload
/// length, next header, hop limit, then source and destination. Extension headers are not
/// parsed: the next header value is the protocol and they travel inside the L4 message.
fn parse_ipv6(ip: &[u8]) -> Result<IpParts, ParseError> {
    if ip.len() < IPV6_LEN {
        return Err(ParseError::Truncated { layer: Layer::Ipv6, len: ip.len() });
    }
    let version = ip[0] >> 4;
    if version != 6 {
        return Err(ParseError::IpVersionMismatch { version, ethertype: ETHERTYPE_IPV6 });
    }
    let payload_len = usize::from(u16::from_be_bytes([ip[4], ip[5]]));
    let total_len = IPV6_LEN + payload_len;
    if total_len > ip.len() {
        return Err(ParseError::IpLength { declared: total_len, available: ip.len() });
    }
    let word = u32::from_be_bytes([ip[0], ip[1], ip[2], ip[3]]);
    let fields = IpFields::V6 {
        traffic_class: (word >> 20) as u8,
        flow_label: word & 0x000f_ffff,
        hop_limit: ip[7],
    };
    let mut source = [0u8; 16];
    let mut destination = [0u8; 16];
    source.copy_from_slice(&ip[8..24]);
    destination.copy_from_slice(&ip[24..40]);
    let (source, destination) =
        (IpAddr::V6(Ipv6Addr::from(source)), IpAddr::V6(Ipv6Addr::from(destination)));
    Ok((source, destination, ip[6], fields, IPV6_LEN, total_len))
}

/// Reads the ports and the offset of the payload that SVR carries.
fn parse_l4(protocol: u8, l4: &[u8]) -> Result<(u16, u16, usize), ParseError> {
    match protocol {
        protocol::UDP => {
            if l4.len() < UDP_LEN {
                return Err(ParseError::Truncated { layer: Layer::Udp, len: l4.len() });
            }
            let declared = usize::from(u16::from_be_bytes([l4[4], l4[5]]));
            if declared != l4.len() {
                return Err(ParseError::UdpLength { declared, available: l4.len() });
            }
            Ok((be16(l4, 0), be16(l4, 2), UDP_LEN))
        }
        protocol::TCP => {
            if l4.len() < 20 {
                return Err(ParseError::Truncated { layer: Layer::Tcp, len: l4.len() });
            }
            let header_len = usize::from(l4[12] >> 4) * 4;
            if header_len < 20 || header_len > l4.len() {
                return Err(ParseError::TcpHeaderLength { header_len, available: l4.len() });
            }
            Ok((be16(l4, 0), be16(l4, 2), 0))
        }
        protocol::ICMP | protocol::ICMPV6 => {
            if l4.len() < 8 {
                return Err(ParseError::Truncated { layer: Layer::Icmp, len: l4.len() });
            }
            let echo = if protocol == protocol::ICMP { ICMP_ECHO_TYPES } else { ICMPV6_ECHO_TYPES };
            if echo.contains(&l4[0]) {
                let identifier = be16(l4, 4);
                Ok((identifier, identifier, 0))
            } else {
                Ok((0, 0, 0))
            }
        }
        _ => Ok((0, 0, 0)),
    }
}

fn be16(bytes: &[u8], at: usize) -> u16 {
    u16::from_be_bytes([bytes[at], bytes[at + 1]])
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut out = [0u8; 6];
    out.copy_from_slice(&bytes[..6]);
    out
}

/// A protocol layer, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Layer {
    Ethernet,
    Ipv4,
    Ipv6,
    Udp,
    Tcp,
    Icmp,
}

impl fmt::Display for Layer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Layer::Ethernet => "ethernet",
            Layer::Ipv4 => "ipv4",
            Layer::Ipv6 => "ipv6",
            Layer::Udp => "udp",
            Layer::Tcp => "tcp",
            Layer::Icmp => "icmp",
        })
    }
}

/// Why a frame could not be parsed. Each ends in the malformed drop counter.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// Fewer bytes than the layer's fixed header.
    Truncated { layer: Layer, len: usize },
    /// Neither IPv4 nor IPv6.
    UnsupportedEtherType { ethertype: u16 },
    /// The IP version field disagrees with the EtherType.
    IpVersionMismatch { version: u8, ethertype: u16 },
    /// An IPv4 header length below 20 bytes.
    Ipv4HeaderLength { header_len: usize },
    /// The IP length field is shorter than the header or longer than the frame.
    IpLength { declared: usize, available: usize },
    /// The IPv4 header checksum is wrong.
    Ipv4Checksum,
    /// An IPv4 fragment.
    Fragment,
    /// The UDP length field disagrees with the IP payload length.
    UdpLength { declared: usize, available: usize },
    /// A TCP data offset below 20 bytes or past the segment.
    TcpHeaderLength { header_len: usize, available: usize },
    /// A frame on a WAN port that is not UDP.
    NotUdp { protocol: u8 },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ParseError::Truncated { layer, len } => {
                write!(f, "{layer} header truncated: {len} bytes left")
            }
            ParseError::UnsupportedEtherType { ethertype } => {
                write!(f, "unsupported ethertype {ethertype:#06x}, expected ipv4 or ipv6")
            }
            ParseError::IpVersionMismatch { version, ethertype } => {
                write!(f, "ip version {version} under ethertype {ethertype:#06x}")
            }
            ParseError::Ipv4HeaderLength { header_len } => {
                write!(f, "ipv4 header length {header_len}, expected at least 20")
            }
            ParseError::IpLength { declared, available } => {
                write!(f, "ip length {declared} invalid for {available} bytes of packet")
            }
            ParseError::Ipv4Checksum => f.write_str("invalid ipv4 header checksum"),
            ParseError::Fragment => f.write_str("ipv4 fragment, which needs reassembly first"),
            ParseError::UdpLength { declared, available } => {
                write!(f, "udp length {declared}, but the ip payload is {available} bytes")
            }
            ParseError::TcpHeaderLength { header_len, available } => {
                write!(f, "tcp header length {header_len} invalid for a {available}-byte segment")
            }
            ParseError::NotUdp { protocol } => {
                write!(f, "ip protocol {protocol} on a wan port, expected udp (17)")
            }
        }
    }
}

impl std::error::Error for ParseError {}

#[cfg(test)]
mod tests {
    use super::*;

    /// An Ethernet + IPv4 + UDP frame from 10.0.0.1:1000 to 10.0.0.2:2000.
    fn udp_frame(payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 2, 2, 0, 0, 0, 0, 1, 0x08, 0x00];
        let total = (20 + 8 + payload.len()) as u16;
        let mut ip = vec![0x45, 0, 0, 0, 0, 1, 0x40, 0, 64, 17, 0, 0, 10, 0, 0, 1, 10, 0, 0, 2];
        ip[2..4].copy_from_slice(&total.to_be_bytes());
        let sum = checksum::ipv4_header(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(&1000u16.to_be_bytes());
        frame.extend_from_slice(&2000u16.to_be_bytes());
        frame.extend_from_slice(&((8 + payload.len()) as u16).to_be_bytes());
        frame.extend_from_slice(&[0, 0]);
        frame.extend_from_slice(payload);
        frame
    }

    /// Rewrites the IPv4 header checksum after a test changed the header.
    fn fix_ip_checksum(frame: &mut [u8]) {
        frame[24..26].fill(0);
        let sum = checksum::ipv4_header(&frame[14..34]);
        frame[24..26].copy_from_slice(&sum.to_be_bytes());
    }

    #[test]
    fn udp_frame_parses() {
        let frame = udp_frame(b"data");
        let parsed = parse_frame(&frame).unwrap();
        assert_eq!(parsed.tuple.source_port, 1000);
        assert_eq!(parsed.tuple.destination_port, 2000);
        assert_eq!(parsed.tuple.protocol, 17);
        assert_eq!(&frame[parsed.carried()], b"data");
        assert_eq!(parsed.ip.ttl(), 64);
    }

    #[test]
    fn ethernet_padding_ignored() {
        let mut frame = udp_frame(b"x");
        frame.extend_from_slice(&[0; 20]);
        let parsed = parse_frame(&frame).unwrap();
        assert_eq!(&frame[parsed.carried()], b"x");
    }

    #[test]
    fn error_truncated() {
        assert_eq!(
            parse_frame(&[0; 10]),
            Err(ParseError::Truncated { layer: Layer::Ethernet, len: 10 })
        );
    }

    #[test]
    fn error_unsupported_ethertype() {
        let mut frame = udp_frame(b"");
        frame[12..14].copy_from_slice(&[0x08, 0x06]);
        assert_eq!(
            parse_frame(&frame),
            Err(ParseError::UnsupportedEtherType { ethertype: 0x0806 })
        );
    }

    #[test]
    fn error_ip_version_mismatch() {
        let mut frame = udp_frame(b"");
        frame[14] = 0x65;
        assert_eq!(
            parse_frame(&frame),
            Err(ParseError::IpVersionMismatch { version: 6, ethertype: ETHERTYPE_IPV4 })
        );
    }

    #[test]
    fn error_ipv4_header_length() {
        let mut frame = udp_frame(b"");
        frame[14] = 0x44;
        assert_eq!(parse_frame(&frame), Err(ParseError::Ipv4HeaderLength { header_len: 16 }));
    }

    #[test]
    fn error_ip_length() {
        let mut frame = udp_frame(b"abc");
        frame[16..18].copy_from_slice(&200u16.to_be_bytes());
        fix_ip_checksum(&mut frame);
        assert_eq!(parse_frame(&frame), Err(ParseError::IpLength { declared: 200, available: 31 }));
    }

    #[test]
    fn error_ipv4_checksum() {
        let mut frame = udp_frame(b"");
        frame[22] = 1;
        assert_eq!(parse_frame(&frame), Err(ParseError::Ipv4Checksum));
    }

    #[test]
    fn error_fragment() {
        let mut frame = udp_frame(b"");
        frame[20] = 0x20;
        fix_ip_checksum(&mut frame);
        assert_eq!(parse_frame(&frame), Err(ParseError::Fragment));
    }

    #[test]
    fn error_udp_length() {
        let mut frame = udp_frame(b"abc");
        frame[38..40].copy_from_slice(&9u16.to_be_bytes());
        assert_eq!(parse_frame(&frame), Err(ParseError::UdpLength { declared: 9, available: 11 }));
    }

    #[test]
    fn error_tcp_header_length() {
        let mut frame = udp_frame(&[0; 12]);
        frame[23] = 6;
        frame[34 + 12] = 0x30;
        fix_ip_checksum(&mut frame);
        assert_eq!(
            parse_frame(&frame),
            Err(ParseError::TcpHeaderLength { header_len: 12, available: 20 })
        );
    }

    #[test]
    fn error_not_udp() {
        let mut frame = udp_frame(&[0; 12]);
        frame[23] = 6;
        frame[34 + 12] = 0x50;
        fix_ip_checksum(&mut frame);
        let error = parse_wan_frame(&frame).unwrap_err();
        assert_eq!(error, ParseError::NotUdp { protocol: 6 });
        assert_eq!(error.to_string(), "ip protocol 6 on a wan port, expected udp (17)");
    }

    #[test]
    fn icmp_echo_uses_identifier() {
        let mut frame = udp_frame(&[]);
        frame[23] = 1;
        frame.truncate(34);
        frame.extend_from_slice(&[8, 0, 0, 0, 0xab, 0xcd, 0, 1]);
        frame[16..18].copy_from_slice(&28u16.to_be_bytes());
        fix_ip_checksum(&mut frame);
        let parsed = parse_frame(&frame).unwrap();
        assert_eq!((parsed.tuple.source_port, parsed.tuple.destination_port), (0xabcd, 0xabcd));
        assert_eq!(parsed.carried(), 34..42);
    }
}
