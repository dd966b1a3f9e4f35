//! Session ownership across two routers with any worker counts: for random sessions, the
//! four packets of a session (forward and reverse, on each router's LAN and WAN) reach the
//! worker that owns the session on each router.

#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use svr_dataplane::forward::FiveTuple;
use svr_dataplane::session::PortPool;
use svr_dataplane::shard::{Side, class_owner, flow_class, frame_owner};

/// Builds an Ethernet frame with an IPv4 or IPv6 header and a UDP or TCP header for
/// `tuple`. The L4 checksum stays zero, because ownership reads only addresses and ports.
fn frame(tuple: &FiveTuple) -> Vec<u8> {
    let mut l4 = Vec::new();
    l4.extend_from_slice(&tuple.source_port.to_be_bytes());
    l4.extend_from_slice(&tuple.destination_port.to_be_bytes());
    if tuple.protocol == 6 {
        l4.extend_from_slice(&[0, 0, 0, 1, 0, 0, 0, 0, 0x50, 0x02, 0x20, 0, 0, 0, 0, 0]);
    } else {
        l4.extend_from_slice(&8u16.to_be_bytes());
        l4.extend_from_slice(&[0, 0]);
    }
    let mut out = vec![2, 0, 0, 0, 0, 1, 2, 0, 0, 0, 0, 2];
    match (tuple.source, tuple.destination) {
        (IpAddr::V4(source), IpAddr::V4(destination)) => {
            out.extend_from_slice(&[0x08, 0x00, 0x45, 0]);
            out.extend_from_slice(&((20 + l4.len()) as u16).to_be_bytes());
            out.extend_from_slice(&[0, 0, 0x40, 0, 64, tuple.protocol, 0, 0]);
            out.extend_from_slice(&source.octets());
            out.extend_from_slice(&destination.octets());
            let sum = header_checksum(&out[14..34]);
            out[24..26].copy_from_slice(&sum.to_be_bytes());
        }
        (IpAddr::V6(source), IpAddr::V6(destination)) => {
            out.extend_from_slice(&[0x86, 0xdd, 0x60, 0, 0, 0]);
            out.extend_from_slice(&(l4.len() as u16).to_be_bytes());
            out.extend_from_slice(&[tuple.protocol, 64]);
            out.extend_from_slice(&source.octets());
            out.extend_from_slice(&destination.octets());
        }
        _ => panic!("mixed address families"),
    }
    out.extend_from_slice(&l4);
    out
}

/// RFC 1071 checksum of an IPv4 header whose checksum field is zero.
fn header_checksum(header: &[u8]) -> u16 {
    let mut sum: u32 =
        header.chunks(2).map(|pair| u32::from(u16::from_be_bytes([pair[0], pair[1]]))).sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

fn address(v6: bool, bits: u128) -> IpAddr {
    if v6 { Ipv6Addr::from(bits).into() } else { Ipv4Addr::from(bits as u32).into() }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn both_directions_reach_owner(
        v6 in any::<bool>(),
        hosts in any::<(u128, u128)>(),
        ports in any::<(u16, u16)>(),
        tcp in any::<bool>(),
        ingress_workers in 1usize..=8,
        egress_workers in 1usize..=8,
    ) {
        let original = FiveTuple {
            source: address(v6, hosts.0),
            destination: address(v6, hosts.1),
            source_port: ports.0,
            destination_port: ports.1,
            protocol: if tcp { 6 } else { 17 },
        };

        // The ingress: the forward LAN packet picks the owner, which allocates the ports.
        let owner = frame_owner(Side::Lan, &frame(&original), ingress_workers).unwrap();
        prop_assert_eq!(owner, class_owner(flow_class(&original), ingress_workers));
        let mut pool = PortPool::new(owner, ingress_workers);
        let (local, peer) = pool.allocate_in_class(flow_class(&original)).unwrap();
        let waypoints = FiveTuple {
            source: address(v6, 1),
            destination: address(v6, 2),
            source_port: local,
            destination_port: peer,
            protocol: 17,
        };

        // The reverse WAN packet comes back to the same worker of the ingress.
        let reverse_wan = frame(&waypoints.reversed());
        prop_assert_eq!(frame_owner(Side::Wan, &reverse_wan, ingress_workers), Some(owner));

        // On the egress, the forward WAN packet and the reverse LAN packet agree.
        let forward_wan = frame(&waypoints);
        let egress = frame_owner(Side::Wan, &forward_wan, egress_workers);
        let reverse_lan = frame(&original.reversed());
        prop_assert_eq!(frame_owner(Side::Lan, &reverse_lan, egress_workers), egress);
        prop_assert!(egress.is_some());
    }
}

#[test]
fn unparsable_frame_has_no_owner() {
    assert_eq!(frame_owner(Side::Lan, &[0u8; 10], 2), None);
    assert_eq!(frame_owner(Side::Lan, &[0u8; 10], 1), Some(0), "one worker owns everything");
}

#[test]
fn wan_port_below_pool_has_no_owner() {
    let bfd = FiveTuple {
        source: Ipv4Addr::new(10, 202, 0, 2).into(),
        destination: Ipv4Addr::new(10, 202, 0, 1).into(),
        source_port: 49152,
        destination_port: 3784,
        protocol: 17,
    };
    assert_eq!(frame_owner(Side::Wan, &frame(&bfd), 2), None);
    let parsed = svr_dataplane::forward::parse::parse_frame(&frame(&bfd)).unwrap();
    assert_eq!(parsed.tuple, bfd, "the test frame parses back to its tuple");
}
