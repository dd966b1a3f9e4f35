//! The per-worker packet engine: takes one received frame and the current epoch, and
//! returns the frame to send and its port, or the reason for dropping it.
//!
//! - LAN to WAN (ingress, and the reverse direction on an egress): parse, find or create
//!   the session, seal the carried payload with metadata while the handshake needs it,
//!   and write the outer Ethernet, IP and UDP headers between the waypoints.
//! - WAN to LAN: authenticate and decrypt in the receive order of `docs/protocol.md`
//!   section 4.6 (replay pre-check, tag, metadata, payload, window update), create the
//!   egress session from the metadata, and restore the original headers.
//! - WAN to WAN (a transit session, whose service routes to another peer): authenticate
//!   as above but leave the carried payload encrypted, and send the packet on to the next
//!   peer ([`transit`]).
//!
//! A dropped packet changes no session state, so a bad packet cannot hurt other packets of
//! its session or other sessions.

use std::collections::VecDeque;
use std::net::IpAddr;
use std::ops::Range;
use std::time::{Duration, Instant};

use tracing::{debug, trace, warn};

use super::FiveTuple;
use super::checksum::{self, protocol};
use super::fragment::{FragmentCounters, FragmentError, Insert, Reassembler, ReassemblyConfig};
use super::headers::{
    IpHeaderFields, Macs, emit_outer, emit_restored, outer_header_len, restored_header_len,
};
use super::icmp::{IcmpConfig, IcmpCounters, IcmpLimiter};
use super::lan_fragment::{datagram_len, emit_datagram, parse_ipv4_fragment};
use super::mss::clamp_mss;
use super::oversize::{Fit, FragmentOutput, answer_too_big, choose_fit, seal_fragments};
use super::parse::{
    ETHERNET_LEN, IPV6_LEN, IpFields, ParseError, ParsedFrame, UDP_LEN, parse_frame,
    parse_wan_frame,
};
use crate::counters::{Counters, DropReason};
use crate::crypto::mb::Width;
use crate::crypto::{
    BLOCK_LEN, CryptoError, MAX_TAG_LEN, MetadataKeys, PairKeys, PayloadKeyTlv, PayloadSecret,
    SEQUENCE_LEN, SessionKeys, Suite,
};
use crate::epoch::{InterfaceId, InterfaceRole, KeyEpoch, NextHop};
use crate::io::{Frame, MAX_BURST};
use crate::packet::{Fragment, HeaderTlv, PayloadKeyBlob, PayloadTlv};
use crate::replay::ReplayWindow;
use crate::sealed::{
    Opened, Outgoing, OutgoingMetadata, ReceiveError, Received, ReceivedMetadata, SealError,
    classify, decrypt_carried, open_with_metadata, open_without_metadata, peek_sequence, seal,
    sealed_len_bound,
};
use crate::session::{
    PayloadKeys, Refusal, Role, RotationError, RouteTlvs, Session, SessionId, SessionMetadata,
    SessionTable, TableError,
};
use crate::shard::flow_class;

mod burst;
mod transit;

use burst::FoundAhead;

/// UDP ports of BFD control packets that WAN ports hand to the control thread: 3784 is
/// single-hop BFD (RFC 5881 section 4), 1280 the port SVR peers run BFD on.
pub const BFD_PORTS: [u16; 2] = [1280, 3784];

/// The pools output frames come from, by port.
pub trait FrameSource {
    /// Takes an empty frame from `port`'s pool.
    fn alloc(&mut self, port: InterfaceId) -> Option<Frame>;
    /// Returns an unsent frame to `port`'s pool.
    fn free(&mut self, port: InterfaceId, frame: Frame);
}

/// Settings of one engine.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EngineConfig {
    /// This worker's index, which selects its share of the waypoint ports.
    pub worker: usize,
    /// Number of workers sharing the port pool.
    pub workers: usize,
    /// Maximum number of sessions in the shard.
    pub sessions: usize,
    /// Sessions created from forward metadata under one Security ID that the shard's
    /// tombstones hold, deleted and live together ([`crate::session::Tombstones`]).
    pub tombstones: usize,
    /// Idle time after which a session is deleted.
    pub idle_timeout: Duration,
    /// Grace time of payload-key rotations (30 s in service, shorter in tests).
    pub rotation_grace: Duration,
    /// Whether LAN UDP datagrams with a wrong checksum are dropped. A UDP session carries
    /// only the datagram's payload, and the egress computes a new checksum over it, so
    /// without this check it would hide corruption that happened before the ingress. TCP
    /// and ICMP messages travel with their own checksum, which the egress leaves as it is
    /// ([`checksum::travels_with_message`]), so the receiving host finds such corruption
    /// itself. Hosts on veth must send full checksums (transmit checksum offload off).
    pub verify_lan_checksums: bool,
    /// MTU of the WAN links in bytes (IP packet size). Longer packets are sent as SVR
    /// fragments or get an ICMP error in reply, and TCP SYNs have their MSS clamped to
    /// fit it.
    pub wan_mtu: u16,
    /// Limits of the reassembly of SVR fragments from peers; its maximum number of
    /// fragments also bounds the fragments of one packet sent.
    pub reassembly: ReassemblyConfig,
    /// Rate limit of ICMP errors sent to LAN hosts.
    pub icmp: IcmpConfig,
    /// Crypto path of the session packets in [`Engine::process_burst`].
    pub crypto: CryptoPath,
}

/// Way the session packets of a received burst are sealed and opened.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CryptoPath {
    /// One packet at a time, as [`Engine::process`] does.
    Single,
    /// All together through the multi-buffer engine ([`crate::crypto::mb`]), with HMAC
    /// lanes of this width. A width the CPU lacks runs as [`Width::Scalar`].
    Burst(Width),
}

impl Default for CryptoPath {
    /// Returns the multi-buffer engine at the widest width this CPU runs.
    fn default() -> CryptoPath {
        CryptoPath::Burst(Width::detect())
    }
}

impl Default for EngineConfig {
    fn default() -> EngineConfig {
        EngineConfig {
            worker: 0,
            workers: 1,
            sessions: 16_384,
            tombstones: crate::session::TOMBSTONE_CAPACITY,
            idle_timeout: Duration::from_secs(180),
            rotation_grace: Duration::from_secs(30),
            verify_lan_checksums: true,
            wan_mtu: 1500,
            reassembly: ReassemblyConfig::default(),
            icmp: IcmpConfig::default(),
            crypto: CryptoPath::default(),
        }
    }
}

/// The packet engine of one worker: its session shard and counters.
#[derive(Debug)]
pub struct Engine {
    config: EngineConfig,
    sessions: SessionTable,
    routes: RouteTlvs,
    counters: Counters,
    warnings: WarnLimiter,
    reassembly: Reassembler,
    /// Reassembly of IPv4 fragments from LAN hosts.
    lan_reassembly: Reassembler,
    icmp: IcmpLimiter,
    /// Frames made by the last call to [`Engine::process`] beyond the one it returned, or
    /// every frame made by the last call to [`Engine::process_burst`].
    outbox: VecDeque<(InterfaceId, Frame)>,
    /// Packets of the burst being processed that wait for the multi-buffer engine.
    staged: burst::Staging,
    /// Extended id of the next packet sent as fragments.
    next_fragment_id: u32,
    /// Suite of the payload keys of the sessions this router creates.
    session_suite: Suite,
    /// LAN next hops without a neighbour entry, at most [`MAX_UNRESOLVED`], until
    /// [`Engine::drain_unresolved`] takes them.
    unresolved: Vec<(InterfaceId, IpAddr)>,
}

/// Maximum number of unresolved next hops an engine keeps between two drains. More in one burst are
/// still dropped and counted, but not reported.
pub const MAX_UNRESOLVED: usize = 16;

