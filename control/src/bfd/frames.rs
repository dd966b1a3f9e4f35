//! BFD over Ethernet frames that the dataplane workers carry: the workers punt BFD packets
//! they receive on WAN ports into [`ControlQueues::punted`], and transmit the frames this
//! transport queues on [`ControlQueues::to_send`]. The kernel sees neither, so this is how
//! BFD runs on ports the kernel does not own (DPDK), and on AF_XDP ports whose filter
//! redirects the BFD port too.
//!
//! Each frame is built in full here: Ethernet, IPv4 or IPv6 with TTL 255 and DSCP CS6, and
//! UDP with its checksum. A [`LinkResolver`] gives the port and the link-layer addresses.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;
use std::time::Duration;

use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use rand::RngExt;
use tracing::debug;

use svr_dataplane::epoch::{EpochReader, InterfaceId};
use svr_dataplane::forward::FiveTuple;
use svr_dataplane::forward::checksum::{self, protocol};
use svr_dataplane::forward::headers::{IpHeaderFields, Macs, emit_outer, outer_header_len};
use svr_dataplane::forward::parse::parse_frame;
use svr_dataplane::worker::{ControlPacket, ControlQueues};

use super::driver::{DriverError, Received, Transport};
use super::engine::PathSpec;
use super::socket::BFD_TOS;
use super::{Flavour, GTSM_TTL, PEER_PATH_PORT, SINGLE_HOP_PORT, SINGLE_HOP_SOURCE_PORTS};

/// Where a BFD packet from one local address to one remote address leaves.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LinkRoute {
    /// The port to send it on.
    pub port: InterfaceId,
    /// The port's MAC address and the next hop's.
    pub macs: Macs,
}

/// Why a BFD packet has no way out.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum LinkError {
    /// No port has the local address of the path.
    NoPort { local: IpAddr },
    /// The next hop's link-layer address is not known yet.
    NoNeighbour { port: InterfaceId, next_hop: IpAddr },
}

impl fmt::Display for LinkError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            LinkError::NoPort { local } => write!(f, "no port has the address {local}"),
            LinkError::NoNeighbour { port, next_hop } => {
                write!(f, "no neighbour entry for next hop {next_hop} on port {port}")
            }
        }
    }
}

impl std::error::Error for LinkError {}

/// Finds the port and link-layer addresses of BFD packets.
pub trait LinkResolver: Send + fmt::Debug {
    /// Returns where a packet from `local` to `remote` leaves.
    fn resolve(&self, local: IpAddr, remote: IpAddr) -> Result<LinkRoute, LinkError>;
}

/// Resolves through the key epochs the control thread publishes: the peer path with the
/// local and remote address gives the port and its gateway, the port's interface gives the
/// source MAC, and the epoch's neighbour table gives the next hop's MAC.
#[derive(Debug)]
pub struct EpochLinks {
    reader: EpochReader,
}

impl EpochLinks {
    pub fn new(reader: EpochReader) -> EpochLinks {
        EpochLinks { reader }
    }
}

impl LinkResolver for EpochLinks {
    fn resolve(&self, local: IpAddr, remote: IpAddr) -> Result<LinkRoute, LinkError> {
        let epoch = self.reader.pin();
        let path = epoch
            .peers
            .iter()
            .flat_map(|peer| &peer.paths)
            .find(|path| path.local == local && path.peer == remote)
            .ok_or(LinkError::NoPort { local })?;
        let interface =
            epoch.interfaces.get(usize::from(path.interface)).ok_or(LinkError::NoPort { local })?;
        let next_hop = path.gateway.unwrap_or(remote);
        let destination = epoch
            .neighbour(path.interface, next_hop)
            .ok_or(LinkError::NoNeighbour { port: path.interface, next_hop })?;
        Ok(LinkRoute { port: path.interface, macs: Macs { source: interface.mac, destination } })
    }
}

/// Counts of frames the transport could not use or send.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FrameCounters {
    /// Frames that are not IPv4 or IPv6 UDP to a BFD port, or whose UDP checksum is wrong.
    pub malformed: u64,
    /// Datagrams not sent because no spare buffer or queue slot was free.
    pub queue_full: u64,
    /// Datagrams held back because the next hop's link-layer address was not known yet.
    pub held: u64,
    /// Held datagrams dropped because the address stayed unknown for [`HOLD_TIME`], or
    /// because [`MAX_HELD`] were already waiting.
    pub held_dropped: u64,
}

/// Maximum time a datagram waits for its next hop's link-layer address.
pub const HOLD_TIME: Duration = Duration::from_secs(3);

