//! What the daemon reads from the host: its name, interface MAC addresses, free hugepages
//! and the kernel's neighbour tables (IPv4 ARP and IPv6 neighbour discovery, over
//! rtnetlink).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use nix::sys::socket::{
    AddressFamily, MsgFlags, NetlinkAddr, SockFlag, SockProtocol, SockType, bind, recv, send,
    socket,
};

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

/// Counts the free hugepages of every size, from `/sys/kernel/mm/hugepages`. `None` when
/// the kernel shows no hugepage sizes.
#[cfg(feature = "dpdk")]
pub fn free_hugepages() -> Option<u64> {
    let sizes = std::fs::read_dir("/sys/kernel/mm/hugepages").ok()?;
    let free = sizes
        .filter_map(Result::ok)
        .filter_map(|size| std::fs::read_to_string(size.path().join("free_hugepages")).ok())
        .filter_map(|text| text.trim().parse::<u64>().ok())
        .sum();
    Some(free)
}

/// The kernel's usable neighbour entries of both families: address, MAC and device.
/// A failure to read them is logged and gives an empty table.
pub fn neighbours() -> Vec<(IpAddr, [u8; 6], String)> {
    match dump_neighbours() {
        Ok(entries) => entries,
        Err(error) => {
            tracing::warn!(%error, "cannot read the kernel's neighbour table");
            Vec::new()
        }
    }
}

/// Asks the kernel to resolve `address` on `interface` with an RTM_NEWNEIGH request that
/// carries NTF_USE and NLM_F_CREATE. The kernel creates the entry when it is missing and
/// sends an ARP request or neighbour solicitation, as if a packet were waiting for it. The
/// result shows in a later read of [`neighbours`].
pub fn resolve_neighbour(interface: &str, address: IpAddr) -> nix::Result<()> {
    let ifindex = nix::net::if_::if_nametoindex(interface)?;
    let fd = route_socket()?;
    let request = resolve_request(ifindex, address);
    send(std::os::fd::AsRawFd::as_raw_fd(&fd), &request, MsgFlags::empty())?;

    // NLM_F_ACK makes the kernel reply with an NLMSG_ERROR message whose error code is 0
    // on success or a negative errno.
    let mut buffer = [0u8; 1024];
    let len = recv(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buffer, MsgFlags::empty())?;
    let reply = &buffer[..len];
    if reply.len() >= NLMSG_HDRLEN + 4 && u16::from_ne_bytes([reply[4], reply[5]]) == NLMSG_ERROR {
        let code = i32::from_ne_bytes([reply[16], reply[17], reply[18], reply[19]]);
        if code < 0 {
            return Err(nix::errno::Errno::from_raw(-code));
        }
    }
    Ok(())
}

/// Opens a NETLINK_ROUTE socket bound to a port the kernel picks.
fn route_socket() -> nix::Result<std::os::fd::OwnedFd> {
    let fd = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )?;
    bind(std::os::fd::AsRawFd::as_raw_fd(&fd), &NetlinkAddr::new(0, 0))?;
    Ok(fd)
}

/// Builds the RTM_NEWNEIGH request of [`resolve_neighbour`]: the netlink header, an ndmsg
/// with state NUD_NONE and flag NTF_USE, and the NDA_DST attribute.
fn resolve_request(ifindex: u32, address: IpAddr) -> Vec<u8> {
    let (family, octets): (u8, Vec<u8>) = match address {
        IpAddr::V4(v4) => (AF_INET, v4.octets().to_vec()),
        IpAddr::V6(v6) => (AF_INET6, v6.octets().to_vec()),
    };
    let attribute_len = 4 + octets.len();
    let len = NLMSG_HDRLEN + NDMSG_LEN + attribute_len;
    let mut request = Vec::with_capacity(len);
    request.extend_from_slice(&(len as u32).to_ne_bytes());
    request.extend_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
    request.extend_from_slice(&(NLM_F_REQUEST | NLM_F_ACK | NLM_F_CREATE).to_ne_bytes());
    request.extend_from_slice(&1u32.to_ne_bytes());
    request.extend_from_slice(&0u32.to_ne_bytes());
    request.extend_from_slice(&[family, 0, 0, 0]);
    request.extend_from_slice(&ifindex.to_ne_bytes());
    request.extend_from_slice(&NUD_NONE.to_ne_bytes());
    request.extend_from_slice(&[NTF_USE, 0]);
    request.extend_from_slice(&(attribute_len as u16).to_ne_bytes());
    request.extend_from_slice(&NDA_DST.to_ne_bytes());
    request.extend_from_slice(&octets);
    request
}

