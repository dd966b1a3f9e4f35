//! A host's side of its LAN: one memory port, with ARP and IPv6 neighbour discovery for
//! the host's own addresses and its two gateways, as a host's kernel would do them. The
//! frames are those of svrd's own resolver (`svr_control::neighbour::wire`).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::{Duration, Instant};

use svr_control::neighbour::wire::{self, Message};
use svr_dataplane::forward::FiveTuple;
use svr_dataplane::forward::checksum::{self, protocol};
use svr_dataplane::forward::headers::{IpHeaderFields, Macs, emit_restored, restored_header_len};
use svr_dataplane::forward::is_neighbour_discovery;
use svr_dataplane::forward::parse::{ETHERNET_LEN, IPV6_LEN};
use svr_dataplane::io::mem::MemPort;
use svr_dataplane::io::{Burst, PacketIo};

/// Time between requests for a gateway that has not replied yet.
const RESOLVE_RETRY: Duration = Duration::from_millis(300);

/// Offset of a neighbour advertisement's flags byte in its frame.
const ADVERTISEMENT_FLAGS: usize = ETHERNET_LEN + IPV6_LEN + 4;

/// The router flag of a neighbour advertisement (RFC 4861 section 4.4), which a host
/// leaves clear.
const FLAG_ROUTER: u8 = 0x80;

/// A host's addresses.
#[derive(Debug, Clone, Copy)]
pub struct HostAddresses {
    pub mac: [u8; 6],
    pub v4: Ipv4Addr,
    pub v6: Ipv6Addr,
    pub gateway_v4: Ipv4Addr,
    pub gateway_v6: Ipv6Addr,
}

/// A host's port with its neighbour table.
pub struct Lan {
    port: MemPort,
    addresses: HostAddresses,
    neighbours: HashMap<IpAddr, [u8; 6]>,
    next_request: Instant,
    rx: Burst,
    tx: Burst,
    identification: u16,
}

impl Lan {
    pub fn new(port: MemPort, addresses: HostAddresses) -> Lan {
        Lan {
            port,
            addresses,
            neighbours: HashMap::new(),
            next_request: Instant::now(),
            rx: Burst::new(),
            tx: Burst::new(),
            identification: 0,
        }
    }

    pub fn addresses(&self) -> &HostAddresses {
        &self.addresses
    }

    /// Receives a burst: answers and learns from ARP and neighbour discovery, and appends
    /// every other frame addressed to this host, or to a group, to `frames`. Returns how
    /// many frames arrived.
    pub fn receive(&mut self, frames: &mut Vec<Vec<u8>>) -> usize {
        let count = self.port.rx_burst(&mut self.rx).unwrap_or(0);
        let mut received = Vec::with_capacity(count);
        for frame in self.rx.drain() {
            received.push(frame.data().to_vec());
            self.port.free(frame);
        }
        for data in received {
            let destination: [u8; 6] =
                data.get(..6).and_then(|bytes| bytes.try_into().ok()).unwrap_or_default();
            if destination != self.addresses.mac && !wire::is_group(destination) {
                continue;
            }
            if is_neighbour_discovery(&data) {
                self.discovery(&data);
            } else {
                frames.push(data);
            }
        }
        count
    }

    /// Asks for the gateways not resolved yet, at most every [`RESOLVE_RETRY`].
    pub fn resolve_gateways(&mut self, now: Instant) {
        if now < self.next_request {
            return;
        }
        self.next_request = now + RESOLVE_RETRY;
        let HostAddresses { mac, v4, v6, gateway_v4, gateway_v6 } = self.addresses;
        if !self.neighbours.contains_key(&IpAddr::V4(gateway_v4)) {
            self.send(&wire::arp_request(mac, v4, gateway_v4, None));
        }
        if !self.neighbours.contains_key(&IpAddr::V6(gateway_v6)) {
            self.send(&wire::neighbour_solicitation(mac, v6, gateway_v6, None));
        }
    }