/// Maximum number of datagrams waiting for link-layer addresses at once. When it is
/// reached, the oldest is dropped.
pub const MAX_HELD: usize = 64;

/// A datagram waiting for its next hop's link-layer address, as the kernel holds packets
/// while it resolves a neighbour. Key exchange messages ride on BFD, so one lost to an
/// unresolved neighbour would wait for the exchange's retransmit interval.
#[derive(Debug)]
struct Held {
    path: usize,
    spec: PathSpec,
    datagram: Vec<u8>,
    since: std::time::Instant,
}

/// BFD over the dataplane workers' control queues.
#[derive(Debug)]
pub struct FrameTransport {
    queues: Arc<ControlQueues>,
    links: Box<dyn LinkResolver>,
    /// Per attached path: the UDP source port it sends from.
    source_ports: Vec<u16>,
    /// Datagrams waiting for a link-layer address, oldest first.
    held: std::collections::VecDeque<Held>,
    /// IPv4 identification of the next packet sent.
    identification: u16,
    counters: FrameCounters,
    /// Maximum sleep between looks at the queue when it has no doorbell.
    idle_poll: Duration,
    /// Maximum time a datagram is held for a link-layer address ([`HOLD_TIME`]).
    hold_time: Duration,
}

impl FrameTransport {
    /// Returns a transport over `queues` that sends to the ports and addresses `links` resolves.
    pub fn new(queues: Arc<ControlQueues>, links: Box<dyn LinkResolver>) -> FrameTransport {
        FrameTransport {
            queues,
            links,
            source_ports: Vec::new(),
            held: std::collections::VecDeque::new(),
            identification: 0,
            counters: FrameCounters::default(),
            idle_poll: Duration::from_millis(1),
            hold_time: HOLD_TIME,
        }
    }

    /// Returns the counts of frames that could not be used or sent.
    pub fn counters(&self) -> FrameCounters {
        self.counters
    }

    /// Builds the frame of `datagram` from `local`:`source_port` to `remote` into `buffer`.
    fn build(
        &mut self,
        buffer: &mut Vec<u8>,
        route: LinkRoute,
        tuple: &FiveTuple,
        datagram: &[u8],
    ) -> Result<(), String> {
        let header_len = outer_header_len(tuple.source);
        buffer.clear();
        buffer.resize(header_len, 0);
        buffer.extend_from_slice(datagram);
        self.identification = self.identification.wrapping_add(1);
        let fields = IpHeaderFields {
            tos: BFD_TOS,
            ttl: GTSM_TTL,
            identification: self.identification,
            dont_fragment: true,
            flow_label: 0,
        };
        emit_outer(buffer, route.macs, tuple, &fields).map_err(|error| error.to_string())
    }
}

impl Transport for FrameTransport {
    fn attach(&mut self, spec: &PathSpec) -> Result<(), DriverError> {
        let port = match spec.flavour {
            Flavour::PeerPath => PEER_PATH_PORT,
            // RFC 5881 section 4: one source port from 49152-65535 for all of a session's
            // packets.
            Flavour::SingleHop => rand::rng().random_range(SINGLE_HOP_SOURCE_PORTS),
        };
        self.source_ports.push(port);
        Ok(())
    }

    fn wait(&mut self, timeout: Duration) -> Result<(), DriverError> {
        if !self.queues.punted.is_empty() {
            return Ok(());
        }
        let Some(bell) = &self.queues.punt_bell else {
            std::thread::sleep(timeout.min(self.idle_poll));
            return Ok(());
        };
        bell.prepare_sleep();
        // A packet queued before the flag was visible is seen here; one queued after it
        // rings the doorbell.
        if self.queues.punted.is_empty() {
            let mut fds = [PollFd::new(bell.fd(), PollFlags::POLLIN)];
            let millis = u16::try_from(timeout.as_millis()).unwrap_or(u16::MAX);
            match poll(&mut fds, PollTimeout::from(millis)) {
                Ok(_) | Err(nix::errno::Errno::EINTR) => {}
                Err(errno) => {
                    bell.wake_up();
                    return Err(DriverError::Poll { source: std::io::Error::from(errno) });
                }
            }
        }
        bell.wake_up();
        Ok(())
    }