/// At most one warning per interval for dropped packets that point at a faulty or hostile
/// sender, with the number suppressed since the last one.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
struct WarnLimiter {
    last: Option<Instant>,
    suppressed: u64,
}

/// Minimum time between two drop warnings of one engine.
const WARN_INTERVAL: Duration = Duration::from_secs(1);

/// Whether a frame received on a WAN port is a BFD control packet for the control thread.
pub fn is_control_packet(frame: &[u8]) -> bool {
    match parse_frame(frame) {
        Ok(parsed) => {
            parsed.tuple.protocol == protocol::UDP
                && BFD_PORTS.contains(&parsed.tuple.destination_port)
        }
        Err(_) => false,
    }
}

/// EtherType of ARP.
pub const ETHERTYPE_ARP: u16 = 0x0806;

/// ICMPv6 types of neighbour solicitation and advertisement (RFC 4861 section 4).
pub const NEIGHBOUR_DISCOVERY_TYPES: [u8; 2] = [135, 136];

/// Whether a frame is ARP, or an IPv6 neighbour solicitation or advertisement, which the
/// control thread answers and learns from on ports without a kernel stack (DPDK).
pub fn is_neighbour_discovery(frame: &[u8]) -> bool {
    if frame.len() < 14 {
        return false;
    }
    if u16::from_be_bytes([frame[12], frame[13]]) == ETHERTYPE_ARP {
        return true;
    }
    match parse_frame(frame) {
        Ok(parsed) => {
            parsed.tuple.protocol == protocol::ICMPV6
                && frame
                    .get(parsed.l4_start)
                    .is_some_and(|kind| NEIGHBOUR_DISCOVERY_TYPES.contains(kind))
        }
        Err(_) => false,
    }
}

impl Engine {
    /// An engine with an empty shard for `ports` ports.
    pub fn new(config: EngineConfig, ports: usize) -> Engine {
        Engine {
            sessions: SessionTable::new(
                config.sessions,
                config.worker,
                config.workers,
                config.tombstones,
            ),
            routes: RouteTlvs::default(),
            counters: Counters::new(ports),
            warnings: WarnLimiter { last: None, suppressed: 0 },
            reassembly: Reassembler::new(config.reassembly),
            lan_reassembly: Reassembler::new(config.reassembly),
            icmp: IcmpLimiter::new(config.icmp),
            outbox: VecDeque::with_capacity(2 * MAX_BURST + config.reassembly.max_fragments),
            staged: burst::Staging::new(),
            next_fragment_id: 0,
            session_suite: crate::session::SESSION_SUITE,
            unresolved: Vec::with_capacity(MAX_UNRESOLVED),
            config,
        }
    }