    /// Sends a UDP datagram with `payload` for `tuple` through the gateway of its family.
    /// Returns false when the gateway is not resolved or the frame could not be sent.
    pub fn send_udp(&mut self, tuple: &FiveTuple, payload: &[u8], buffer: &mut Vec<u8>) -> bool {
        let gateway = match tuple.destination {
            IpAddr::V4(_) => IpAddr::V4(self.addresses.gateway_v4),
            IpAddr::V6(_) => IpAddr::V6(self.addresses.gateway_v6),
        };
        let Some(&gateway_mac) = self.neighbours.get(&gateway) else {
            return false;
        };
        let header_len = restored_header_len(tuple);
        buffer.clear();
        buffer.resize(header_len, 0);
        buffer.extend_from_slice(payload);
        self.identification = self.identification.wrapping_add(1);
        let fields = IpHeaderFields {
            tos: 0,
            ttl: 64,
            identification: self.identification,
            dont_fragment: false,
            flow_label: 0,
        };
        let macs = Macs { source: self.addresses.mac, destination: gateway_mac };
        if emit_restored(buffer, macs, tuple, &fields).is_err() {
            return false;
        }
        self.send(buffer)
    }

    /// Waits up to `timeout` for a frame to arrive.
    pub fn wait(&mut self, timeout: Duration) {
        let _ = self.port.wait_readable(timeout);
    }

    fn send(&mut self, bytes: &[u8]) -> bool {
        let Some(mut frame) = self.port.alloc() else {
            return false;
        };
        if frame.copy_from(bytes).is_err() {
            self.port.free(frame);
            return false;
        }
        let _ = self.tx.push(frame);
        self.port.tx_burst(&mut self.tx).unwrap_or(0) > 0
    }

    /// Answers a request for one of this host's addresses, and learns the asker, or the
    /// target of a reply.
    fn discovery(&mut self, frame: &[u8]) {
        let Ok(message) = wire::parse(frame) else {
            return;
        };
        match message {
            Message::Request { sender, sender_mac, target } => {
                if let Some(mac) = sender_mac
                    && !sender.is_unspecified()
                {
                    self.neighbours.insert(sender, mac);
                }
                let own = self.addresses.mac;
                let reply = match (target, sender, sender_mac) {
                    (IpAddr::V4(target), IpAddr::V4(asker), Some(asker_mac))
                        if target == self.addresses.v4 =>
                    {
                        wire::arp_reply(own, target, asker_mac, asker)
                    }
                    (IpAddr::V6(target), IpAddr::V6(asker), asker_mac)
                        if target == self.addresses.v6 =>
                    {
                        host_advertisement(own, target, asker_mac, asker)
                    }
                    _ => return,
                };
                self.send(&reply);
            }
            Message::Reply { target, target_mac, .. } => {
                self.neighbours.insert(target, target_mac);
            }
        }
    }
}

/// A neighbour advertisement from a host: svrd's router advertisement with the router flag
/// cleared and the checksum computed again.
fn host_advertisement(
    mac: [u8; 6],
    target: Ipv6Addr,
    asker_mac: Option<[u8; 6]>,
    asker: Ipv6Addr,
) -> Vec<u8> {
    let mut frame = wire::neighbour_advertisement(mac, target, asker_mac, asker);
    if let Some(flags) = frame.get_mut(ADVERTISEMENT_FLAGS) {
        *flags &= !FLAG_ROUTER;
    }
    let destination = frame
        .get(ETHERNET_LEN + 24..ETHERNET_LEN + 40)
        .and_then(|bytes| <[u8; 16]>::try_from(bytes).ok())
        .map(Ipv6Addr::from)
        .unwrap_or(asker);
    if let Some(message) = frame.get_mut(ETHERNET_LEN + IPV6_LEN..) {
        checksum::fill_l4(target.into(), destination.into(), protocol::ICMPV6, message);
    }
    frame
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_advertisement_clears_router_flag() {
        let target: Ipv6Addr = "fd31:5::10".parse().unwrap();
        let asker: Ipv6Addr = "fd31:5::1".parse().unwrap();
        let frame = host_advertisement([2, 0, 0, 0, 0, 1], target, Some([2, 0, 0, 0, 0, 2]), asker);
        assert_eq!(frame[ADVERTISEMENT_FLAGS] & FLAG_ROUTER, 0);
        match wire::parse(&frame) {
            Ok(Message::Reply { target: parsed, target_mac, solicited }) => {
                assert_eq!(parsed, IpAddr::V6(target));
                assert_eq!(target_mac, [2, 0, 0, 0, 0, 1]);
                assert!(solicited);
            }
            other => panic!("not a valid advertisement: {other:?}"),
        }
    }
}
