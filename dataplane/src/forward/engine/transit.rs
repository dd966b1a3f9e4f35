//! Transit sessions: a router that receives a session from one peer and whose service
//! route points at another peer forwards it on, without ending it.
//!
//! The transit router keeps two legs of one session ([`Session::relay`]): the leg towards
//! the ingress (role [`Role::Egress`], the waypoints the ingress chose) and the leg towards
//! the egress (role [`Role::Ingress`], with waypoint ports this router allocates). It
//! learns the payload secret from the payload-key TLV, so it verifies every packet's tag
//! and checks it against the leg's replay window. It never decrypts or re-encrypts the
//! carried payload, and the packet number and key id travel unchanged.
//!
//! - A packet without metadata goes on byte for byte: its tag is under the session's
//!   payload MAC key, which both ends hold too. Only the outer headers change.
//! - A packet with metadata has its payload TLVs decrypted under this router's metadata
//!   key and encrypted again under the next peer's, and its tag computed again under the
//!   pair key of this router and the next peer. The TLVs themselves, the header TLVs
//!   other than the Security ID (an SVR fragment's fragment TLV included), the carried
//!   ciphertext and the sequence field are kept.
//!
//! The metadata handshake therefore runs between the two ends. The leg towards the egress
//! adds metadata on its own only after it moved to another path, until reverse metadata
//! arrives on it, so that the egress learns the new waypoints.

use std::ops::Range;
use std::sync::Arc;
use std::time::Instant;

use tracing::debug;

use super::super::FiveTuple;
use super::super::checksum::protocol;
use super::super::headers::{IpHeaderFields, Macs, emit_outer, outer_header_len};
use super::super::parse::{ETHERNET_LEN, IpFields, ParsedFrame};
use super::{
    Engine, FrameSource, discard, payload_key, payload_key_blob, peer_link_mac, receive_drop,
    seal_drop, table_drop,
};
use crate::counters::DropReason;
use crate::crypto::PayloadKeyTlv;
use crate::epoch::{InterfaceId, KeyEpoch, PeerId};
use crate::io::Frame;
use crate::packet::{HeaderTlv, PayloadTlv};
use crate::replay::ReplayWindow;
use crate::sealed::{
    Opened, Outgoing, OutgoingMetadata, ReceivedMetadata, open_without_metadata, peek_sequence,
    seal, sealed_len_bound,
};
use crate::session::{PayloadKeys, Role, Session, SessionId, SessionMetadata, SessionTable};
use crate::shard::{flow_class, port_class};

