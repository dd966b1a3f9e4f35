//! Session ownership among the workers of one router: which worker keeps the session a
//! packet belongs to. It is computed from the packet alone, so both directions of a session
//! reach the same worker whichever worker received them.
//!
//! Every session falls in one of [`FLOW_CLASSES`] flow classes, and worker `w` of `n` owns
//! the classes `c` with `c % n == w`.
//!
//! - A LAN packet's class is a symmetric hash of its 5-tuple ([`flow_class`]). The forward
//!   packets entering the ingress router and the reverse packets entering the egress router
//!   have tuples that are each other's reverse, so both get the same class.
//! - A WAN packet's class comes from its destination waypoint port ([`port_class`]). The
//!   ingress allocates the session's port pair in the session's class: the pair's index in
//!   the waypoint pool is congruent to the class modulo [`FLOW_CLASSES`]. Either router can
//!   then read the class back from the port it receives on: the even port on the ingress,
//!   the odd one on the egress.
//!
//! The hash and the port rule are fixed, so two routers agree on a session's class even
//! when they run different numbers of workers.
//!
//! NOTE: the hash has no secret key, because both routers must compute it. A LAN host that
//! opens many flows of one class can use up that class's 384 port pairs, which stops new
//! sessions of the class while the other classes still have ports.

use std::net::IpAddr;

use crate::forward::FiveTuple;
use crate::forward::parse::parse_frame;
use crate::session::PORT_FIRST;

/// Number of flow classes. Worker counts up to this number each get at least one class.
pub const FLOW_CLASSES: usize = 64;

/// Largest number of workers that can share a router's sessions.
pub const MAX_WORKERS: usize = FLOW_CLASSES;

/// Returns the flow class of a LAN packet's 5-tuple; a tuple and its reverse get the same
/// class.
///
/// The hash is 64-bit FNV-1a over the protocol and the two endpoints, the smaller endpoint
/// first. Each endpoint is its address as 16 bytes (IPv4 mapped into IPv6), then its port
/// in network order. A 64-bit finalizer follows, so that the low bits depend on every byte.
pub fn flow_class(tuple: &FiveTuple) -> usize {
    let source = (address_bytes(tuple.source), tuple.source_port);
    let destination = (address_bytes(tuple.destination), tuple.destination_port);
    let (low, high) =
        if source <= destination { (source, destination) } else { (destination, source) };

    let mut hash = FNV_OFFSET;
    hash = fnv1a(hash, &[tuple.protocol]);
    for (address, port) in [low, high] {
        hash = fnv1a(hash, &address);
        hash = fnv1a(hash, &port.to_be_bytes());
    }
    (finalize(hash) % FLOW_CLASSES as u64) as usize
}

/// Returns the flow class of a waypoint port, or `None` below the waypoint pool.
///
/// Ports `2i` and `2i + 1` above [`PORT_FIRST`] form the pair with index `i`, and the
/// pair's class is `i % FLOW_CLASSES`.
pub fn port_class(port: u16) -> Option<usize> {
    let offset = port.checked_sub(PORT_FIRST)?;
    Some(usize::from(offset / 2) % FLOW_CLASSES)
}

/// Returns the worker of `workers` that owns flow class `class`.
pub fn class_owner(class: usize, workers: usize) -> usize {
    class % workers.max(1)
}

/// The role of the port a frame arrived on, which selects the field its class comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    /// A LAN port: the class comes from the packet's 5-tuple.
    Lan,
    /// A WAN port: the class comes from the destination waypoint port.
    Wan,
}

/// Returns the worker of `workers` that owns the session of `frame`, or `None` when the
/// frame has no session to own (it does not parse, or a WAN packet is addressed below the
/// waypoint pool). The receiving worker processes such frames itself.
pub fn frame_owner(side: Side, frame: &[u8], workers: usize) -> Option<usize> {
    if workers <= 1 {
        return Some(0);
    }
    let parsed = parse_frame(frame).ok()?;
    let class = match side {
        Side::Lan => flow_class(&parsed.tuple),
        Side::Wan => port_class(parsed.tuple.destination_port)?,
    };
    Some(class_owner(class, workers))
}

const FNV_OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
const FNV_PRIME: u64 = 0x0000_0100_0000_01b3;

fn fnv1a(mut hash: u64, bytes: &[u8]) -> u64 {
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(FNV_PRIME);
    }
    hash
}