    /// Takes the LAN next hops that had no neighbour entry since the last call, each with
    /// its port, without repeats.
    pub fn drain_unresolved(&mut self) -> std::vec::Drain<'_, (InterfaceId, IpAddr)> {
        self.unresolved.drain(..)
    }

    /// Records a LAN next hop without a neighbour entry.
    fn note_unresolved(unresolved: &mut Vec<(InterfaceId, IpAddr)>, hop: (InterfaceId, IpAddr)) {
        if unresolved.len() < MAX_UNRESOLVED && !unresolved.contains(&hop) {
            unresolved.push(hop);
        }
    }

    /// The counters.
    pub fn counters(&self) -> &Counters {
        &self.counters
    }

    /// The counters, writable (the worker counts port traffic here).
    pub fn counters_mut(&mut self) -> &mut Counters {
        &mut self.counters
    }

    /// Counters of SVR fragments sent and of their reassembly.
    pub fn fragment_counters(&self) -> &FragmentCounters {
        self.reassembly.counters()
    }

    /// Returns the counters of the reassembly of IPv4 fragments from LAN hosts.
    pub fn lan_fragment_counters(&self) -> &FragmentCounters {
        self.lan_reassembly.counters()
    }

    /// Counters of the ICMP errors sent to LAN hosts.
    pub fn icmp_counters(&self) -> &IcmpCounters {
        self.icmp.counters()
    }

    /// Returns the reassembly of fragments from peers.
    pub fn reassembly(&self) -> &Reassembler {
        &self.reassembly
    }

    /// Takes the next frame [`Engine::process`] made beyond the one it returned: the
    /// further fragments of a packet sent as SVR fragments. Send them after that one, in
    /// this order, before the next call to `process`.
    pub fn pop_output(&mut self) -> Option<(InterfaceId, Frame)> {
        self.outbox.pop_front()
    }

    /// The session shard.
    pub fn sessions(&self) -> &SessionTable {
        &self.sessions
    }

    /// The settings.
    pub fn config(&self) -> &EngineConfig {
        &self.config
    }

    /// Processes `frame`, received on `port`, and returns the frame to send with its port,
    /// or `None` for an SVR fragment held until its packet is complete. Further frames, when
    /// a packet is sent as fragments, wait in [`Engine::pop_output`]. Output frames come
    /// from `frames`. The received frame is left for the caller to free. A drop is counted
    /// before it is returned.
    pub fn process(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
    ) -> Result<Option<(InterfaceId, Frame)>, DropReason> {
        self.process_ahead(epoch, now, port, frame, frames, None)
    }

    /// Processes `frame` as [`Engine::process`] does, with the lookup of its session that
    /// the batched lookup of its burst did ahead, if any.
    fn process_ahead(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
        ahead: Option<FoundAhead>,
    ) -> Result<Option<(InterfaceId, Frame)>, DropReason> {
        let result = match epoch.interfaces.get(usize::from(port)).map(|i| i.role) {
            Some(InterfaceRole::Lan { tenant }) => match parse_frame(frame.data()) {
                Ok(parsed) => self
                    .handle_lan(epoch, now, port, tenant, parsed, frame, frames, ahead)
                    .map(Some),
                Err(ParseError::Fragment) => {
                    self.handle_lan_fragment(epoch, now, port, tenant, frame, frames)
                }
                Err(_) => Err(DropReason::Malformed),
            },
            Some(InterfaceRole::Wan) => self.handle_wan(epoch, now, port, frame, frames, ahead),
            None => Err(DropReason::NoRoute),
        };
        if let Err(reason) = &result {
            self.count_drop(now, port, *reason);
        }
        result
    }

    /// Counts a dropped packet received on `port`, and logs it when it points at a faulty
    /// or hostile sender.
    fn count_drop(&mut self, now: Instant, port: InterfaceId, reason: DropReason) {
        trace!(port, reason = reason.name(), "packet dropped");
        self.counters.drop(reason);
        self.warn_limited(now, port, reason);
    }

    /// Logs a drop that points at a faulty or hostile sender, at most once per
    /// [`WARN_INTERVAL`].
    fn warn_limited(&mut self, now: Instant, port: InterfaceId, reason: DropReason) {
        if !matches!(reason, DropReason::Malformed | DropReason::BadTag | DropReason::Replay) {
            return;
        }
        let limiter = &mut self.warnings;
        if limiter.last.is_some_and(|last| now.saturating_duration_since(last) < WARN_INTERVAL) {
            limiter.suppressed += 1;
            return;
        }
        warn!(port, reason = reason.name(), suppressed = limiter.suppressed, "packet dropped");
        limiter.last = Some(now);
        limiter.suppressed = 0;
    }

    /// Copies the count of forgotten tombstones into the counters, and warns when a set has
    /// just been forgotten: the metadata key did not rotate in time, so first packets of
    /// the forgotten sessions could be replayed until it does.
    pub(super) fn count_forgotten_tombstones(&mut self) {
        let forgotten = self.sessions.tombstones().forgotten();
        let before = self.counters.tombstones_forgotten;
        if forgotten > before {
            warn!(
                worker = self.config.worker,
                forgotten = forgotten - before,
                "tombstones of a metadata key filled up before the key retired; \
                 forgot them so that peers can still open sessions"
            );
            self.counters.tombstones_forgotten = forgotten;
        }
    }

    /// Deletes sessions idle past their timeout, visiting at most `budget` slots.
    pub fn expire(&mut self, now: Instant, budget: usize) -> usize {
        let deleted = self.sessions.expire(now, budget);
        self.counters.sessions_expired += deleted as u64;
        self.reassembly.expire(now);
        self.lan_reassembly.expire(now);
        deleted
    }

    /// Drops the tombstones of the Security IDs that `epoch` no longer accepts: a first
    /// packet sealed under a retired metadata key no longer opens, so it needs none.
    pub fn drop_retired_tombstones(&mut self, epoch: &KeyEpoch) {
        let dropped = self
            .sessions
            .tombstones_mut()
            .retain(|security_id| epoch.own_metadata_key(security_id).is_some());
        if dropped > 0 {
            debug!(dropped, "tombstones of retired metadata keys dropped");
        }
    }

    /// Calls `send` with each Security ID whose tombstones passed their high-water mark,
    /// once per Security ID, to have the control thread rotate the metadata key. A
    /// request that `send` refuses (returns false for) is offered again on the next call.
    pub fn send_rotation_requests(&mut self, mut send: impl FnMut(u32) -> bool) {
        self.sessions.tombstones_mut().send_rotation_requests(|security_id| {
            let sent = send(security_id);
            if sent {
                debug!(
                    security_id,
                    "tombstones past high-water mark: metadata key rotation requested"
                );
            }
            sent
        });
    }

    /// Starts a payload-key rotation on an ingress session: the next key is sent in forward
    /// metadata from the next packet on and sealing switches to it after the grace time.
    /// Returns whether a rotation started: only the ingress of a session rotates its key,
    /// and a router that forwards a transit session learns its keys from the ingress.
    pub fn start_rotation(&mut self, id: SessionId, now: Instant) -> Result<bool, RotationError> {
        let grace = self.config.rotation_grace;
        let Some(session) = self.sessions.get_mut(id) else {
            return Ok(false);
        };
        if session.role != Role::Ingress || session.is_transit() {
            return Ok(false);
        }
        let tlv = session.keys.start_rotation(now, grace)?;
        let blob = payload_key_blob(&tlv).map_err(RotationError::Random)?;
        if let PayloadTlv::PayloadKey(old) = &mut session.metadata.last {
            *old = blob;
        }
        session.send_metadata = true;
        debug!(session = %session.uuid, key_id = tlv.key_id, "payload key rotation started");
        self.counters.rotations_started += 1;
        Ok(true)
    }

    /// Starts a rotation on every ingress session that is not already rotating; returns
    /// how many started. The list of session ids is allocated once per call.
    pub fn rotate_all(&mut self, now: Instant) -> usize {
        let ids: Vec<SessionId> = self.sessions.ids().collect();
        ids.into_iter().filter(|id| matches!(self.start_rotation(*id, now), Ok(true))).count()
    }

    /// Holds an IPv4 fragment from a LAN host until its datagram is whole, then sends the
    /// datagram as [`Engine::handle_lan`] does. Returns `None` while it is incomplete.
    fn handle_lan_fragment(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        tenant: crate::epoch::TenantId,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
    ) -> Result<Option<(InterfaceId, Frame)>, DropReason> {
        let fragment = parse_ipv4_fragment(frame.data()).ok_or(DropReason::Malformed)?;
        let key = fragment.datagram_key();
        let piece = &frame.data()[fragment.payload.clone()];
        let index = match self.lan_reassembly.insert(now, key, &fragment.fragment, piece) {
            Ok(Insert::Held) => return Ok(None),
            Ok(Insert::Complete(index)) => index,
            Err(error) => return Err(fragment_drop(error)),
        };

        let Some(mut whole) = frames.alloc(port) else {
            self.lan_reassembly.release(index);
            return Err(DropReason::NoBuffer);
        };
        let datagram = self.lan_reassembly.packet(index);
        let written = match whole.append(datagram_len(datagram.len())) {
            Ok(buffer) => emit_datagram(buffer, frame.data(), &fragment, datagram),
            Err(_) => false,
        };
        self.lan_reassembly.release(index);
        if !written {
            return Err(discard(frames, port, whole, DropReason::TooLong));
        }
        self.lan_reassembly.counters_mut().packets_reassembled += 1;

        let result = match parse_frame(whole.data()) {
            Ok(parsed) => {
                self.handle_lan(epoch, now, port, tenant, parsed, &mut whole, frames, None)
            }
            Err(_) => Err(DropReason::Malformed),
        };
        frames.free(port, whole);
        result.map(Some)
    }

    /// Seals a LAN frame, parsed into `parsed`, towards the peer of its session. `ahead`
    /// is the lookup of its session done by the batched lookup of its burst, if any.
    #[expect(clippy::too_many_arguments, reason = "the frame and its parse travel together")]
    fn handle_lan(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        tenant: crate::epoch::TenantId,
        parsed: ParsedFrame,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
        ahead: Option<FoundAhead>,
    ) -> Result<(InterfaceId, Frame), DropReason> {
        let (id, fit) = self.prepare_lan(epoch, now, port, tenant, &parsed, frame, ahead)?;
        self.send_lan(epoch, now, port, id, fit, &parsed, frame, frames)
    }

    /// Checks a parsed LAN frame, clamps its MSS, finds or creates its session and chooses
    /// how it crosses the WAN: everything before the packet is sealed.
    #[expect(clippy::too_many_arguments, reason = "the frame and its parse travel together")]
    fn prepare_lan(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        tenant: crate::epoch::TenantId,
        parsed: &ParsedFrame,
        frame: &mut Frame,
        ahead: Option<FoundAhead>,
    ) -> Result<(SessionId, Fit), DropReason> {
        let tuple = &parsed.tuple;
        let l4 = &frame.data()[parsed.l4_start..parsed.end];
        if self.config.verify_lan_checksums
            && !checksum::travels_with_message(tuple.protocol)
            && !checksum::verify_l4(tuple.source, tuple.destination, tuple.protocol, l4)
        {
            return Err(DropReason::Malformed);
        }
        if parsed.ip.ttl() <= 1 {
            // NOTE: no ICMP time-exceeded message is sent back yet.
            return Err(DropReason::TtlExpired);
        }

        if parsed.tuple.protocol == protocol::TCP {
            let max = max_mss(self.config.wan_mtu);
            clamp_mss(&mut frame.data_mut()[parsed.l4_start..parsed.end], max);
        }

        let id = match self.find_lan_session(&parsed.tuple, ahead) {
            // A LAN host sending a transit session's tuple must not inject into it.
            Some(id) if self.sessions.get(id).is_some_and(Session::is_transit) => {
                return Err(DropReason::NoRoute);
            }
            Some(id) => id,
            None => self.create_ingress(epoch, now, port, tenant, parsed)?,
        };
        self.refresh_path(epoch, id)?;

        let grace = self.config.rotation_grace;
        let Some(session) = self.sessions.get_mut(id) else {
            return Err(DropReason::NoSession);
        };
        if session.keys.advance(now, grace) {
            self.counters.key_switches += 1;
        }
        let carried = &frame.data()[parsed.carried()];
        let fit = choose_fit(epoch, session, parsed, carried, self.config.wan_mtu)?;
        Ok((id, fit))
    }

    /// Seals a LAN frame that [`Engine::prepare_lan`] passed as `fit` requires, or replies
    /// to it with an ICMP error.
    #[expect(clippy::too_many_arguments, reason = "the frame and its parse travel together")]
    fn send_lan(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        id: SessionId,
        fit: Fit,
        parsed: &ParsedFrame,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
    ) -> Result<(InterfaceId, Frame), DropReason> {
        let Some(session) = self.sessions.get_mut(id) else {
            return Err(DropReason::NoSession);
        };
        let carried = &frame.data()[parsed.carried()];
        let mtu = self.config.wan_mtu;
        let out = match fit {
            Fit::Whole => seal_towards_peer(epoch, session, parsed, carried, mtu, frames)?,
            Fit::Fragments => {
                let extended_id = self.next_fragment_id;
                self.next_fragment_id = extended_id.wrapping_add(1);
                let output = FragmentOutput {
                    frames,
                    outbox: &mut self.outbox,
                    counters: self.reassembly.counters_mut(),
                    extended_id,
                    max_fragments: self.config.reassembly.max_fragments,
                };
                seal_fragments(epoch, session, parsed, carried, mtu, output)?
            }
            Fit::TooBig { mtu } => {
                let limiter = &mut self.icmp;
                let packet = (parsed, frame.data());
                return answer_too_big(epoch, now, port, packet, mtu, limiter, frames);
            }
        };
        session.last_seen = now;
        self.counters.ingress_forwarded += 1;
        Ok(out)
    }

    /// Creates the ingress session for the first packet of a flow.
    fn create_ingress(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        tenant: crate::epoch::TenantId,
        parsed: &ParsedFrame,
    ) -> Result<SessionId, DropReason> {
        let tuple = parsed.tuple;
        let service = epoch
            .match_service(tenant, tuple.destination, tuple.protocol, tuple.destination_port)
            .ok_or(DropReason::NoService)?;
        let Some(NextHop::Peer(peer)) = epoch.route(service) else {
            // NOTE: LAN-to-LAN routing through a local next hop is not implemented.
            return Err(DropReason::NoRoute);
        };
        let peer_entry = epoch.peers.get(usize::from(peer)).ok_or(DropReason::NoRoute)?;
        let (path_id, path) =
            epoch.path_for_flow(peer, flow_selector(&tuple)).ok_or(DropReason::PathDown)?;
        if peer_entry.metadata_keys.is_none() {
            return Err(DropReason::NoKey);
        }
        if path.local.is_ipv4() != path.peer.is_ipv4() {
            return Err(DropReason::NoRoute);
        }
        // The context TLV is built from the tuple at send time; check that it has one.
        tuple.to_context().ok_or(DropReason::Malformed)?;
        let service_entry = &epoch.services[usize::from(service)];

        let tlv = PayloadKeyTlv {
            suite: self.session_suite,
            key_id: 0,
            secret: PayloadSecret::generate().map_err(|_| DropReason::NoKey)?,
        };
        let blob = payload_key_blob(&tlv).map_err(|_| DropReason::NoKey)?;
        let uuid = uuid::Uuid::new_v4();
        let metadata = SessionMetadata {
            route: Some(self.routes.tlvs(epoch, tenant, service)),
            last: PayloadTlv::PayloadKey(blob),
        };

        let (local_port, peer_port) = self
            .sessions
            .ports()
            .allocate_in_class(flow_class(&tuple))
            .ok_or(DropReason::TableFull)?;
        let session = Session {
            role: Role::Ingress,
            uuid,
            original: tuple,
            waypoints: FiveTuple {
                source: path.local,
                destination: path.peer,
                source_port: local_port,
                destination_port: peer_port,
                protocol: protocol::UDP,
            },
            peer,
            path: Some(path_id),
            wan_interface: path.interface,
            lan_interface: port,
            service,
            tenant,
            encrypt: service_entry.encrypt,
            keys: PayloadKeys::new(tlv.session_keys()),
            sent: 0,
            window: ReplayWindow::new(),
            send_metadata: true,
            metadata,
            last_seen: now,
            idle_timeout: self.config.idle_timeout,
            relay: None,
        };
        let id = match self.sessions.insert(session) {
            Ok(id) => id,
            Err(error) => {
                self.sessions.ports().release(local_port);
                debug!(%error, "session not created");
                return Err(DropReason::TableFull);
            }
        };
        self.counters.sessions_created += 1;
        debug!(%tuple, %uuid, "ingress session created");
        Ok(id)
    }

    /// Moves a session off a path that went out of service, onto the path among its
    /// peer's paths in service that its flow picks; the session sends metadata again after
    /// a move, and keeps its payload key. Either end moves: the ingress's forward metadata
    /// or the egress's reverse metadata on the new waypoints tells the other end.
    fn refresh_path(&mut self, epoch: &KeyEpoch, id: SessionId) -> Result<(), DropReason> {
        let Some(session) = self.sessions.get(id) else {
            return Err(DropReason::NoSession);
        };
        let Some(path_id) = session.path else {
            return Ok(());
        };
        if epoch.path(session.peer, path_id).is_some_and(|path| path.in_service) {
            return Ok(());
        }

        let Some((new_id, path)) =
            epoch.path_for_flow(session.peer, flow_selector(&session.original))
        else {
            // The peer may restart while no path reaches it and so lose its end of the
            // session. The session sends metadata again once a path is back, which lets a
            // restarted egress create it anew.
            if let Some(session) = self.sessions.get_mut(id) {
                session.send_metadata = true;
            }
            return Err(DropReason::PathDown);
        };
        if path.local.is_ipv4() != path.peer.is_ipv4() {
            return Err(DropReason::NoRoute);
        }
        let waypoints =
            FiveTuple { source: path.local, destination: path.peer, ..session.waypoints };
        let interface = path.interface;
        self.sessions.move_waypoints(id, waypoints).map_err(|_| DropReason::TableFull)?;
        if let Some(session) = self.sessions.get_mut(id) {
            session.path = Some(new_id);
            session.wan_interface = interface;
            session.send_metadata = true;
            debug!(session = %session.uuid, path = new_id, "session moved to another path");
        }
        Ok(())
    }

    /// Authenticates and decrypts a WAN frame and restores it onto the LAN. `ahead` is the
    /// lookup of its session done by the batched lookup of its burst, if any.
    fn handle_wan(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
        ahead: Option<FoundAhead>,
    ) -> Result<Option<(InterfaceId, Frame)>, DropReason> {
        let outer = parse_wan_frame(frame.data()).map_err(wan_parse_drop)?;
        let destination = outer.tuple.destination;
        let multicast = match destination {
            IpAddr::V4(v4) => v4.is_multicast() || v4.is_broadcast(),
            IpAddr::V6(v6) => v6.is_multicast(),
        };
        if multicast || outer.tuple.destination_port < FIRST_WAYPOINT_PORT {
            return Err(DropReason::NotSvr);
        }
        let grace = self.config.rotation_grace;
        let payload_range = outer.carried();
        let packet = &mut frame.data_mut()[payload_range.clone()];

        let (id, plain, fragment) = match classify(packet).map_err(receive_drop)? {
            Received::Metadata { security_id } => {
                match self.open_metadata_packet(epoch, now, port, &outer, security_id, packet)? {
                    FromPeer::Local { id, plain, fragment } => (id, plain, fragment),
                    FromPeer::Transit { id, opened } => {
                        let packet = (&outer, payload_range, frame.data());
                        return self.forward_transit(epoch, now, id, packet, &opened, frames);
                    }
                }
            }
            Received::Session => {
                let id = self.find_wan_session(&outer.tuple, ahead).ok_or(DropReason::NoSession)?;
                if self.sessions.get(id).is_some_and(Session::is_transit) {
                    let opened = self.open_transit_packet(now, id, packet)?;
                    let packet = (&outer, payload_range, frame.data());
                    return self.forward_transit(epoch, now, id, packet, &opened, frames);
                }
                let session = self.sessions.get_mut(id).ok_or(DropReason::NoSession)?;
                if session.keys.advance(now, grace) {
                    self.counters.key_switches += 1;
                }
                let plain = open_session_packet(session, packet)?;
                // A forward packet without metadata shows that the ingress received the
                // reverse metadata, so the handshake is complete.
                if session.role == Role::Egress && session.send_metadata {
                    session.send_metadata = false;
                    debug!(session = %session.uuid, "metadata handshake complete");
                }
                (id, plain, None)
            }
        };

        let session = self.sessions.get_mut(id).ok_or(DropReason::NoSession)?;
        session.last_seen = now;
        let plain = payload_range.start + plain.start..payload_range.start + plain.end;
        let hop = lan_next_hop(epoch, session);
        let Some(fragment) = fragment else {
            let restored = restore_onto_lan(epoch, session, &outer, &frame.data()[plain], frames);
            if restored.as_ref().is_err_and(|reason| *reason == DropReason::NoNeighbour) {
                Engine::note_unresolved(&mut self.unresolved, hop);
            }
            let out = restored?;
            self.counters.egress_forwarded += 1;
            return Ok(Some(out));
        };

        // A fragment is authenticated and decrypted like any packet, then held until its
        // packet is whole.
        let piece = &frame.data()[plain];
        let index = match self.reassembly.insert(now, session.uuid.as_u128(), &fragment, piece) {
            Ok(Insert::Held) => return Ok(None),
            Ok(Insert::Complete(index)) => index,
            Err(error) => return Err(fragment_drop(error)),
        };
        let restored =
            restore_onto_lan(epoch, session, &outer, self.reassembly.packet(index), frames);
        self.reassembly.release(index);
        if restored.as_ref().is_err_and(|reason| *reason == DropReason::NoNeighbour) {
            Engine::note_unresolved(&mut self.unresolved, hop);
        }
        let out = restored?;
        self.reassembly.counters_mut().packets_reassembled += 1;
        self.counters.egress_forwarded += 1;
        Ok(Some(out))
    }

    /// Opens a packet with metadata, creating the egress or transit session from it when
    /// it is the first of its session. For a session that ends here, returns the range of
    /// the original payload within `packet` and the fragment TLV when the packet is an SVR
    /// fragment. For a transit session, returns the opened packet, whose carried payload
    /// stays encrypted.
    fn open_metadata_packet(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        outer: &ParsedFrame,
        security_id: u32,
        packet: &mut [u8],
    ) -> Result<FromPeer, DropReason> {
        let own = epoch.own_metadata_key(security_id).ok_or_else(|| {
            if epoch.recent_metadata_index(security_id) {
                DropReason::NoKey
            } else {
                DropReason::UnknownKeyId
            }
        })?;
        // The tag is under the pair key of the peer whose path the packet arrived on, so
        // the sender is known before anything else is trusted.
        let (sender, _) = epoch
            .path_by_waypoints(port, outer.tuple.source, outer.tuple.destination)
            .ok_or(DropReason::NoRoute)?;
        let pair_keys = &epoch.peers.get(usize::from(sender)).ok_or(DropReason::NoRoute)?.pair_keys;
        let tag_len = pair_keys.first().ok_or(DropReason::NoKey)?.receive().algorithm().tag_len();
        let existing = self.sessions.find_wan(&outer.tuple);

        // Step 2: replay pre-check, before any cryptography.
        if let Some(session) = existing.and_then(|id| self.sessions.get(id)) {
            let sequence = peek_sequence(packet, tag_len).map_err(receive_drop)?;
            session.window.check(sequence.number()).map_err(|_| DropReason::Replay)?;
        }

        // Steps 3 and 4: tag, then the payload TLVs.
        // NOTE: `open_with_metadata` returns the TLVs in freshly allocated vectors, so each
        // received packet with metadata allocates. Only a session's first packets carry
        // metadata, unless the session has no reverse traffic to end the handshake.
        let opened = open_from_peer(packet, own, pair_keys).map_err(receive_drop)?;
        let metadata = opened.metadata.as_ref().ok_or(DropReason::Malformed)?;
        let fragment = fragment_tlv(metadata)?;

        let (id, created) = match existing {
            Some(id) => {
                // The tag does not cover the outer ports, so the metadata must name this
                // session, and come from the peer the session belongs to.
                let session = self.sessions.get(id).ok_or(DropReason::NoSession)?;
                if metadata_uuid(metadata).unwrap_or_default() != session.uuid
                    || session.peer != sender
                {
                    return Err(DropReason::NoSession);
                }
                (id, false)
            }
            None => self.create_egress(epoch, now, port, outer, security_id, metadata, &opened)?,
        };

        let transit = self.sessions.get(id).is_some_and(Session::is_transit);
        let result = if transit {
            self.finish_transit_metadata(id, now, &opened, metadata).map(|()| None)
        } else {
            self.finish_metadata_packet(id, now, packet, &opened, metadata).map(Some)
        };
        if result.is_err() && created {
            // A session made from a packet that then failed must not stay behind. It
            // carried no packet, so it leaves no tombstone.
            self.sessions.discard(id);
            self.counters.sessions_created -= 1;
        }
        Ok(match result? {
            Some(plain) => FromPeer::Local { id, plain, fragment },
            None => FromPeer::Transit { id, opened },
        })
    }

    /// Receive order steps 5 and 6 for a packet with metadata, and the session state the
    /// metadata changes.
    fn finish_metadata_packet(
        &mut self,
        id: SessionId,
        now: Instant,
        packet: &mut [u8],
        opened: &Opened,
        metadata: &ReceivedMetadata,
    ) -> Result<Range<usize>, DropReason> {
        let grace = self.config.rotation_grace;
        let session = self.sessions.get_mut(id).ok_or(DropReason::NoSession)?;
        let key = payload_key(metadata)?;
        // A session without reverse traffic receives nothing but packets with metadata, so
        // its rotation timers run here too, before a new key is looked up or installed.
        if session.keys.advance(now, grace) {
            self.counters.key_switches += 1;
        }

        // Step 5 needs the key the packet names, which a rotation may have just delivered;
        // it is installed for good only once the payload decrypts.
        let fresh_key;
        let keys = match session.keys.receiving(opened.sequence.key_id()) {
            Some(keys) => keys,
            None => match &key {
                Some(tlv) if tlv.key_id == opened.sequence.key_id() => {
                    fresh_key = tlv.session_keys();
                    &fresh_key
                }
                _ => return Err(DropReason::NoKey),
            },
        };
        let plain = decrypt(packet, opened, keys, session)?;

        // Step 6, and the state the metadata changes.
        session.window.record(opened.sequence.number()).map_err(|_| DropReason::Replay)?;
        match session.role {
            Role::Ingress => {
                if session.send_metadata {
                    session.send_metadata = false;
                    debug!(session = %session.uuid, "reverse metadata received");
                }
            }
            Role::Egress if !carries_session_metadata(metadata) => {
                // An SVR fragment with only the session UUID comes from an ingress that has
                // stopped sending forward metadata, like a packet without metadata.
                if session.send_metadata {
                    session.send_metadata = false;
                    debug!(session = %session.uuid, "metadata handshake complete");
                }
            }
            Role::Egress => {
                if let Some(tlv) = &key {
                    if session.keys.catch_up(tlv.key_id, now, grace) {
                        self.counters.key_switches += 1;
                    }
                    if session.keys.install_from_peer(tlv, now, grace) {
                        debug!(session = %session.uuid, key_id = tlv.key_id, "next payload key");
                    }
                }
                // The egress replies to every forward packet with metadata with reverse
                // metadata.
                session.send_metadata = true;
            }
        }
        Ok(plain)
    }

    /// Creates the egress session named by the metadata of a session's first packet,
    /// sealed under `security_id`. A session of that UUID deleted since leaves a tombstone
    /// under the Security ID, which makes the packet a replay.
    #[expect(
        clippy::too_many_arguments,
        reason = "the packet and its opened parts travel together"
    )]
    fn create_egress(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        outer: &ParsedFrame,
        security_id: u32,
        metadata: &ReceivedMetadata,
        opened: &Opened,
    ) -> Result<(SessionId, bool), DropReason> {
        let mut context = None;
        let mut reverse = None;
        let mut uuid = uuid::Uuid::nil();
        let (mut tenant, mut service, mut source_router) = (None, None, None);
        let mut encrypt = false;
        for tlv in &metadata.payload_tlvs {
            match tlv {
                PayloadTlv::ForwardContext(value) => context = Some(FiveTuple::from_context(value)),
                PayloadTlv::ReverseContext(value) => reverse = Some(FiveTuple::from_context(value)),
                PayloadTlv::SessionUuid(value) => uuid = *value,
                PayloadTlv::Tenant(name) => tenant = Some(name.as_str()),
                PayloadTlv::Service(name) => service = Some(name.as_str()),
                PayloadTlv::SourceRouter(name) => source_router = Some(name.as_str()),
                PayloadTlv::SessionEncrypted => encrypt = true,
                _ => {}
            }
        }
        // Reverse metadata on waypoints no session has: the egress moved the session to
        // another path, or it is for a session this router does not hold.
        if context.is_none()
            && let Some(reverse) = reverse
        {
            return self.follow_egress(epoch, port, outer, reverse.reversed(), uuid, opened);
        }
        let original = context.ok_or(DropReason::NoSession)?;
        let key = payload_key(metadata)?.ok_or(DropReason::NoKey)?;

        // The same flow arriving on new waypoints is a path change of an existing session.
        // The same flow under a new UUID is a new session from a restarted ingress, which
        // replaces the old one once the new one is admitted.
        let mut replaced = None;
        if let Some(id) = self.sessions.find_lan(&original.reversed()) {
            let Some(session) = self.sessions.get(id) else {
                return Err(DropReason::NoSession);
            };
            if session.uuid == uuid {
                session.window.check(opened.sequence.number()).map_err(|_| DropReason::Replay)?;
                let waypoints = outer.tuple.reversed();
                self.sessions.move_waypoints(id, waypoints).map_err(|_| DropReason::TableFull)?;
                if let Some(session) = self.sessions.get_mut(id) {
                    session.wan_interface = port;
                    session.path = epoch
                        .path_by_waypoints(port, waypoints.destination, waypoints.source)
                        .map(|(_, path)| path);
                }
                debug!(%uuid, "egress session moved to new waypoints");
                return Ok((id, false));
            }
            replaced = Some((id, session.uuid));
        }

        let service = service.and_then(|name| epoch.service_by_name(name));
        let tenant = tenant.and_then(|name| epoch.tenant_by_name(name));
        let (Some(service), Some(tenant)) = (service, tenant) else {
            return Err(DropReason::NoService);
        };
        if !epoch.services[usize::from(service)].tenants.contains(&tenant) {
            return Err(DropReason::NoService);
        }
        let (interface, next_peer) = match epoch.route(service) {
            Some(NextHop::Local { interface, .. }) => (interface, None),
            // The session goes on to another peer: the leg made here faces the sender.
            Some(NextHop::Peer(next)) => (port, Some(next)),
            None => return Err(DropReason::NoRoute),
        };
        let found = epoch.path_by_waypoints(port, outer.tuple.source, outer.tuple.destination);
        let (peer, path) = match found {
            Some((peer, path)) => (peer, Some(path)),
            None => {
                let by_name = source_router
                    .and_then(|name| epoch.peers.iter().position(|peer| peer.name == name))
                    .and_then(|index| u16::try_from(index).ok());
                (by_name.ok_or(DropReason::NoRoute)?, None)
            }
        };
        original.reversed().to_context().ok_or(DropReason::Malformed)?;

        self.sessions.admit(security_id, uuid).map_err(|Refusal::Replayed| DropReason::Replay)?;
        if let Some((id, old)) = replaced {
            debug!(%old, new = %uuid, "egress session replaced");
            self.sessions.remove(id);
        }

        let session = Session {
            role: Role::Egress,
            uuid,
            original,
            waypoints: outer.tuple.reversed(),
            peer,
            path,
            wan_interface: port,
            lan_interface: interface,
            service,
            tenant,
            encrypt,
            keys: PayloadKeys::new(key.session_keys()),
            sent: 0,
            window: ReplayWindow::new(),
            send_metadata: true,
            metadata: SessionMetadata { route: None, last: PayloadTlv::DisableForwardMetadata },
            last_seen: now,
            idle_timeout: self.config.idle_timeout,
            relay: None,
        };
        if let Some(next) = next_peer {
            return self.create_transit(epoch, session, security_id, next, metadata, &key);
        }
        let id =
            self.sessions.insert_from_peer(session, security_id).map_err(|e| table_drop(&e))?;
        self.count_forgotten_tombstones();
        self.counters.sessions_created += 1;
        debug!(tuple = %original, %uuid, "egress session created");
        Ok((id, true))
    }
}