// rtnetlink constants (linux/netlink.h, linux/rtnetlink.h, linux/neighbour.h).
const AF_INET: u8 = 2;
const AF_INET6: u8 = 10;
const NLM_F_ACK: u16 = 0x4;
const NLM_F_CREATE: u16 = 0x400;
const NTF_USE: u8 = 0x01;
const NUD_NONE: u16 = 0;
const NLMSG_HDRLEN: usize = 16;
const NLMSG_DONE: u16 = 3;
const NLMSG_ERROR: u16 = 2;
const RTM_NEWNEIGH: u16 = 28;
const RTM_GETNEIGH: u16 = 30;
const NLM_F_REQUEST: u16 = 0x1;
const NLM_F_DUMP: u16 = 0x300;
const NDMSG_LEN: usize = 12;
const NDA_DST: u16 = 1;
const NDA_LLADDR: u16 = 2;
/// Neighbour states whose link-layer address is unusable: incomplete and failed (state 0,
/// NUD_NONE, is refused separately).
const NUD_UNUSABLE: u16 = 0x01 | 0x20;

/// Asks the kernel for its neighbour table with one RTM_GETNEIGH dump request.
fn dump_neighbours() -> nix::Result<Vec<(IpAddr, [u8; 6], String)>> {
    let fd = route_socket()?;

    let mut request = [0u8; NLMSG_HDRLEN + NDMSG_LEN];
    request[0..4].copy_from_slice(&((NLMSG_HDRLEN + NDMSG_LEN) as u32).to_ne_bytes());
    request[4..6].copy_from_slice(&RTM_GETNEIGH.to_ne_bytes());
    request[6..8].copy_from_slice(&(NLM_F_REQUEST | NLM_F_DUMP).to_ne_bytes());
    request[8..12].copy_from_slice(&1u32.to_ne_bytes());
    send(std::os::fd::AsRawFd::as_raw_fd(&fd), &request, MsgFlags::empty())?;

    let mut entries = Vec::new();
    let mut buffer = vec![0u8; 64 * 1024];
    // A dump ends with NLMSG_DONE; the bound keeps a misbehaving kernel from looping us.
    for _ in 0..1024 {
        let len = recv(std::os::fd::AsRawFd::as_raw_fd(&fd), &mut buffer, MsgFlags::empty())?;
        if len == 0 || parse_neighbour_messages(&buffer[..len], &mut entries) {
            break;
        }
    }
    Ok(entries)
}

/// Parses one datagram of netlink messages into `entries`; returns whether the dump ended.
fn parse_neighbour_messages(mut data: &[u8], entries: &mut Vec<(IpAddr, [u8; 6], String)>) -> bool {
    while data.len() >= NLMSG_HDRLEN {
        let len = u32::from_ne_bytes([data[0], data[1], data[2], data[3]]) as usize;
        let kind = u16::from_ne_bytes([data[4], data[5]]);
        if len < NLMSG_HDRLEN || len > data.len() {
            return true;
        }
        match kind {
            NLMSG_DONE | NLMSG_ERROR => return true,
            RTM_NEWNEIGH => {
                if let Some(entry) = parse_neighbour(&data[NLMSG_HDRLEN..len]) {
                    entries.push(entry);
                }
            }
            _ => {}
        }
        data = &data[align4(len).min(data.len())..];
    }
    false
}

/// Parses an ndmsg and its attributes: family, interface index, state, then NDA_DST and
/// NDA_LLADDR among the attributes.
fn parse_neighbour(message: &[u8]) -> Option<(IpAddr, [u8; 6], String)> {
    let header = message.get(..NDMSG_LEN)?;
    let ifindex = u32::from_ne_bytes([header[4], header[5], header[6], header[7]]);
    let state = u16::from_ne_bytes([header[8], header[9]]);
    if state & NUD_UNUSABLE != 0 || state == 0 {
        return None;
    }
    let (mut address, mut mac) = (None, None);
    let mut attributes = &message[NDMSG_LEN..];
    while attributes.len() >= 4 {
        let len = usize::from(u16::from_ne_bytes([attributes[0], attributes[1]]));
        let kind = u16::from_ne_bytes([attributes[2], attributes[3]]);
        if len < 4 || len > attributes.len() {
            break;
        }
        let value = &attributes[4..len];
        match (kind, value.len()) {
            (NDA_DST, 4) => {
                address = Some(IpAddr::V4(Ipv4Addr::new(value[0], value[1], value[2], value[3])))
            }
            (NDA_DST, 16) => {
                let octets: [u8; 16] = value.try_into().ok()?;
                address = Some(IpAddr::V6(Ipv6Addr::from(octets)));
            }
            (NDA_LLADDR, 6) => mac = value.try_into().ok(),
            _ => {}
        }
        attributes = &attributes[align4(len).min(attributes.len())..];
    }
    let device = nix::net::if_::if_indextoname(ifindex).ok()?.into_string().ok()?;
    Some((address?, mac?, device))
}