/// Mixes the bits of `hash` with the 64-bit finalizer of MurmurHash3 (`fmix64`).
fn finalize(mut hash: u64) -> u64 {
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xff51_afd7_ed55_8ccd);
    hash ^= hash >> 33;
    hash = hash.wrapping_mul(0xc4ce_b9fe_1a85_ec53);
    hash ^ (hash >> 33)
}

fn address_bytes(address: IpAddr) -> [u8; 16] {
    match address {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    fn tuple(source: IpAddr, destination: IpAddr, ports: (u16, u16), protocol: u8) -> FiveTuple {
        FiveTuple { source, destination, source_port: ports.0, destination_port: ports.1, protocol }
    }

    #[test]
    fn flow_class_symmetric() {
        let forward = tuple(
            Ipv4Addr::new(10, 201, 1, 10).into(),
            Ipv4Addr::new(10, 201, 5, 10).into(),
            (40000, 5201),
            17,
        );
        assert_eq!(flow_class(&forward), flow_class(&forward.reversed()));
    }

    #[test]
    fn flow_class_fixed_values() {
        // The class is part of what two routers must agree on, so its values are pinned.
        let v4 = tuple(
            Ipv4Addr::new(10, 201, 1, 10).into(),
            Ipv4Addr::new(10, 201, 5, 10).into(),
            (40000, 5201),
            17,
        );
        let v6 = tuple(
            Ipv6Addr::new(0xfd01, 0, 0, 0, 0, 0, 0, 0x10).into(),
            Ipv6Addr::new(0xfd05, 0, 0, 0, 0, 0, 0, 0x10).into(),
            (40000, 80),
            6,
        );
        assert_eq!(flow_class(&v4), 53);
        assert_eq!(flow_class(&v6), 44);
        assert_eq!(flow_class(&v4), reference_class(&v4));
        assert_eq!(flow_class(&v6), reference_class(&v6));
    }

    /// Computes the class the long way, from the byte string the hash is defined over.
    fn reference_class(tuple: &FiveTuple) -> usize {
        let mut endpoints = [
            [address_bytes(tuple.source).to_vec(), tuple.source_port.to_be_bytes().to_vec()]
                .concat(),
            [
                address_bytes(tuple.destination).to_vec(),
                tuple.destination_port.to_be_bytes().to_vec(),
            ]
            .concat(),
        ];
        endpoints.sort();
        let mut input = vec![tuple.protocol];
        input.extend(endpoints.concat());
        let mut hash = 0xcbf2_9ce4_8422_2325u64;
        for byte in input {
            hash = (hash ^ u64::from(byte)).wrapping_mul(0x100_0000_01b3);
        }
        (finalize(hash) % 64) as usize
    }

    #[test]
    fn flow_class_spreads() {
        let mut counts = [0usize; FLOW_CLASSES];
        for port in 0..6400u16 {
            let t = tuple(
                Ipv4Addr::new(10, 201, 1, 10).into(),
                Ipv4Addr::new(10, 201, 5, 10).into(),
                (30000 + port, 443),
                6,
            );
            counts[flow_class(&t)] += 1;
        }
        let (min, max) = (counts.iter().min().unwrap(), counts.iter().max().unwrap());
        assert!(*min >= 50, "least used class has {min} of 6400 flows");
        assert!(*max <= 150, "most used class has {max} of 6400 flows");
    }

    #[test]
    fn port_class_pairs_agree() {
        for port in (PORT_FIRST..=65532).step_by(2) {
            assert_eq!(port_class(port), port_class(port + 1), "port {port}");
        }
        assert_eq!(port_class(PORT_FIRST), Some(0));
        assert_eq!(port_class(PORT_FIRST + 2), Some(1));
        assert_eq!(port_class(PORT_FIRST + 128), Some(0));
    }

    #[test]
    fn port_class_below_pool() {
        assert_eq!(port_class(PORT_FIRST - 1), None);
        assert_eq!(port_class(1280), None);
    }

    #[test]
    fn class_owner_covers_workers() {
        for workers in 1..=8 {
            let mut seen = vec![false; workers];
            for class in 0..FLOW_CLASSES {
                seen[class_owner(class, workers)] = true;
            }
            assert!(seen.iter().all(|s| *s), "{workers} workers");
        }
        assert_eq!(class_owner(5, 0), 0);
    }
}