impl Engine {
    /// Moves the ingress session of flow `original` to the waypoints of `outer`, on which
    /// its peer sent reverse metadata after moving the session off a path that went out of
    /// service at its end. The metadata must name the session, and come from its peer.
    fn follow_egress(
        &mut self,
        epoch: &KeyEpoch,
        port: InterfaceId,
        outer: &ParsedFrame,
        original: FiveTuple,
        uuid: uuid::Uuid,
        opened: &Opened,
    ) -> Result<(SessionId, bool), DropReason> {
        let id = self.sessions.find_lan(&original).ok_or(DropReason::NoSession)?;
        let session = self.sessions.get(id).ok_or(DropReason::NoSession)?;
        let (sender, path) = epoch
            .path_by_waypoints(port, outer.tuple.source, outer.tuple.destination)
            .ok_or(DropReason::NoRoute)?;
        // NOTE: a transit leg does not follow a move of its far end; it keeps sending on
        // its own path until that path goes out of service here too.
        if session.uuid != uuid
            || session.role != Role::Ingress
            || session.is_transit()
            || session.peer != sender
        {
            return Err(DropReason::NoSession);
        }
        session.window.check(opened.sequence.number()).map_err(|_| DropReason::Replay)?;
        let waypoints = outer.tuple.reversed();
        self.sessions.move_waypoints(id, waypoints).map_err(|_| DropReason::TableFull)?;
        if let Some(session) = self.sessions.get_mut(id) {
            session.wan_interface = port;
            session.path = Some(path);
            debug!(%uuid, path, "ingress session moved to the egress's new waypoints");
        }
        Ok((id, false))
    }
}

