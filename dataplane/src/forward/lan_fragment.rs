//! IPv4 fragments that LAN hosts send: read their header, and rebuild the whole datagram
//! once the engine's LAN reassembly has all its pieces, so that it crosses as one packet.
//!
//! A host fragments its own datagrams once an ICMP "fragmentation needed" error lowered
//! its path MTU, so the ingress must take fragments back to whole datagrams to find their
//! session. RFC 791 section 3.2 identifies the fragments of one datagram by source,
//! destination, protocol and identification.

use std::net::Ipv4Addr;
use std::ops::Range;

use super::checksum;
use super::parse::{ETHERNET_LEN, ETHERTYPE_IPV4, IPV4_LEN};
use crate::packet::Fragment;

/// The fields of one IPv4 fragment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Ipv4Fragment {
    pub source: Ipv4Addr,
    pub destination: Ipv4Addr,
    pub protocol: u8,
    pub identification: u16,
    pub tos: u8,
    pub ttl: u8,
    /// The fragment offset and more-fragments flag as the reassembly takes them.
    pub fragment: Fragment,
    /// Range of the fragment's data in the frame.
    pub payload: Range<usize>,
}

impl Ipv4Fragment {
    /// Returns the reassembly key of the datagram: source, destination and protocol.
    pub fn datagram_key(&self) -> u128 {
        (u128::from(u32::from(self.source)) << 64)
            | (u128::from(u32::from(self.destination)) << 32)
            | u128::from(self.protocol)
    }
}

/// Reads the IPv4 fragment in `frame`, or `None` when the frame is not a valid IPv4
/// fragment (a valid header with more-fragments set or a non-zero offset).
pub fn parse_ipv4_fragment(frame: &[u8]) -> Option<Ipv4Fragment> {
    if frame.len() < ETHERNET_LEN + IPV4_LEN
        || u16::from_be_bytes([frame[12], frame[13]]) != ETHERTYPE_IPV4
    {
        return None;
    }

    let ip = &frame[ETHERNET_LEN..];
    let header_len = usize::from(ip[0] & 0x0f) * 4;
    let total_len = usize::from(u16::from_be_bytes([ip[2], ip[3]]));
    if ip[0] >> 4 != 4 || header_len < IPV4_LEN || total_len < header_len || total_len > ip.len() {
        return None;
    }
    if checksum::finish(checksum::accumulate(0, &ip[..header_len])) != 0 {
        return None;
    }

    let flags_offset = u16::from_be_bytes([ip[6], ip[7]]);
    let more_fragments = flags_offset & 0x2000 != 0;
    let offset = flags_offset & Fragment::MAX_OFFSET;
    if !more_fragments && offset == 0 {
        return None;
    }

    let identification = u16::from_be_bytes([ip[4], ip[5]]);
    Some(Ipv4Fragment {
        source: Ipv4Addr::new(ip[12], ip[13], ip[14], ip[15]),
        destination: Ipv4Addr::new(ip[16], ip[17], ip[18], ip[19]),
        protocol: ip[9],
        identification,
        tos: ip[1],
        ttl: ip[8],
        fragment: Fragment {
            extended_id: u32::from(identification),
            more_fragments,
            offset,
            ..Fragment::default()
        },
        payload: ETHERNET_LEN + header_len..ETHERNET_LEN + total_len,
    })
}

/// Length of the frame [`emit_datagram`] writes for `payload_len` bytes of IP payload.
pub fn datagram_len(payload_len: usize) -> usize {
    ETHERNET_LEN + IPV4_LEN + payload_len
}