impl Engine {
    /// Creates a transit session from the first packet of a session whose service is
    /// routed to peer `next`, sealed under `security_id`. `towards_ingress` is the leg
    /// facing the sender, built as an egress session would be. Returns the id of that leg.
    pub(super) fn create_transit(
        &mut self,
        epoch: &KeyEpoch,
        towards_ingress: Session,
        security_id: u32,
        next: PeerId,
        metadata: &ReceivedMetadata,
        key: &PayloadKeyTlv,
    ) -> Result<(SessionId, bool), DropReason> {
        if next == towards_ingress.peer {
            // The route would send the session back to the peer it came from.
            return Err(DropReason::NoRoute);
        }
        let peer = epoch.peers.get(usize::from(next)).ok_or(DropReason::NoRoute)?;
        if peer.metadata_keys.is_none() || peer.pair_keys.is_empty() {
            return Err(DropReason::NoKey);
        }
        let selector = super::flow_selector(&towards_ingress.original);
        let (path_id, path) = epoch.path_for_flow(next, selector).ok_or(DropReason::PathDown)?;
        if path.local.is_ipv4() != path.peer.is_ipv4() {
            return Err(DropReason::NoRoute);
        }
        let blob = payload_key_blob(key).map_err(|_| DropReason::NoKey)?;
        // The TLVs that name the session's route (tenant, service, source router, the
        // encryption flag, and types this router does not know) go on as received. The
        // context and UUID are rebuilt from the leg, and the payload key is kept apart.
        let route: Arc<[PayloadTlv]> = metadata
            .payload_tlvs
            .iter()
            .filter(|tlv| {
                !matches!(
                    tlv,
                    PayloadTlv::ForwardContext(_)
                        | PayloadTlv::ReverseContext(_)
                        | PayloadTlv::SessionUuid(_)
                        | PayloadTlv::PayloadKey(_)
                )
            })
            .cloned()
            .collect();

        // Packets from the next peer reach the worker that owns the class of the port they
        // are sent to, so the onward leg takes its ports in the class of the first leg.
        let class = port_class(towards_ingress.waypoints.source_port)
            .unwrap_or_else(|| flow_class(&towards_ingress.original));
        let (local_port, peer_port) =
            self.sessions.ports().allocate_in_class(class).ok_or(DropReason::TableFull)?;
        let (uuid, original) = (towards_ingress.uuid, towards_ingress.original);
        let mut onward = Session {
            role: Role::Ingress,
            uuid,
            original,
            waypoints: FiveTuple {
                source: path.local,
                destination: path.peer,
                source_port: local_port,
                destination_port: peer_port,
                protocol: protocol::UDP,
            },
            peer: next,
            path: Some(path_id),
            wan_interface: path.interface,
            lan_interface: towards_ingress.lan_interface,
            service: towards_ingress.service,
            tenant: towards_ingress.tenant,
            encrypt: towards_ingress.encrypt,
            keys: PayloadKeys::new(key.session_keys()),
            sent: 0,
            window: ReplayWindow::new(),
            send_metadata: false,
            metadata: SessionMetadata { route: Some(route), last: PayloadTlv::PayloadKey(blob) },
            last_seen: towards_ingress.last_seen,
            idle_timeout: towards_ingress.idle_timeout,
            relay: None,
        };

        // The leg towards the ingress sends only the reverse metadata that the egress
        // sends, never its own.
        let mut towards_ingress = towards_ingress;
        towards_ingress.send_metadata = false;
        let back = match self.sessions.insert_from_peer(towards_ingress, security_id) {
            Ok(id) => id,
            Err(error) => {
                self.sessions.ports().release(local_port);
                return Err(table_drop(&error));
            }
        };
        onward.relay = Some(back);
        let ahead = match self.sessions.insert_from_peer(onward, security_id) {
            Ok(id) => id,
            Err(error) => {
                self.sessions.discard(back);
                self.sessions.ports().release(local_port);
                return Err(table_drop(&error));
            }
        };
        self.count_forgotten_tombstones();
        if let Some(leg) = self.sessions.get_mut(back) {
            leg.relay = Some(ahead);
        }
        self.counters.sessions_created += 1;
        debug!(tuple = %original, %uuid, peer = next, "transit session created");
        Ok((back, true))
    }

    /// Records a packet with metadata of a transit leg in its replay window (receive order
    /// step 6) and applies its metadata. A payload key from the ingress is installed on
    /// both legs, and reverse metadata on the onward leg ends the metadata that leg adds on
    /// its own. The caller has verified the tag and decrypted the TLVs.
    pub(super) fn finish_transit_metadata(
        &mut self,
        id: SessionId,
        now: Instant,
        opened: &Opened,
        metadata: &ReceivedMetadata,
    ) -> Result<(), DropReason> {
        let grace = self.config.rotation_grace;
        let key = payload_key(metadata)?;
        let session = self.sessions.get_mut(id).ok_or(DropReason::NoSession)?;
        // As for a session that ends here: the rotation timers run on packets with
        // metadata too, which may be all a leg without reverse traffic receives.
        session.keys.advance(now, grace);
        let key_id = opened.sequence.key_id();
        let delivered = key.as_ref().is_some_and(|tlv| tlv.key_id == key_id);
        if session.keys.receiving(key_id).is_none() && !delivered {
            return Err(DropReason::NoKey);
        }
        session.window.record(opened.sequence.number()).map_err(|_| DropReason::Replay)?;

        match session.role {
            Role::Ingress => {
                if session.send_metadata {
                    session.send_metadata = false;
                    debug!(session = %session.uuid, "reverse metadata received on the onward leg");
                }
            }
            Role::Egress => {
                let Some(tlv) = &key else {
                    return Ok(());
                };
                session.keys.catch_up(tlv.key_id, now, grace);
                if session.keys.install_from_peer(tlv, now, grace) {
                    debug!(session = %session.uuid, key_id = tlv.key_id, "next payload key");
                }
                let onward = session.relay;
                let leg = onward.and_then(|onward| self.sessions.get_mut(onward));
                if let Some(leg) = leg {
                    leg.keys.catch_up(tlv.key_id, now, grace);
                    if leg.keys.install_from_peer(tlv, now, grace) {
                        let blob = payload_key_blob(tlv).map_err(|_| DropReason::NoKey)?;
                        leg.metadata.last = PayloadTlv::PayloadKey(blob);
                    }
                }
            }
        }
        Ok(())
    }