/// What opening a packet with metadata gave.
enum FromPeer {
    /// A packet of a session that ends here: the range of its original payload, and its
    /// fragment TLV when it is an SVR fragment.
    Local { id: SessionId, plain: Range<usize>, fragment: Option<Fragment> },
    /// A packet of a transit session, authenticated, with its carried payload encrypted.
    Transit { id: SessionId, opened: Opened },
}

#[cfg(test)]
impl Engine {
    /// Copies the engine with its sessions, keys and counters, so that a test can run the
    /// same packets through two paths from one state. Both copies then hold the same keys
    /// and packet numbers, so at most one may ever send onto a network.
    fn fork(&self) -> Engine {
        assert!(self.outbox.is_empty(), "fork with frames waiting in pop_output");
        Engine {
            config: self.config,
            sessions: self.sessions.clone(),
            routes: self.routes.clone(),
            counters: self.counters.clone(),
            warnings: self.warnings.clone(),
            reassembly: self.reassembly.clone(),
            lan_reassembly: self.lan_reassembly.clone(),
            icmp: self.icmp.clone(),
            outbox: VecDeque::with_capacity(self.outbox.capacity()),
            staged: burst::Staging::new(),
            next_fragment_id: self.next_fragment_id,
            session_suite: self.session_suite,
            unresolved: self.unresolved.clone(),
        }
    }
}