fn align4(len: usize) -> usize {
    (len + 3) & !3
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

    /// An RTM_NEWNEIGH message for `address` on the loopback interface (index 1, which
    /// exists in every namespace) in `state`.
    fn neighbour_message(address: &[u8], state: u16) -> Vec<u8> {
        let mut body = vec![0u8; NDMSG_LEN];
        body[0] = if address.len() == 4 { 2 } else { 10 };
        body[4..8].copy_from_slice(&1u32.to_ne_bytes());
        body[8..10].copy_from_slice(&state.to_ne_bytes());
        for (kind, value) in [(NDA_DST, address), (NDA_LLADDR, &[2, 0, 0, 0, 1, 0x10][..])] {
            let len = 4 + value.len();
            body.extend_from_slice(&(len as u16).to_ne_bytes());
            body.extend_from_slice(&kind.to_ne_bytes());
            body.extend_from_slice(value);
            body.resize(align4(body.len()), 0);
        }
        let mut message = vec![0u8; NLMSG_HDRLEN];
        message[0..4].copy_from_slice(&((NLMSG_HDRLEN + body.len()) as u32).to_ne_bytes());
        message[4..6].copy_from_slice(&RTM_NEWNEIGH.to_ne_bytes());
        message.extend_from_slice(&body);
        message
    }

    #[test]
    fn neighbour_messages_of_both_families() {
        let mut data = neighbour_message(&[10, 231, 1, 10], 0x02);
        let v6: Ipv6Addr = "fd31:5::10".parse().unwrap();
        data.extend(neighbour_message(&v6.octets(), 0x04));
        data.extend(neighbour_message(&[10, 231, 1, 11], 0x01));
        let mut entries = Vec::new();
        assert!(!parse_neighbour_messages(&data, &mut entries));
        assert_eq!(entries.len(), 2, "the incomplete entry must be skipped: {entries:?}");
        assert_eq!(entries[0].0, IpAddr::V4(Ipv4Addr::new(10, 231, 1, 10)));
        assert_eq!(entries[0].1, [2, 0, 0, 0, 1, 0x10]);
        assert_eq!(entries[0].2, "lo");
        assert_eq!(entries[1].0, IpAddr::V6(v6));
    }

    #[test]
    fn truncated_neighbour_messages_end_the_dump() {
        let data = neighbour_message(&[10, 231, 1, 10], 0x02);
        let mut entries = Vec::new();
        assert!(parse_neighbour_messages(&data[..data.len() - 3], &mut entries));
        assert!(entries.is_empty());
    }

    #[test]
    fn resolve_request_layout() {
        let request = resolve_request(7, IpAddr::V4(Ipv4Addr::new(10, 231, 1, 10)));
        assert_eq!(request.len(), 16 + 12 + 8);
        assert_eq!(u32::from_ne_bytes(request[0..4].try_into().unwrap()), 36, "nlmsg_len");
        assert_eq!(u16::from_ne_bytes([request[4], request[5]]), RTM_NEWNEIGH);
        assert_eq!(u16::from_ne_bytes([request[6], request[7]]), 0x405, "request, ack, create");
        assert_eq!(request[16], 2, "AF_INET");
        assert_eq!(u32::from_ne_bytes(request[20..24].try_into().unwrap()), 7, "ifindex");
        assert_eq!(u16::from_ne_bytes([request[24], request[25]]), 0, "NUD_NONE");
        assert_eq!(request[26], NTF_USE);
        assert_eq!(u16::from_ne_bytes([request[28], request[29]]), 8, "attribute length");
        assert_eq!(u16::from_ne_bytes([request[30], request[31]]), NDA_DST);
        assert_eq!(request[32..36], [10, 231, 1, 10]);

        let v6 = resolve_request(3, IpAddr::V6("fd31:5::10".parse().unwrap()));
        assert_eq!(v6.len(), 16 + 12 + 20);
        assert_eq!(v6[16], 10, "AF_INET6");
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
