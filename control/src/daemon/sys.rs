//! What the daemon reads from the host: its name, interface MAC addresses and the kernel's
//! IPv4 neighbour table.

use std::net::{IpAddr, Ipv4Addr};

/// The host name, for picking the router whose node is named like this host.
pub fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|name| name.trim().to_string())
        .unwrap_or_default()
}

/// The MAC address of a Linux interface in this network namespace.
pub fn mac_address(interface: &str) -> Option<[u8; 6]> {
    let text = std::fs::read_to_string(format!("/sys/class/net/{interface}/address")).ok()?;
    parse_mac(text.trim())
}

/// The kernel's complete IPv4 neighbour entries: address, MAC and device.
///
/// NOTE: IPv6 neighbours are not read (they need netlink), so IPv6 next hops on AF_XDP
/// ports are not resolved yet.
pub fn neighbours() -> Vec<(IpAddr, [u8; 6], String)> {
    let Ok(text) = std::fs::read_to_string("/proc/net/arp") else {
        return Vec::new();
    };
    parse_arp(&text)
}

/// Parses `/proc/net/arp`: a header line, then address, hardware type, flags, MAC, mask
/// and device per line. Entries whose flags lack ATF_COM (0x2) are incomplete.
fn parse_arp(text: &str) -> Vec<(IpAddr, [u8; 6], String)> {
    text.lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let [address, _, flags, mac, _, device] = fields.as_slice() else {
                return None;
            };
            let flags = u32::from_str_radix(flags.trim_start_matches("0x"), 16).ok()?;
            if flags & 0x2 == 0 {
                return None;
            }
            let address: Ipv4Addr = address.parse().ok()?;
            Some((IpAddr::V4(address), parse_mac(mac)?, (*device).to_string()))
        })
        .collect()
}

fn parse_mac(text: &str) -> Option<[u8; 6]> {
    let mut mac = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut mac {
        *byte = u8::from_str_radix(parts.next()?, 16).ok()?;
    }
    parts.next().is_none().then_some(mac)
}

/// Encodes DER as a PEM block with 64-character lines.
pub fn pem(label: &str, der: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut encoded = String::with_capacity(der.len() * 4 / 3 + 4);
    for chunk in der.chunks(3) {
        let bytes = [chunk[0], *chunk.get(1).unwrap_or(&0), *chunk.get(2).unwrap_or(&0)];
        let word = u32::from_be_bytes([0, bytes[0], bytes[1], bytes[2]]);
        for (index, shift) in [18, 12, 6, 0].into_iter().enumerate() {
            if index <= chunk.len() {
                encoded.push(char::from(ALPHABET[(word >> shift & 0x3f) as usize]));
            } else {
                encoded.push('=');
            }
        }
    }
    let mut out = format!("-----BEGIN {label}-----\n");
    for line in encoded.as_bytes().chunks(64) {
        out.push_str(&String::from_utf8_lossy(line));
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arp_table_skips_incomplete_entries() {
        let text = "IP address       HW type     Flags       HW address            Mask     Device\n\
                    10.231.1.10      0x1         0x2         02:00:00:00:01:10     *        lan0\n\
                    10.231.1.11      0x1         0x0         00:00:00:00:00:00     *        lan0\n";
        let entries = parse_arp(text);
        assert_eq!(entries.len(), 1);
        assert_eq!(entries[0].0, IpAddr::V4(Ipv4Addr::new(10, 231, 1, 10)));
        assert_eq!(entries[0].1, [2, 0, 0, 0, 1, 0x10]);
        assert_eq!(entries[0].2, "lan0");
    }

    #[test]
    fn pem_matches_known_base64() {
        assert_eq!(pem("X", b"Man"), "-----BEGIN X-----\nTWFu\n-----END X-----\n");
        assert_eq!(pem("X", b"Ma"), "-----BEGIN X-----\nTWE=\n-----END X-----\n");
        assert_eq!(pem("X", b"M"), "-----BEGIN X-----\nTQ==\n-----END X-----\n");
    }

    #[test]
    fn mac_parse_rejects_short_and_long() {
        assert_eq!(parse_mac("02:00:00:00:01:10"), Some([2, 0, 0, 0, 1, 0x10]));
        assert_eq!(parse_mac("02:00:00:00:01"), None);
        assert_eq!(parse_mac("02:00:00:00:01:10:11"), None);
    }
}