    fn receive(&mut self, limit: usize, handle: &mut dyn FnMut(Received<'_>)) {
        for _ in 0..limit {
            let Some(ControlPacket { port, frame }) = self.queues.punted.pop() else {
                break;
            };
            match received(&frame) {
                Some(datagram) => handle(datagram),
                None => {
                    self.counters.malformed += 1;
                    debug!(port, len = frame.len(), "punted bfd frame dropped: malformed");
                }
            }
            // The spare queue holds twice as many buffers as any one queue, so it has room.
            let _ = self.queues.spare.push(frame);
        }
    }

    fn send(&mut self, path: usize, spec: &PathSpec, datagram: &[u8]) -> Result<(), String> {
        // Datagrams already waiting for this path's next hop keep their order.
        if self.held.iter().any(|held| held.path == path) {
            self.hold(path, spec, datagram);
            return Ok(());
        }
        match self.links.resolve(spec.local, spec.remote) {
            Ok(route) => self.send_to(route, path, spec, datagram),
            Err(LinkError::NoNeighbour { .. }) => {
                self.hold(path, spec, datagram);
                Ok(())
            }
            Err(error) => Err(error.to_string()),
        }
    }

    fn retry_held(&mut self) {
        let now = std::time::Instant::now();
        let mut waiting = std::collections::VecDeque::new();
        while let Some(held) = self.held.pop_front() {
            // A later datagram of a path still waiting waits too, to keep the order.
            if waiting.iter().any(|w: &Held| w.path == held.path) {
                waiting.push_back(held);
                continue;
            }
            match self.links.resolve(held.spec.local, held.spec.remote) {
                Ok(route) => {
                    if let Err(error) = self.send_to(route, held.path, &held.spec, &held.datagram) {
                        debug!(remote = %held.spec.remote, %error, "held bfd packet not sent");
                    }
                }
                Err(_) if now.duration_since(held.since) < self.hold_time => {
                    waiting.push_back(held)
                }
                Err(error) => {
                    self.counters.held_dropped += 1;
                    debug!(remote = %held.spec.remote, %error, "held bfd packet dropped");
                }
            }
        }
        self.held = waiting;
    }
}

impl FrameTransport {
    /// Keeps `datagram` until its next hop's link-layer address is known.
    fn hold(&mut self, path: usize, spec: &PathSpec, datagram: &[u8]) {
        if self.held.len() >= MAX_HELD {
            self.held.pop_front();
            self.counters.held_dropped += 1;
        }
        self.counters.held += 1;
        self.held.push_back(Held {
            path,
            spec: *spec,
            datagram: datagram.to_vec(),
            since: std::time::Instant::now(),
        });
    }

    /// Builds the frame of `datagram` on `path` and queues it for the workers.
    fn send_to(
        &mut self,
        route: LinkRoute,
        path: usize,
        spec: &PathSpec,
        datagram: &[u8],
    ) -> Result<(), String> {
        let source_port = *self.source_ports.get(path).ok_or("path not attached")?;
        let tuple = FiveTuple {
            source: spec.local,
            destination: spec.remote,
            source_port,
            destination_port: spec.flavour.port(),
            protocol: protocol::UDP,
        };
        let Some(mut buffer) = self.queues.spare.pop() else {
            self.counters.queue_full += 1;
            return Err("no spare control buffer".into());
        };
        if let Err(error) = self.build(&mut buffer, route, &tuple, datagram) {
            let _ = self.queues.spare.push(buffer);
            return Err(error);
        }
        if let Err(packet) =
            self.queues.to_send.push(ControlPacket { port: route.port, frame: buffer })
        {
            let _ = self.queues.spare.push(packet.frame);
            self.counters.queue_full += 1;
            return Err("control transmit queue full".into());
        }
        Ok(())
    }
}

/// Reads the BFD datagram of a punted frame: IPv4 or IPv6, UDP with a right checksum, to
/// one of the two BFD ports.
fn received(frame: &[u8]) -> Option<Received<'_>> {
    let parsed = parse_frame(frame).ok()?;
    let tuple = parsed.tuple;
    if tuple.protocol != protocol::UDP {
        return None;
    }
    let flavour = match tuple.destination_port {
        PEER_PATH_PORT => Flavour::PeerPath,
        SINGLE_HOP_PORT => Flavour::SingleHop,
        _ => return None,
    };
    let udp = frame.get(parsed.l4_start..parsed.end)?;
    if !checksum::verify_l4(tuple.source, tuple.destination, protocol::UDP, udp) {
        return None;
    }
    Some(Received {
        flavour,
        local: tuple.destination,
        remote: tuple.source,
        ttl: Some(parsed.ip.ttl()),
        datagram: frame.get(parsed.payload_start..parsed.end)?,
    })
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    const LOCAL_MAC: [u8; 6] = [2, 0, 0, 0, 0, 1];
    const PEER_MAC: [u8; 6] = [2, 0, 0, 0, 0, 2];