/// Seals the carried bytes of a LAN packet for `session` into a new frame on its WAN port.
fn seal_towards_peer(
    epoch: &KeyEpoch,
    session: &mut Session,
    parsed: &ParsedFrame,
    carried: &[u8],
    wan_mtu: u16,
    frames: &mut dyn FrameSource,
) -> Result<(InterfaceId, Frame), DropReason> {
    let port = session.wan_interface;
    let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
    let destination_mac = peer_link_mac(epoch, session).ok_or(DropReason::NoRoute)?;
    let metadata_keys = if session.send_metadata {
        let peer = epoch.peers.get(usize::from(session.peer)).ok_or(DropReason::NoRoute)?;
        let keys = peer.metadata_keys.as_ref().ok_or(DropReason::NoKey)?;
        let pair = peer.pair_keys.first().ok_or(DropReason::NoKey)?;
        Some((keys, pair.send()))
    } else {
        None
    };

    // Take the number only once the packet will certainly be sent, so that a drop leaves
    // no gap the receiver would have to skip.
    let number = session.sent.checked_add(1).ok_or(DropReason::NoKey)?;
    let head = match metadata_keys {
        Some(_) => Some(session.metadata_head().ok_or(DropReason::Malformed)?),
        None => None,
    };
    let outgoing = Outgoing {
        session: session.keys.sending(),
        direction: session.send_direction(),
        number,
        encrypt: session.encrypt,
        metadata: metadata_keys.zip(head.as_ref()).map(|((keys, tag_key), head)| {
            OutgoingMetadata {
                keys,
                tag_key,
                header_tlvs: &[],
                payload_tlvs: session.metadata.tlvs(head),
            }
        }),
    };

    let header_len = outer_header_len(session.waypoints.source);
    let bound = header_len + sealed_len_bound(&outgoing, carried.len());
    let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
    let sealed = out
        .append(bound)
        .map_err(|_| DropReason::TooLong)
        .and_then(|buffer| seal(&mut buffer[header_len..], &outgoing, carried).map_err(seal_drop));
    let sealed = match sealed {
        Ok(len) => len,
        Err(reason) => return Err(discard(frames, port, out, reason)),
    };
    out.truncate(header_len + sealed);
    // `choose_fit` sent packets that cannot fit on to fragmentation or an ICMP reply; this
    // catches a bound it got wrong, which is dropped rather than sent oversized.
    if header_len - ETHERNET_LEN + sealed > usize::from(wan_mtu) {
        return Err(discard(frames, port, out, DropReason::TooLong));
    }

    let fields = outer_fields(&parsed.ip, session.waypoints.source.is_ipv4());
    let macs = Macs { source: interface.mac, destination: destination_mac };
    if emit_outer(out.data_mut(), macs, &session.waypoints, &fields).is_err() {
        return Err(discard(frames, port, out, DropReason::TooLong));
    }
    session.sent = number;
    Ok((port, out))
}

