//! The wire formats of neighbour resolution on Ethernet: ARP for IPv4 (RFC 826) and the
//! neighbour solicitation and advertisement messages of IPv6 neighbour discovery
//! (RFC 4861 section 4.3 and 4.4), parsed from and written into whole frames.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use svr_dataplane::forward::ETHERTYPE_ARP;
use svr_dataplane::forward::checksum::{self, protocol};
use svr_dataplane::forward::headers::Macs;
use svr_dataplane::forward::parse::{ETHERNET_LEN, ETHERTYPE_IPV6, IPV6_LEN, parse_frame};

/// The broadcast MAC address.
pub const BROADCAST: [u8; 6] = [0xff; 6];

/// Length of an ARP packet for Ethernet and IPv4.
const ARP_LEN: usize = 28;

/// ICMPv6 type of a neighbour solicitation.
const NEIGHBOUR_SOLICITATION: u8 = 135;
/// ICMPv6 type of a neighbour advertisement.
const NEIGHBOUR_ADVERTISEMENT: u8 = 136;
/// Length of a solicitation or advertisement before its options: type, code, checksum,
/// four bytes of flags or reserved, and the target address.
const NDP_FIXED_LEN: usize = 24;
/// Option type of the source link-layer address.
const SOURCE_LINK_ADDRESS: u8 = 1;
/// Option type of the target link-layer address.
const TARGET_LINK_ADDRESS: u8 = 2;
/// Hop limit every neighbour discovery message is sent with, and the only one accepted
/// (RFC 4861 section 7.1.1), which proves it was not forwarded by a router.
const NDP_HOP_LIMIT: u8 = 255;

/// Flags of a neighbour advertisement (RFC 4861 section 4.4).
const FLAG_ROUTER: u8 = 0x80;
const FLAG_SOLICITED: u8 = 0x40;
const FLAG_OVERRIDE: u8 = 0x20;

/// What a received frame asks or tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message {
    /// Who has `target`? Sent by `sender` from `sender_mac`. For IPv6 the sender may be
    /// the unspecified address (duplicate address detection), and the link-layer address
    /// is that of the option, or the frame's source when the option is absent.
    Request { sender: IpAddr, sender_mac: Option<[u8; 6]>, target: IpAddr },
    /// `target` is at `target_mac`.
    Reply { target: IpAddr, target_mac: [u8; 6], solicited: bool },
}

/// Why a frame is not a usable ARP or neighbour discovery message.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum WireError {
    /// Shorter than its fixed part.
    Truncated { len: usize },
    /// An ARP packet for another hardware or protocol type, or with another operation.
    UnsupportedArp { hardware: u16, protocol: u16, operation: u16 },
    /// An ICMPv6 message that is not a solicitation or advertisement with code 0.
    NotNeighbourDiscovery { kind: u8, code: u8 },
    /// A neighbour discovery message that crossed a router.
    HopLimit { hop_limit: u8 },
    /// The ICMPv6 checksum does not verify.
    Checksum,
    /// An option of length zero, or one that runs past the message.
    BadOption,
    /// A multicast or broadcast link-layer address, or a multicast target.
    BadAddress,
    /// Neither ARP nor IPv6.
    Other,
}

impl fmt::Display for WireError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WireError::Truncated { len } => write!(f, "truncated at {len} bytes"),
            WireError::UnsupportedArp { hardware, protocol, operation } => write!(
                f,
                "unsupported arp: hardware type {hardware}, protocol {protocol:#06x}, \
                 operation {operation}"
            ),
            WireError::NotNeighbourDiscovery { kind, code } => {
                write!(f, "icmpv6 type {kind} code {code} is not neighbour discovery")
            }
            WireError::HopLimit { hop_limit } => {
                write!(f, "hop limit {hop_limit}, expected 255")
            }
            WireError::Checksum => f.write_str("icmpv6 checksum does not verify"),
            WireError::BadOption => f.write_str("malformed option"),
            WireError::BadAddress => f.write_str("multicast or broadcast address"),
            WireError::Other => f.write_str("neither arp nor ipv6"),
        }
    }
}