    /// Authenticates a packet without metadata on a transit leg (receive order steps 2, 3
    /// and 6). The carried payload is not decrypted.
    pub(super) fn open_transit_packet(
        &mut self,
        now: Instant,
        id: SessionId,
        packet: &[u8],
    ) -> Result<Opened, DropReason> {
        let grace = self.config.rotation_grace;
        let session = self.sessions.get_mut(id).ok_or(DropReason::NoSession)?;
        session.keys.advance(now, grace);
        let tag_len = session.keys.sending().suite().tag_len();
        let sequence = peek_sequence(packet, tag_len).map_err(receive_drop)?;
        let keys = session
            .keys
            .receiving(sequence.key_id())
            .ok_or_else(|| session.keys.missing_key_reason(sequence.key_id()))?;
        session.window.check(sequence.number()).map_err(|_| DropReason::Replay)?;
        let opened = open_without_metadata(packet, keys, session.receive_direction())
            .map_err(receive_drop)?;
        session.window.record(opened.sequence.number()).map_err(|_| DropReason::Replay)?;
        Ok(opened)
    }

    /// Sends an authenticated packet of transit leg `id` on over the other leg. `packet`
    /// contains the received frame's parse, the range of its UDP payload and the frame's
    /// bytes.
    pub(super) fn forward_transit(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        id: SessionId,
        packet: (&ParsedFrame, Range<usize>, &[u8]),
        opened: &Opened,
        frames: &mut dyn FrameSource,
    ) -> Result<Option<(InterfaceId, Frame)>, DropReason> {
        let (outer, payload_range, data) = packet;
        if outer.ip.ttl() <= 1 {
            return Err(DropReason::TtlExpired);
        }
        let onward = other_leg(&self.sessions, id)?;
        if self.sessions.get(id).is_some_and(|leg| leg.role == Role::Egress) {
            // Forward packets move the onward leg off a path that went down, as an
            // ingress moves its sessions.
            self.refresh_path(epoch, onward)?;
        }
        let grace = self.config.rotation_grace;
        for leg in [id, onward] {
            if let Some(session) = self.sessions.get_mut(leg) {
                session.last_seen = now;
                session.keys.advance(now, grace);
            }
        }

        let from = self.sessions.get(id).ok_or(DropReason::NoSession)?;
        let to = self.sessions.get(onward).ok_or(DropReason::NoSession)?;
        let port = to.wan_interface;
        let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
        let destination_mac = peer_link_mac(epoch, to).ok_or(DropReason::NoRoute)?;
        let body = &data[payload_range];
        let header_len = outer_header_len(to.waypoints.source);

        let head;
        let header_tlvs: Vec<HeaderTlv>;
        let resealed = match (&opened.metadata, to.send_metadata) {
            (None, false) => None,
            (received, _) => {
                let peer = epoch.peers.get(usize::from(to.peer)).ok_or(DropReason::NoRoute)?;
                let keys = peer.metadata_keys.as_ref().ok_or(DropReason::NoKey)?;
                let pair = peer.pair_keys.first().ok_or(DropReason::NoKey)?;
                let key_id = opened.sequence.key_id();
                let session = from.keys.receiving(key_id).ok_or(DropReason::NoKey)?;
                let payload_tlvs = match received {
                    Some(received) => {
                        header_tlvs = received
                            .header_tlvs
                            .iter()
                            .filter(|tlv| !matches!(tlv, HeaderTlv::SecurityId(_)))
                            .cloned()
                            .collect();
                        (&received.payload_tlvs[..]).into()
                    }
                    None => {
                        header_tlvs = Vec::new();
                        head = to.metadata_head().ok_or(DropReason::Malformed)?;
                        to.metadata.tlvs(&head)
                    }
                };
                // The carried payload is passed through as it is, already encrypted, so
                // it is sealed as plaintext: only the metadata and the tag are new.
                Some(Outgoing {
                    session,
                    direction: to.send_direction(),
                    number: opened.sequence.number(),
                    encrypt: false,
                    metadata: Some(OutgoingMetadata {
                        keys,
                        tag_key: pair.send(),
                        header_tlvs: &header_tlvs,
                        payload_tlvs,
                    }),
                })
            }
        };

        let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
        let carried = &body[opened.carried.clone()];
        let written =
            match write_udp_payload(&mut out, header_len, body, carried, resealed.as_ref()) {
                Ok(len) => len,
                Err(reason) => return Err(discard(frames, port, out, reason)),
            };
        // NOTE: a packet that grew past the onward WAN's MTU (an IPv6 leg after an IPv4
        // one, or a longer tag on the onward pair key) is dropped, not fragmented.
        if header_len - ETHERNET_LEN + written > usize::from(self.config.wan_mtu) {
            return Err(discard(frames, port, out, DropReason::TooLong));
        }
        let inner_v4 = to.original.source.is_ipv4();
        let fields = transit_fields(&outer.ip, inner_v4, to.waypoints.source.is_ipv4());
        let macs = Macs { source: interface.mac, destination: destination_mac };
        if emit_outer(out.data_mut(), macs, &to.waypoints, &fields).is_err() {
            return Err(discard(frames, port, out, DropReason::TooLong));
        }
        self.counters.transit_forwarded += 1;
        Ok(Some((port, out)))
    }
}