/// Returns the MAC address of the next hop towards `session`'s peer waypoint: the path's
/// gateway when it has one, else the waypoint itself.
fn peer_link_mac(epoch: &KeyEpoch, session: &Session) -> Option<[u8; 6]> {
    let next_hop = session
        .path
        .and_then(|path| epoch.path(session.peer, path))
        .and_then(|path| path.gateway)
        .unwrap_or(session.waypoints.destination);
    epoch.neighbour(session.wan_interface, next_hop)
}

/// Returns the largest TCP MSS whose full-sized segments, carried whole with up to 40 bytes
/// of options, fit a WAN packet of `wan_mtu` bytes. The outer header is counted as IPv6,
/// the longer family, because the session and its path may not be known yet.
///
/// NOTE: segments that still carry metadata (the first of a session) can exceed the MTU.
fn max_mss(wan_mtu: u16) -> u16 {
    let overhead = IPV6_LEN + UDP_LEN + BLOCK_LEN + SEQUENCE_LEN + MAX_TAG_LEN + 20 + 40;
    u16::try_from(usize::from(wan_mtu).saturating_sub(overhead)).unwrap_or(0).max(536)
}

/// Returns the outer IP fields for an original packet: its DSCP and ECN, its TTL less the
/// hop this router makes, and its identification, don't-fragment flag or flow label in the
/// outer field that can hold them, so that the egress restores them ([`restored_fields`]):
///
/// | original | outer IPv4 | outer IPv6 |
/// | --- | --- | --- |
/// | IPv4 | identification and DF copied | flow label = DF << 16 \| identification |
/// | IPv6 | identification = low 16 bits of the flow label | flow label copied |
pub(super) fn outer_fields(original: &IpFields, outer_v4: bool) -> IpHeaderFields {
    let mut fields = IpHeaderFields {
        tos: original.tos(),
        ttl: original.ttl() - 1,
        identification: 0,
        dont_fragment: false,
        flow_label: 0,
    };
    match (*original, outer_v4) {
        (IpFields::V4 { identification, dont_fragment, .. }, true) => {
            fields.identification = identification;
            fields.dont_fragment = dont_fragment;
        }
        (IpFields::V4 { identification, dont_fragment, .. }, false) => {
            fields.flow_label = (u32::from(dont_fragment) << 16) | u32::from(identification);
        }
        // NOTE: IPv4 has no room for the top 4 bits of a 20-bit flow label, so an IPv6
        // packet crossing IPv4 waypoints is restored with those bits cleared.
        (IpFields::V6 { flow_label, .. }, true) => fields.identification = flow_label as u16,
        (IpFields::V6 { flow_label, .. }, false) => fields.flow_label = flow_label,
    }
    fields
}

/// Returns the IP fields of a restored packet of family `inner_v4` from the outer packet
/// that carried it, the inverse of [`outer_fields`], with one more hop off the TTL.
fn restored_fields(outer: &IpFields, inner_v4: bool) -> IpHeaderFields {
    let mut fields = IpHeaderFields {
        tos: outer.tos(),
        ttl: outer.ttl().saturating_sub(1),
        identification: 0,
        dont_fragment: false,
        flow_label: 0,
    };
    match (*outer, inner_v4) {
        (IpFields::V4 { identification, dont_fragment, .. }, true) => {
            fields.identification = identification;
            fields.dont_fragment = dont_fragment;
        }
        (IpFields::V6 { flow_label, .. }, true) => {
            fields.identification = flow_label as u16;
            fields.dont_fragment = flow_label & 0x1_0000 != 0;
        }
        (IpFields::V4 { identification, .. }, false) => {
            fields.flow_label = u32::from(identification);
        }
        (IpFields::V6 { flow_label, .. }, false) => fields.flow_label = flow_label,
    }
    fields
}

/// Opens a packet without metadata under the session's keys (receive order steps 2, 3, 5
/// and 6); returns the range of the original payload within `packet`.
fn open_session_packet(
    session: &mut Session,
    packet: &mut [u8],
) -> Result<Range<usize>, DropReason> {
    let tag_len = session.keys.sending().suite().tag_len();
    let sequence = peek_sequence(packet, tag_len).map_err(receive_drop)?;
    let keys = session
        .keys
        .receiving(sequence.key_id())
        .ok_or_else(|| session.keys.missing_key_reason(sequence.key_id()))?;
    session.window.check(sequence.number()).map_err(|_| DropReason::Replay)?;
    let opened =
        open_without_metadata(packet, keys, session.receive_direction()).map_err(receive_drop)?;
    let plain = decrypt(packet, &opened, keys, session)?;
    session.window.record(opened.sequence.number()).map_err(|_| DropReason::Replay)?;
    Ok(plain)
}