impl std::error::Error for WireError {}

/// Parses a received ARP or neighbour discovery frame.
pub fn parse(frame: &[u8]) -> Result<Message, WireError> {
    if frame.len() < ETHERNET_LEN {
        return Err(WireError::Truncated { len: frame.len() });
    }
    if u16::from_be_bytes([frame[12], frame[13]]) == ETHERTYPE_ARP {
        return parse_arp(&frame[ETHERNET_LEN..]);
    }
    parse_ndp(frame)
}

/// ARP packet for Ethernet and IPv4 (RFC 826):
///
/// ```text
///  hardware type (1) | protocol type (0x0800) | hlen 6 | plen 4 | operation
///  sender MAC (6) | sender IPv4 (4) | target MAC (6) | target IPv4 (4)
/// ```
fn parse_arp(packet: &[u8]) -> Result<Message, WireError> {
    if packet.len() < ARP_LEN {
        return Err(WireError::Truncated { len: ETHERNET_LEN + packet.len() });
    }
    let hardware = u16::from_be_bytes([packet[0], packet[1]]);
    let protocol = u16::from_be_bytes([packet[2], packet[3]]);
    let operation = u16::from_be_bytes([packet[6], packet[7]]);
    let lengths_ok = packet[4] == 6 && packet[5] == 4;
    if hardware != 1 || protocol != 0x0800 || !lengths_ok || !(1..=2).contains(&operation) {
        return Err(WireError::UnsupportedArp { hardware, protocol, operation });
    }
    let sender_mac = mac(&packet[8..14]);
    if is_group(sender_mac) {
        return Err(WireError::BadAddress);
    }
    let sender = IpAddr::V4(Ipv4Addr::new(packet[14], packet[15], packet[16], packet[17]));
    let target = IpAddr::V4(Ipv4Addr::new(packet[24], packet[25], packet[26], packet[27]));
    Ok(match operation {
        1 => Message::Request { sender, sender_mac: Some(sender_mac), target },
        _ => Message::Reply { target: sender, target_mac: sender_mac, solicited: true },
    })
}

fn parse_ndp(frame: &[u8]) -> Result<Message, WireError> {
    let parsed = parse_frame(frame).map_err(|_| WireError::Other)?;
    let tuple = parsed.tuple;
    let (IpAddr::V6(_), IpAddr::V6(destination)) = (tuple.source, tuple.destination) else {
        return Err(WireError::Other);
    };
    // Extension headers would leave the message elsewhere; neighbour discovery has none.
    if tuple.protocol != protocol::ICMPV6 || parsed.l4_start != ETHERNET_LEN + IPV6_LEN {
        return Err(WireError::Other);
    }
    let message = &frame[parsed.l4_start..parsed.end];
    if message.len() < NDP_FIXED_LEN {
        return Err(WireError::Truncated { len: parsed.end });
    }
    let (kind, code) = (message[0], message[1]);
    if !matches!(kind, NEIGHBOUR_SOLICITATION | NEIGHBOUR_ADVERTISEMENT) || code != 0 {
        return Err(WireError::NotNeighbourDiscovery { kind, code });
    }
    if parsed.ip.ttl() != NDP_HOP_LIMIT {
        return Err(WireError::HopLimit { hop_limit: parsed.ip.ttl() });
    }
    if !checksum::verify_l4(tuple.source, tuple.destination, protocol::ICMPV6, message) {
        return Err(WireError::Checksum);
    }
    let target = ipv6(&message[8..24]);
    if target.is_multicast() {
        return Err(WireError::BadAddress);
    }
    let wanted =
        if kind == NEIGHBOUR_SOLICITATION { SOURCE_LINK_ADDRESS } else { TARGET_LINK_ADDRESS };
    let option = link_address_option(&message[NDP_FIXED_LEN..], wanted)?;
    if option.is_some_and(is_group) {
        return Err(WireError::BadAddress);
    }

    if kind == NEIGHBOUR_SOLICITATION {
        let sender = tuple.source;
        // RFC 4861 section 7.1.1: a solicitation from the unspecified address (duplicate
        // address detection) must go to a solicited-node address and carry no source
        // link-layer address.
        if sender.is_unspecified() && (option.is_some() || !destination.is_multicast()) {
            return Err(WireError::BadOption);
        }
        let fallback = (!sender.is_unspecified()).then_some(parsed.source_mac);
        return Ok(Message::Request {
            sender,
            sender_mac: option.or(fallback),
            target: IpAddr::V6(target),
        });
    }
    let solicited = message[4] & FLAG_SOLICITED != 0;
    // RFC 4861 section 7.1.2: a solicited advertisement must not go to a multicast address.
    if solicited && destination.is_multicast() {
        return Err(WireError::BadAddress);
    }
    Ok(Message::Reply {
        target: IpAddr::V6(target),
        target_mac: option.unwrap_or(parsed.source_mac),
        solicited,
    })
}