/// Writes the UDP payload of a forwarded packet into `out` after `header_len` bytes of
/// headers, and returns its length. Without `resealed` it is `body`, the received UDP
/// payload. With it, it is the `carried` part of `body` sealed with new metadata.
fn write_udp_payload(
    out: &mut Frame,
    header_len: usize,
    body: &[u8],
    carried: &[u8],
    resealed: Option<&Outgoing<'_>>,
) -> Result<usize, DropReason> {
    let written = match resealed {
        None => {
            let buffer = out.append(header_len + body.len()).map_err(|_| DropReason::TooLong)?;
            buffer[header_len..].copy_from_slice(body);
            body.len()
        }
        Some(outgoing) => {
            let bound = header_len + sealed_len_bound(outgoing, carried.len());
            let buffer = out.append(bound).map_err(|_| DropReason::TooLong)?;
            seal(&mut buffer[header_len..], outgoing, carried).map_err(seal_drop)?
        }
    };
    out.truncate(header_len + written);
    Ok(written)
}

/// Returns the other leg of transit leg `id`, checking that it names `id` back and
/// belongs to the same session.
fn other_leg(sessions: &SessionTable, id: SessionId) -> Result<SessionId, DropReason> {
    let leg = sessions.get(id).ok_or(DropReason::NoSession)?;
    let other = leg.relay.ok_or(DropReason::NoSession)?;
    let matches = sessions
        .get(other)
        .is_some_and(|session| session.relay == Some(id) && session.uuid == leg.uuid);
    if matches { Ok(other) } else { Err(DropReason::NoSession) }
}

/// Returns the outer IP fields of a forwarded packet from those it arrived with. The DS
/// field is kept and the TTL is one lower. The original's identification, don't-fragment
/// flag or flow label move to the field of the onward family that stores them, as the
/// ingress placed them (see `outer_fields` in the engine).
fn transit_fields(arrived: &IpFields, inner_v4: bool, onward_v4: bool) -> IpHeaderFields {
    let mut fields = IpHeaderFields {
        tos: arrived.tos(),
        ttl: arrived.ttl().saturating_sub(1),
        identification: 0,
        dont_fragment: false,
        flow_label: 0,
    };
    match (*arrived, onward_v4) {
        (IpFields::V4 { identification, dont_fragment, .. }, true) => {
            fields.identification = identification;
            fields.dont_fragment = dont_fragment;
        }
        (IpFields::V4 { identification, dont_fragment, .. }, false) => {
            let flag = if inner_v4 { u32::from(dont_fragment) << 16 } else { 0 };
            fields.flow_label = flag | u32::from(identification);
        }
        (IpFields::V6 { flow_label, .. }, true) => {
            fields.identification = flow_label as u16;
            fields.dont_fragment = inner_v4 && flow_label & 0x1_0000 != 0;
        }
        (IpFields::V6 { flow_label, .. }, false) => fields.flow_label = flow_label,
    }
    fields
}