fn decrypt(
    packet: &mut [u8],
    opened: &Opened,
    keys: &SessionKeys,
    session: &Session,
) -> Result<Range<usize>, DropReason> {
    decrypt_carried(packet, opened, keys, session.receive_direction(), session.encrypt)
        .map_err(receive_drop)
}

/// Returns the number that picks a new session's path among its peer's paths in service:
/// a hash of the session's original 5-tuple, the same on every run.
pub(crate) fn flow_selector(tuple: &FiveTuple) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::hash::DefaultHasher::new();
    tuple.hash(&mut hasher);
    hasher.finish()
}

/// Lowest UDP port of SVR waypoints. A WAN frame to a lower port is not SVR.
const FIRST_WAYPOINT_PORT: u16 = 16384;

/// Returns the drop reason of a WAN frame that does not parse: not SVR when it is another
/// protocol, malformed otherwise.
fn wan_parse_drop(error: ParseError) -> DropReason {
    match error {
        ParseError::UnsupportedEtherType { .. } | ParseError::NotUdp { .. } => DropReason::NotSvr,
        _ => DropReason::Malformed,
    }
}

/// Returns the LAN port of `session` and the next hop on it: the route's gateway, or the
/// original destination.
fn lan_next_hop(epoch: &KeyEpoch, session: &Session) -> (InterfaceId, IpAddr) {
    let gateway = match (session.role, epoch.route(session.service)) {
        (Role::Egress, Some(NextHop::Local { gateway, .. })) => gateway,
        _ => None,
    };
    (session.lan_interface, gateway.unwrap_or(session.restored_tuple().destination))
}

/// Writes the original packet for `plain`, the carried payload of `session`, into a new
/// frame on its LAN port.
fn restore_onto_lan(
    epoch: &KeyEpoch,
    session: &Session,
    outer: &ParsedFrame,
    plain: &[u8],
    frames: &mut dyn FrameSource,
) -> Result<(InterfaceId, Frame), DropReason> {
    let tuple = session.restored_tuple();
    let outer_ttl = outer.ip.ttl();
    if outer_ttl <= 1 {
        return Err(DropReason::TtlExpired);
    }
    let (port, next_hop) = lan_next_hop(epoch, session);
    let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
    let destination_mac = epoch.neighbour(port, next_hop).ok_or(DropReason::NoNeighbour)?;

    let fields = restored_fields(&outer.ip, tuple.source.is_ipv4());
    let header_len = restored_header_len(&tuple);
    let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
    match out.append(header_len + plain.len()) {
        Ok(buffer) => buffer[header_len..].copy_from_slice(plain),
        Err(_) => return Err(discard(frames, port, out, DropReason::TooLong)),
    }
    let macs = Macs { source: interface.mac, destination: destination_mac };
    if emit_restored(out.data_mut(), macs, &tuple, &fields).is_err() {
        return Err(discard(frames, port, out, DropReason::Malformed));
    }
    Ok((port, out))
}

/// Gives an output frame that will not be sent back to its port's pool.
pub(super) fn discard(
    frames: &mut dyn FrameSource,
    port: InterfaceId,
    frame: Frame,
    reason: DropReason,
) -> DropReason {
    frames.free(port, frame);
    reason
}

/// Returns the session UUID a metadata packet names, if any.
fn metadata_uuid(metadata: &ReceivedMetadata) -> Option<uuid::Uuid> {
    metadata.payload_tlvs.iter().find_map(|tlv| match tlv {
        PayloadTlv::SessionUuid(uuid) => Some(*uuid),
        _ => None,
    })
}

/// Returns the fragment TLV of a metadata packet, if any; a packet with two is malformed.
fn fragment_tlv(metadata: &ReceivedMetadata) -> Result<Option<Fragment>, DropReason> {
    let mut fragments = metadata.header_tlvs.iter().filter_map(|tlv| match tlv {
        HeaderTlv::Fragment(fragment) => Some(*fragment),
        _ => None,
    });
    match (fragments.next(), fragments.next()) {
        (first, None) => Ok(first),
        (Some(_), Some(_)) | (None, Some(_)) => Err(DropReason::Malformed),
    }
}

/// Returns whether metadata names the session's flow (forward or reverse context), as the
/// handshake's metadata does, rather than only its UUID, as an SVR fragment's does.
fn carries_session_metadata(metadata: &ReceivedMetadata) -> bool {
    metadata
        .payload_tlvs
        .iter()
        .any(|tlv| matches!(tlv, PayloadTlv::ForwardContext(_) | PayloadTlv::ReverseContext(_)))
}

/// Returns the drop counter for a fragment that reassembly did not take: limits are
/// too long, everything else is malformed. The reassembly counts each case on its own.
fn fragment_drop(error: FragmentError) -> DropReason {
    match error {
        FragmentError::TooLong { .. }
        | FragmentError::TooManyFragments { .. }
        | FragmentError::OverLimit { .. } => DropReason::TooLong,
        _ => DropReason::Malformed,
    }
}

/// Returns the payload key a metadata packet carries, if any.
fn payload_key(metadata: &ReceivedMetadata) -> Result<Option<PayloadKeyTlv>, DropReason> {
    metadata
        .payload_tlvs
        .iter()
        .find_map(|tlv| match tlv {
            PayloadTlv::PayloadKey(blob) => Some(blob),
            _ => None,
        })
        .map(|blob| PayloadKeyTlv::parse(blob.as_bytes()).map_err(|_| DropReason::Malformed))
        .transpose()
}

fn payload_key_blob(tlv: &PayloadKeyTlv) -> Result<PayloadKeyBlob, CryptoError> {
    PayloadKeyBlob::new(tlv.emit().to_vec()).map_err(|_| CryptoError::Random)
}

/// Returns the drop counter for a session that the table did not take.
pub(super) fn table_drop(error: &TableError) -> DropReason {
    match error {
        TableError::Full { .. } => DropReason::TableFull,
        _ => DropReason::Malformed,
    }
}

/// The drop counter for a receive error.
fn receive_drop(error: ReceiveError) -> DropReason {
    match error {
        ReceiveError::Crypto(CryptoError::BadTag) => DropReason::BadTag,
        ReceiveError::Crypto(CryptoError::BadPadding) => DropReason::BadTag,
        ReceiveError::WrongMetadataKey { .. } | ReceiveError::WrongPayloadKey { .. } => {
            DropReason::NoKey
        }
        _ => DropReason::Malformed,
    }
}

/// The drop counter for a seal error: the packet plus overhead did not fit.
pub(super) fn seal_drop(error: SealError) -> DropReason {
    match error {
        SealError::Crypto(CryptoError::BufferTooSmall { .. }) => DropReason::TooLong,
        _ => DropReason::Malformed,
    }
}

/// Opens a packet with metadata under the first of the sender's pair keys whose tag
/// matches; during a peer-key rotation the peer may seal under the old or the new one.
/// A failed tag check changes nothing in the packet, so trying the next key is safe.
fn open_from_peer(
    packet: &mut [u8],
    own: &MetadataKeys,
    pair_keys: &[PairKeys],
) -> Result<Opened, ReceiveError> {
    for pair in pair_keys {
        match open_with_metadata(packet, own, pair.receive()) {
            Err(ReceiveError::Crypto(CryptoError::BadTag)) => continue,
            other => return other,
        }
    }
    Err(ReceiveError::Crypto(CryptoError::BadTag))
}