/// Returns the link-layer address of the first option of type `wanted`, checking that
/// every option is well formed.
fn link_address_option(mut options: &[u8], wanted: u8) -> Result<Option<[u8; 6]>, WireError> {
    let mut found = None;
    while !options.is_empty() {
        if options.len() < 2 {
            return Err(WireError::BadOption);
        }
        let len = usize::from(options[1]) * 8;
        if len == 0 || len > options.len() {
            return Err(WireError::BadOption);
        }
        if options[0] == wanted && found.is_none() && len >= 8 {
            found = Some(mac(&options[2..8]));
        }
        options = &options[len..];
    }
    Ok(found)
}

/// Writes an ARP request from `source` (`source_mac`) for `target`: broadcast, or sent to
/// `known` alone to check an entry (RFC 1122 section 2.3.2.1).
pub fn arp_request(
    source_mac: [u8; 6],
    source: Ipv4Addr,
    target: Ipv4Addr,
    known: Option<[u8; 6]>,
) -> Vec<u8> {
    let macs = Macs { source: source_mac, destination: known.unwrap_or(BROADCAST) };
    arp_frame(1, macs, source, [0; 6], target)
}

/// Writes the ARP reply of `our_mac` for `our_address` to a request from `asker`.
pub fn arp_reply(
    our_mac: [u8; 6],
    our_address: Ipv4Addr,
    asker_mac: [u8; 6],
    asker: Ipv4Addr,
) -> Vec<u8> {
    arp_frame(2, Macs { source: our_mac, destination: asker_mac }, our_address, asker_mac, asker)
}

fn arp_frame(
    operation: u16,
    macs: Macs,
    sender: Ipv4Addr,
    target_mac: [u8; 6],
    target: Ipv4Addr,
) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETHERNET_LEN + ARP_LEN);
    frame.extend_from_slice(&macs.destination);
    frame.extend_from_slice(&macs.source);
    frame.extend_from_slice(&ETHERTYPE_ARP.to_be_bytes());
    frame.extend_from_slice(&[0, 1, 0x08, 0x00, 6, 4]);
    frame.extend_from_slice(&operation.to_be_bytes());
    frame.extend_from_slice(&macs.source);
    frame.extend_from_slice(&sender.octets());
    frame.extend_from_slice(&target_mac);
    frame.extend_from_slice(&target.octets());
    frame
}