    /// Resolves every pair to the route it holds, which a test may change, or to no
    /// neighbour.
    #[derive(Debug, Clone)]
    struct FixedLinks(Arc<std::sync::Mutex<Option<LinkRoute>>>);

    impl LinkResolver for FixedLinks {
        fn resolve(&self, _local: IpAddr, remote: IpAddr) -> Result<LinkRoute, LinkError> {
            let route = *self.0.lock().unwrap();
            route.ok_or(LinkError::NoNeighbour { port: 3, next_hop: remote })
        }
    }

    fn transport(route: Option<LinkRoute>) -> (FrameTransport, Arc<ControlQueues>) {
        let (transport, queues, _) = switchable(route);
        (transport, queues)
    }

    fn switchable(route: Option<LinkRoute>) -> (FrameTransport, Arc<ControlQueues>, FixedLinks) {
        let queues = Arc::new(ControlQueues::new(4, 2048));
        let links = FixedLinks(Arc::new(std::sync::Mutex::new(route)));
        let transport = FrameTransport::new(Arc::clone(&queues), Box::new(links.clone()));
        (transport, queues, links)
    }

    fn route() -> Option<LinkRoute> {
        Some(LinkRoute { port: 3, macs: Macs { source: LOCAL_MAC, destination: PEER_MAC } })
    }

    /// Sends `datagram` from `local` to `remote` and returns the queued frame.
    fn sent_frame(local: IpAddr, remote: IpAddr, flavour: Flavour, datagram: &[u8]) -> Vec<u8> {
        let (mut transport, queues) = transport(route());
        let spec = PathSpec::new(flavour, local, remote);
        transport.attach(&spec).unwrap();
        transport.send(0, &spec, datagram).unwrap();
        let packet = queues.to_send.pop().expect("a queued frame");
        assert_eq!(packet.port, 3);
        packet.frame
    }

    #[test]
    fn sent_ipv4_frame_fields() {
        let local = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
        let remote = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
        let frame = sent_frame(local, remote, Flavour::PeerPath, b"bfd control");

        assert_eq!(frame[0..6], PEER_MAC, "destination mac");
        assert_eq!(frame[6..12], LOCAL_MAC, "source mac");
        let parsed = parse_frame(&frame).unwrap();
        assert_eq!(parsed.tuple.source, local);
        assert_eq!(parsed.tuple.destination, remote);
        assert_eq!(parsed.tuple.source_port, PEER_PATH_PORT);
        assert_eq!(parsed.tuple.destination_port, PEER_PATH_PORT);
        assert_eq!(parsed.ip.ttl(), 255);
        assert_eq!(parsed.ip.tos(), 0xc0);
        assert_eq!(&frame[parsed.payload_start..parsed.end], b"bfd control");
        assert_eq!(checksum::ipv4_header(&frame[14..34]), 0, "ipv4 header checksum");
        let udp = &frame[parsed.l4_start..parsed.end];
        assert!(checksum::verify_l4(local, remote, protocol::UDP, udp), "udp checksum");
    }

