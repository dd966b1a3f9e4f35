//! The Internet checksum (RFC 1071) over IPv4 headers and over TCP, UDP, ICMP and ICMPv6
//! messages with their pseudo-headers (RFC 768, RFC 9293 section 3.1, RFC 8200 section 8.1).
//!
//! Every checksum svrd writes is computed in full: veth and AF_XDP copy mode do not
//! complete a partial checksum left for transmit offload. A TCP or ICMP message crosses
//! the WAN whole, checksum included, and its restored pseudo-header is the one its sender
//! summed, so the egress leaves that checksum as the sender wrote it. Only UDP, whose
//! header does not cross, gets a new checksum at the egress.

use std::net::IpAddr;

/// IP protocol numbers the packet path treats specially.
pub mod protocol {
    /// ICMP for IPv4.
    pub const ICMP: u8 = 1;
    /// TCP.
    pub const TCP: u8 = 6;
    /// UDP.
    pub const UDP: u8 = 17;
    /// ICMP for IPv6.
    pub const ICMPV6: u8 = 58;
}

/// Adds `data` as big-endian 16-bit words to `sum`, padding an odd last byte with zero,
/// and returns the sum folded to 16 bits.
///
/// The bytes are read as native-endian 32-bit words into four 64-bit accumulators, so
/// the loop needs no byte swaps and its additions do not wait on each other. Both steps
/// keep the ones' complement sum. A 32-bit word `hi:lo` is `hi * 65536 + lo`, and 65536
/// is 1 modulo 65535, so the wide sum folds to the 16-bit one. Summing in the other byte
/// order gives the byte-swapped sum (RFC 1071 section 2), so swapping the folded result
/// back gives the big-endian one.
pub fn accumulate(sum: u32, data: &[u8]) -> u32 {
    let word =
        |bytes: &[u8]| u64::from(u32::from_ne_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]));
    let mut lanes = [0u64; 4];
    let mut blocks = data.chunks_exact(16);
    for block in &mut blocks {
        for (lane, bytes) in lanes.iter_mut().zip(block.chunks_exact(4)) {
            *lane += word(bytes);
        }
    }
    let mut wide = u64::from(reorder(fold(u64::from(sum)))) + lanes.iter().sum::<u64>();
    let mut words = blocks.remainder().chunks_exact(4);
    for bytes in &mut words {
        wide += word(bytes);
    }
    // The tail starts at an even offset, so zero padding on the right keeps every byte
    // in its place within its 16-bit word.
    let mut tail = [0u8; 4];
    tail[..words.remainder().len()].copy_from_slice(words.remainder());
    wide += word(&tail);
    reorder(fold(wide))
}

/// Folds a ones' complement sum to 16 bits.
fn fold(mut wide: u64) -> u64 {
    while wide > 0xffff {
        wide = (wide & 0xffff) + (wide >> 16);
    }
    wide
}

/// Converts a folded sum from big-endian to native word order or back: on a little-endian
/// machine, swaps its two bytes.
fn reorder(folded: u64) -> u32 {
    let folded = folded as u16;
    u32::from(if cfg!(target_endian = "little") { folded.swap_bytes() } else { folded })
}

/// Folds `sum` to 16 bits and returns its ones' complement, the value to store.
pub fn finish(mut sum: u32) -> u16 {
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Checksum of an IPv4 header whose checksum field (bytes 10-11) is zero.
pub fn ipv4_header(header: &[u8]) -> u16 {
    finish(accumulate(0, header))
}

/// Sum of the pseudo-header for an upper-layer message of `len` bytes.
fn pseudo_header(source: IpAddr, destination: IpAddr, protocol: u8, len: usize) -> u32 {
    let mut sum = 0;
    match (source, destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            sum = accumulate(sum, &source.octets());
            sum = accumulate(sum, &destination.octets());
        }
        _ => {
            sum = accumulate(sum, &ipv6_octets(source));
            sum = accumulate(sum, &ipv6_octets(destination));
        }
    }
    // The IPv4 pseudo-header holds a 16-bit length and the IPv6 one a 32-bit length; as
    // 16-bit words both sum to the same value for lengths below 65536.
    let len = len as u32;
    sum.wrapping_add(len >> 16).wrapping_add(len & 0xffff).wrapping_add(u32::from(protocol))
}

