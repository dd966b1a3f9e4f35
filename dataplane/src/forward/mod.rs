//! The forwarding path between a LAN and SVR peers: parsing of LAN and WAN frames
//! ([`parse`]), the Internet checksum ([`checksum`]), outer and restored headers
//! ([`headers`]), TCP MSS clamping ([`mss`]), SVR fragmentation and reassembly
//! ([`fragment`]), ICMP errors for packets too long for the WAN ([`icmp`]), IPv4
//! fragments from LAN hosts ([`lan_fragment`]), and the
//! [`Engine`] that turns a received frame into the frames to send.

pub mod checksum;
mod engine;
pub mod fragment;
pub mod headers;
pub mod icmp;
pub mod lan_fragment;
pub mod mss;
mod oversize;
pub mod parse;

use std::fmt;
use std::net::IpAddr;

pub use engine::{
    BFD_PORTS, CryptoPath, ETHERTYPE_ARP, Engine, EngineConfig, FrameSource,
    NEIGHBOUR_DISCOVERY_TYPES, is_control_packet, is_neighbour_discovery,
};

use crate::packet::{Ipv4Context, Ipv6Context, SessionContext};

/// Source and destination address and port, and IP protocol, of a packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FiveTuple {
    pub source: IpAddr,
    pub destination: IpAddr,
    pub source_port: u16,
    pub destination_port: u16,
    pub protocol: u8,
}

impl FiveTuple {
    /// The tuple of packets going the other way.
    pub fn reversed(&self) -> FiveTuple {
        FiveTuple {
            source: self.destination,
            destination: self.source,
            source_port: self.destination_port,
            destination_port: self.source_port,
            protocol: self.protocol,
        }
    }

    /// The tuple as an SVR session context TLV value, or `None` when the two addresses are
    /// of different families.
    pub fn to_context(&self) -> Option<SessionContext> {
        match (self.source, self.destination) {
            (IpAddr::V4(source), IpAddr::V4(destination)) => {
                Some(SessionContext::V4(Ipv4Context {
                    source,
                    destination,
                    source_port: self.source_port,
                    destination_port: self.destination_port,
                    protocol: self.protocol,
                }))
            }
            (IpAddr::V6(source), IpAddr::V6(destination)) => {
                Some(SessionContext::V6(Ipv6Context {
                    source,
                    destination,
                    source_port: self.source_port,
                    destination_port: self.destination_port,
                    protocol: self.protocol,
                }))
            }
            _ => None,
        }
    }

    /// The tuple an SVR session context names.
    pub fn from_context(context: &SessionContext) -> FiveTuple {
        match context {
            SessionContext::V4(c) => FiveTuple {
                source: c.source.into(),
                destination: c.destination.into(),
                source_port: c.source_port,
                destination_port: c.destination_port,
                protocol: c.protocol,
            },
            SessionContext::V6(c) => FiveTuple {
                source: c.source.into(),
                destination: c.destination.into(),
                source_port: c.source_port,
                destination_port: c.destination_port,
                protocol: c.protocol,
            },
        }
    }
}

impl fmt::Display for FiveTuple {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} {}:{} -> {}:{}",
            self.protocol, self.source, self.source_port, self.destination, self.destination_port
        )
    }
}