/// Writes the whole datagram into `out`, of [`datagram_len`] bytes: the Ethernet header
/// of the last fragment, an IPv4 header without options, DF or MF, and `payload`.
/// Returns `false` when the datagram exceeds 65535 bytes.
pub fn emit_datagram(out: &mut [u8], ethernet: &[u8], last: &Ipv4Fragment, payload: &[u8]) -> bool {
    let Ok(total_len) = u16::try_from(IPV4_LEN + payload.len()) else {
        return false;
    };
    out[..ETHERNET_LEN].copy_from_slice(&ethernet[..ETHERNET_LEN]);
    let ip = &mut out[ETHERNET_LEN..ETHERNET_LEN + IPV4_LEN];
    ip[0] = 0x45;
    ip[1] = last.tos;
    ip[2..4].copy_from_slice(&total_len.to_be_bytes());
    ip[4..6].copy_from_slice(&last.identification.to_be_bytes());
    ip[6..8].fill(0);
    ip[8] = last.ttl;
    ip[9] = last.protocol;
    ip[10..12].fill(0);
    ip[12..16].copy_from_slice(&last.source.octets());
    ip[16..20].copy_from_slice(&last.destination.octets());
    let sum = checksum::ipv4_header(ip);
    ip[10..12].copy_from_slice(&sum.to_be_bytes());
    out[ETHERNET_LEN + IPV4_LEN..].copy_from_slice(payload);
    true
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::forward::parse::parse_frame;

    fn fragment_frame(offset_units: u16, more: bool, payload: &[u8]) -> Vec<u8> {
        let mut frame = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2, 0x08, 0x00];
        let total = (20 + payload.len()) as u16;
        let flags = offset_units | if more { 0x2000 } else { 0 };
        let mut ip = vec![0x45, 0x10];
        ip.extend_from_slice(&total.to_be_bytes());
        ip.extend_from_slice(&[0xbe, 0xef]);
        ip.extend_from_slice(&flags.to_be_bytes());
        ip.extend_from_slice(&[61, 17, 0, 0, 10, 201, 1, 10, 10, 201, 5, 10]);
        let sum = checksum::ipv4_header(&ip);
        ip[10..12].copy_from_slice(&sum.to_be_bytes());
        frame.extend_from_slice(&ip);
        frame.extend_from_slice(payload);
        frame
    }

    #[test]
    fn fragment_fields_read() {
        let frame = fragment_frame(185, true, &[7; 64]);
        let fragment = parse_ipv4_fragment(&frame).unwrap();
        assert_eq!(fragment.identification, 0xbeef);
        assert_eq!(fragment.fragment.offset, 185);
        assert!(fragment.fragment.more_fragments);
        assert_eq!(fragment.fragment.extended_id, 0xbeef);
        assert_eq!(fragment.protocol, 17);
        assert_eq!(fragment.ttl, 61);
        assert_eq!(fragment.payload, 34..98);
        assert_eq!(fragment.source, Ipv4Addr::new(10, 201, 1, 10));
    }

    #[test]
    fn whole_packet_not_a_fragment() {
        assert_eq!(parse_ipv4_fragment(&fragment_frame(0, false, &[7; 64])), None);
    }

    #[test]
    fn bad_checksum_not_read() {
        let mut frame = fragment_frame(0, true, &[7; 64]);
        frame[24] ^= 1;
        assert_eq!(parse_ipv4_fragment(&frame), None);
    }

    #[test]
    fn truncated_fragment_not_read() {
        let frame = fragment_frame(0, true, &[7; 64]);
        assert_eq!(parse_ipv4_fragment(&frame[..60]), None);
    }

    #[test]
    fn datagram_rebuilt() {
        let last = parse_ipv4_fragment(&fragment_frame(1, false, &[9; 8])).unwrap();
        let mut udp = vec![0x9c, 0x40, 0x14, 0x51, 0, 16, 0, 0];
        udp.extend_from_slice(&[9; 8]);
        let mut out = vec![0xa5; datagram_len(udp.len())];
        assert!(emit_datagram(&mut out, &fragment_frame(1, false, &[])[..14], &last, &udp));
        let parsed = parse_frame(&out).unwrap();
        assert_eq!(parsed.tuple.protocol, 17);
        assert_eq!(parsed.tuple.destination_port, 5201);
        assert_eq!(parsed.end, out.len());
        assert_eq!(out[20..22], [0, 0], "neither df nor mf");
        assert_eq!(out[18..20], [0xbe, 0xef], "identification kept");
    }
}