    #[test]
    fn sent_frame_received_back() {
        let local = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 1));
        let remote = IpAddr::V6(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, 2));
        let frame = sent_frame(local, remote, Flavour::SingleHop, b"single hop");
        let parsed = parse_frame(&frame).unwrap();
        assert!((49152..=65535).contains(&parsed.tuple.source_port), "single-hop source port");

        // The receiving side sees the datagram from `local` to `remote`.
        let received = received(&frame).expect("a valid datagram");
        assert_eq!(received.flavour, Flavour::SingleHop);
        assert_eq!(received.local, remote);
        assert_eq!(received.remote, local);
        assert_eq!(received.ttl, Some(255));
        assert_eq!(received.datagram, b"single hop");
    }

    #[test]
    fn corrupt_checksum_rejected() {
        let local = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
        let remote = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
        let mut frame = sent_frame(local, remote, Flavour::PeerPath, b"bfd control");
        let last = frame.len() - 1;
        frame[last] ^= 0x01;
        assert!(received(&frame).is_none());
    }

    #[test]
    fn other_port_rejected() {
        let local = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
        let remote = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
        let mut frame = sent_frame(local, remote, Flavour::PeerPath, b"bfd control");
        // Destination port 1281, with the checksum adjusted so only the port is wrong.
        frame[36..38].copy_from_slice(&1281u16.to_be_bytes());
        frame[40..42].copy_from_slice(&[0, 0]);
        let end = frame.len();
        checksum::fill_l4(local, remote, protocol::UDP, &mut frame[34..end]);
        assert!(received(&frame).is_none());
    }

    #[test]
    fn truncated_frames_rejected() {
        let local = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1));
        let remote = IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2));
        let frame = sent_frame(local, remote, Flavour::PeerPath, b"bfd control");
        for len in 0..frame.len() {
            assert!(received(&frame[..len]).is_none(), "frame cut to {len} bytes");
        }
    }

    #[test]
    fn receive_counts_malformed_and_recycles() {
        let (mut transport, queues) = transport(route());
        let spares = queues.spare.len();
        let garbage = queues.spare.pop().unwrap();
        queues.punted.push(ControlPacket { port: 0, frame: garbage }).unwrap();
        let mut seen = 0;
        transport.receive(8, &mut |_| seen += 1);
        assert_eq!(seen, 0);
        assert_eq!(transport.counters().malformed, 1);
        assert_eq!(queues.spare.len(), spares, "buffer returned to the spare queue");
    }

    fn peer_spec() -> PathSpec {
        PathSpec::new(
            Flavour::PeerPath,
            IpAddr::V4(Ipv4Addr::new(10, 1, 0, 1)),
            IpAddr::V4(Ipv4Addr::new(10, 1, 0, 2)),
        )
    }

    #[test]
    fn unresolved_neighbour_held_in_order() {
        let (mut transport, queues, links) = switchable(None);
        let spec = peer_spec();
        transport.attach(&spec).unwrap();
        transport.send(0, &spec, b"first").unwrap();
        transport.send(0, &spec, b"second").unwrap();
        transport.retry_held();
        assert!(queues.to_send.is_empty(), "nothing sent without a link-layer address");
        assert_eq!(transport.counters().held, 2);

        // Once the neighbour is known, both go in their order, and a third after them.
        *links.0.lock().unwrap() = route();
        transport.send(0, &spec, b"third").unwrap();
        transport.retry_held();
        let payloads: Vec<Vec<u8>> = std::iter::from_fn(|| queues.to_send.pop())
            .map(|packet| {
                let parsed = parse_frame(&packet.frame).unwrap();
                packet.frame[parsed.payload_start..parsed.end].to_vec()
            })
            .collect();
        assert_eq!(payloads, [b"first".to_vec(), b"second".to_vec(), b"third".to_vec()]);
        assert_eq!(transport.counters().held_dropped, 0);
    }

    #[test]
    fn held_datagram_expires() {
        let (mut transport, queues) = transport(None);
        transport.hold_time = Duration::ZERO;
        let spec = peer_spec();
        transport.attach(&spec).unwrap();
        transport.send(0, &spec, b"x").unwrap();
        transport.retry_held();
        assert!(queues.to_send.is_empty());
        assert_eq!(transport.counters().held_dropped, 1);
    }

    #[test]
    fn held_queue_bounded() {
        let (mut transport, _queues) = transport(None);
        let spec = peer_spec();
        transport.attach(&spec).unwrap();
        for _ in 0..MAX_HELD + 3 {
            transport.send(0, &spec, b"x").unwrap();
        }
        assert_eq!(transport.held.len(), MAX_HELD);
        assert_eq!(transport.counters().held_dropped, 3);
    }

    #[test]
    fn unknown_local_address_rejected() {
        #[derive(Debug)]
        struct NoPort;
        impl LinkResolver for NoPort {
            fn resolve(&self, local: IpAddr, _remote: IpAddr) -> Result<LinkRoute, LinkError> {
                Err(LinkError::NoPort { local })
            }
        }
        let queues = Arc::new(ControlQueues::new(4, 2048));
        let mut transport = FrameTransport::new(queues, Box::new(NoPort));
        let spec = peer_spec();
        transport.attach(&spec).unwrap();
        let error = transport.send(0, &spec, b"x").unwrap_err();
        assert_eq!(error, "no port has the address 10.1.0.1");
    }

    #[test]
    fn full_transmit_queue_counted() {
        let (mut transport, _queues) = transport(route());
        let spec = peer_spec();
        transport.attach(&spec).unwrap();
        for _ in 0..4 {
            transport.send(0, &spec, b"x").unwrap();
        }
        assert!(transport.send(0, &spec, b"x").is_err(), "fifth send with a queue of four");
        assert_eq!(transport.counters().queue_full, 1);
    }
}