/// Writes a neighbour solicitation from `source` (`source_mac`) for `target`: to the
/// target's solicited-node multicast address, or to the target at `known` alone to check
/// an entry (RFC 4861 section 7.3.3).
pub fn neighbour_solicitation(
    source_mac: [u8; 6],
    source: Ipv6Addr,
    target: Ipv6Addr,
    known: Option<[u8; 6]>,
) -> Vec<u8> {
    let (destination, destination_mac) = match known {
        Some(mac) => (target, mac),
        None => {
            let group = solicited_node(target);
            let o = group.octets();
            (group, [0x33, 0x33, o[12], o[13], o[14], o[15]])
        }
    };
    let mut body = vec![NEIGHBOUR_SOLICITATION, 0, 0, 0, 0, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[SOURCE_LINK_ADDRESS, 1]);
    body.extend_from_slice(&source_mac);
    let macs = Macs { source: source_mac, destination: destination_mac };
    icmpv6_frame(macs, source, destination, body)
}

/// Writes the solicited advertisement of `target` at `our_mac` to `asker` (`asker_mac`),
/// with the router flag set. A solicitation from the unspecified address is answered to
/// the all-nodes address, unsolicited (RFC 4861 section 7.2.4).
pub fn neighbour_advertisement(
    our_mac: [u8; 6],
    target: Ipv6Addr,
    asker_mac: Option<[u8; 6]>,
    asker: Ipv6Addr,
) -> Vec<u8> {
    let (destination, destination_mac, solicited) = match asker_mac {
        Some(mac) if !asker.is_unspecified() => (asker, mac, FLAG_SOLICITED),
        _ => (Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1), [0x33, 0x33, 0, 0, 0, 1], 0),
    };
    let flags = FLAG_ROUTER | solicited | FLAG_OVERRIDE;
    let mut body = vec![NEIGHBOUR_ADVERTISEMENT, 0, 0, 0, flags, 0, 0, 0];
    body.extend_from_slice(&target.octets());
    body.extend_from_slice(&[TARGET_LINK_ADDRESS, 1]);
    body.extend_from_slice(&our_mac);
    icmpv6_frame(Macs { source: our_mac, destination: destination_mac }, target, destination, body)
}

/// Returns the solicited-node multicast address of `address` (RFC 4291 section 2.7.1).
pub fn solicited_node(address: Ipv6Addr) -> Ipv6Addr {
    let o = address.octets();
    Ipv6Addr::from([0xff, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0xff, o[13], o[14], o[15]])
}

/// Wraps an ICMPv6 message in Ethernet and IPv6 with hop limit 255 and fills its checksum.
fn icmpv6_frame(macs: Macs, source: Ipv6Addr, destination: Ipv6Addr, body: Vec<u8>) -> Vec<u8> {
    let mut frame = Vec::with_capacity(ETHERNET_LEN + IPV6_LEN + body.len());
    frame.extend_from_slice(&macs.destination);
    frame.extend_from_slice(&macs.source);
    frame.extend_from_slice(&ETHERTYPE_IPV6.to_be_bytes());
    // Version 6, traffic class 0, flow label 0, then the payload length, which for these
    // messages of at most 32 bytes fits 16 bits.
    frame.extend_from_slice(&[0x60, 0, 0, 0]);
    frame.extend_from_slice(&(body.len() as u16).to_be_bytes());
    frame.push(protocol::ICMPV6);
    frame.push(NDP_HOP_LIMIT);
    frame.extend_from_slice(&source.octets());
    frame.extend_from_slice(&destination.octets());
    let start = frame.len();
    frame.extend_from_slice(&body);
    checksum::fill_l4(
        IpAddr::V6(source),
        IpAddr::V6(destination),
        protocol::ICMPV6,
        &mut frame[start..],
    );
    frame
}

/// Whether a MAC address is multicast or broadcast (the group bit of the first octet).
pub fn is_group(mac: [u8; 6]) -> bool {
    mac[0] & 1 != 0
}

fn mac(bytes: &[u8]) -> [u8; 6] {
    let mut mac = [0u8; 6];
    mac.copy_from_slice(&bytes[..6]);
    mac
}

fn ipv6(bytes: &[u8]) -> Ipv6Addr {
    let mut octets = [0u8; 16];
    octets.copy_from_slice(&bytes[..16]);
    Ipv6Addr::from(octets)
}