fn ipv6_octets(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// Returns whether a message of `protocol` crosses the WAN with its own checksum, which
/// the egress restores unchanged: TCP, ICMP, ICMPv6, and protocols whose checksum svrd does
/// not compute. A restored UDP datagram gets a new checksum, because only its payload
/// crosses.
pub fn travels_with_message(protocol: u8) -> bool {
    protocol != protocol::UDP
}

/// Computes and stores the checksum of a TCP, UDP, ICMP or ICMPv6 `message` sent from
/// `source` to `destination`; other protocols are left as they are.
///
/// The message must be whole (header and data) and at least as long as its header.
pub fn fill_l4(source: IpAddr, destination: IpAddr, protocol: u8, message: &mut [u8]) {
    let offset = match protocol {
        protocol::UDP => 6,
        protocol::TCP => 16,
        protocol::ICMP | protocol::ICMPV6 => 2,
        _ => return,
    };
    if message.len() < offset + 2 {
        return;
    }
    message[offset..offset + 2].fill(0);

    let initial = match protocol {
        // ICMPv4 has no pseudo-header (RFC 792).
        protocol::ICMP => 0,
        _ => pseudo_header(source, destination, protocol, message.len()),
    };
    let mut checksum = finish(accumulate(initial, message));
    // RFC 768: a computed UDP checksum of zero is sent as all ones, because zero means
    // "no checksum".
    if protocol == protocol::UDP && checksum == 0 {
        checksum = 0xffff;
    }
    message[offset..offset + 2].copy_from_slice(&checksum.to_be_bytes());
}

/// Whether the checksum stored in `message` is right; for protocols without a checksum
/// this is always true.
pub fn verify_l4(source: IpAddr, destination: IpAddr, protocol: u8, message: &[u8]) -> bool {
    let initial = match protocol {
        protocol::UDP if message.len() >= 8 && message[6..8] == [0, 0] => {
            // An IPv4 UDP checksum of zero means none was computed; IPv6 forbids it.
            return source.is_ipv4();
        }
        protocol::UDP | protocol::TCP | protocol::ICMPV6 => {
            pseudo_header(source, destination, protocol, message.len())
        }
        protocol::ICMP => 0,
        _ => return true,
    };
    finish(accumulate(initial, message)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::Ipv4Addr;

    #[test]
    fn rfc1071_example() {
        // The words of RFC 1071 section 3's example sum to 0xddf2.
        let data = [0x00, 0x01, 0xf2, 0x03, 0xf4, 0xf5, 0xf6, 0xf7];
        assert_eq!(finish(accumulate(0, &data)), !0xddf2);
    }

    #[test]
    fn ipv4_header_known_value() {
        let header = hex::decode("450000730000400040110000c0a80001c0a800c7").unwrap();
        assert_eq!(ipv4_header(&header), 0xb861);
    }

    #[test]
    fn udp_fill_then_verify() {
        let source = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 10));
        let destination = IpAddr::V4(Ipv4Addr::new(10, 5, 0, 10));
        let mut message = [0x9c, 0x40, 0x14, 0x51, 0x00, 0x0b, 0x00, 0x00, b'a', b'b', b'c'];
        fill_l4(source, destination, protocol::UDP, &mut message);
        assert_ne!(message[6..8], [0, 0]);
        assert!(verify_l4(source, destination, protocol::UDP, &message));
        message[9] ^= 1;
        assert!(!verify_l4(source, destination, protocol::UDP, &message));
    }

    #[test]
    fn odd_length_pads_with_zero() {
        assert_eq!(accumulate(0, &[0x12]), 0x1200);
        assert_eq!(accumulate(0, &[0x12, 0x34, 0x56]), 0x1234 + 0x5600);
    }

    /// Sums 16-bit words one at a time and folds at the end, as RFC 1071 describes.
    fn word_sum(sum: u32, data: &[u8]) -> u32 {
        let mut total = u64::from(sum);
        for word in data.chunks(2) {
            let high = u64::from(word[0]) << 8;
            total += high | word.get(1).copied().map_or(0, u64::from);
        }
        while total > 0xffff {
            total = (total & 0xffff) + (total >> 16);
        }
        total as u32
    }

    proptest::proptest! {
        #[test]
        fn accumulate_matches_word_sum(
            data in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..3000),
            initial in proptest::prelude::any::<u32>(),
        ) {
            proptest::prop_assert_eq!(accumulate(initial, &data), word_sum(initial, &data));
        }
    }

    #[test]
    fn accumulate_all_ones_folds() {
        for len in 0..64 {
            let data = vec![0xff; len];
            assert_eq!(accumulate(0, &data), word_sum(0, &data), "length {len}");
            assert_eq!(accumulate(0xffff, &data), word_sum(0xffff, &data), "length {len}");
        }
    }
}
