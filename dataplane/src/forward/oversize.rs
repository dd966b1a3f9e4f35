//! LAN packets too long for the WAN MTU once sealed: the choice between sending whole,
//! sending SVR fragments and replying with an ICMP error (`docs/protocol.md` section 10),
//! and the sealing of the fragments.

use std::collections::VecDeque;
use std::time::Instant;

use super::FrameSource;
use super::engine::{discard, outer_fields, seal_drop};
use super::fragment::{FragmentCounters, max_piece_len};
use super::headers::{Macs, emit_outer, outer_header_len};
use super::icmp::{IPV6_MIN_MTU, IcmpLimiter, emit_too_big, may_answer, too_big_len};
use super::parse::{ETHERNET_LEN, IpFields, ParsedFrame};
use crate::counters::DropReason;
use crate::crypto::{MacKey, MetadataKeys, SEQUENCE_LEN, Sequence, padded_len};
use crate::epoch::{InterfaceId, KeyEpoch};
use crate::io::Frame;
use crate::packet::{BASE_HEADER_LEN, COOKIE, Fragment, HeaderTlv, PayloadTlv};
use crate::sealed::{Outgoing, OutgoingMetadata, PayloadTlvs, seal, sealed_len_bound};
use crate::session::Session;

/// The way a LAN packet crosses the WAN.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Fit {
    /// As one SVR packet.
    Whole,
    /// As SVR fragments.
    Fragments,
    /// Not at all: the source receives an ICMP error that names `mtu` bytes as the largest
    /// packet that crosses whole.
    TooBig { mtu: u16 },
}

/// Chooses how the packet in `parsed`, whose carried bytes are `carried`, crosses a WAN of
/// `wan_mtu` bytes for `session`.
///
/// The MTU sent to sources is that of packets without metadata, which is what every
/// packet of a session carries once the handshake is done. A packet that fits it but not
/// the metadata a handshake adds is sent as fragments even with DF set: the egress
/// delivers it whole, so the source never learns it was split.
pub(super) fn choose_fit(
    epoch: &KeyEpoch,
    session: &Session,
    parsed: &ParsedFrame,
    carried: &[u8],
    wan_mtu: u16,
) -> Result<Fit, DropReason> {
    let mtu = usize::from(wan_mtu);
    let steady = steady_len(session, carried);
    if steady > mtu && !may_fragment(parsed) {
        let max_carried = max_steady_carried(session, carried, mtu);
        let headers = parsed.payload_start - ETHERNET_LEN;
        let mtu = u16::try_from(max_carried + headers).unwrap_or(u16::MAX);
        return Ok(Fit::TooBig { mtu });
    }
    if !session.send_metadata {
        return Ok(if steady <= mtu { Fit::Whole } else { Fit::Fragments });
    }

    let peer = epoch.peers.get(usize::from(session.peer)).ok_or(DropReason::NoRoute)?;
    let keys = peer.metadata_keys.as_ref().ok_or(DropReason::NoKey)?;
    let pair = peer.pair_keys.first().ok_or(DropReason::NoKey)?;
    let head = session.metadata_head().ok_or(DropReason::Malformed)?;
    let outgoing = Outgoing {
        session: session.keys.sending(),
        direction: session.send_direction(),
        number: session.sent + 1,
        encrypt: session.encrypt,
        metadata: Some(OutgoingMetadata {
            keys,
            tag_key: pair.send(),
            header_tlvs: &[],
            payload_tlvs: session.metadata.tlvs(&head),
        }),
    };
    let ip_udp = outer_header_len(session.waypoints.source) - ETHERNET_LEN;
    let whole = ip_udp + sealed_len_bound(&outgoing, carried.len());
    Ok(if whole <= mtu { Fit::Whole } else { Fit::Fragments })
}

/// Returns whether the source lets the packet be split: an IPv4 packet without DF, or an IPv6
/// packet no longer than the IPv6 minimum MTU, which no PMTU error can make a source go
/// below (RFC 8201 section 4).
fn may_fragment(parsed: &ParsedFrame) -> bool {
    match parsed.ip {
        IpFields::V4 { dont_fragment, .. } => !dont_fragment,
        IpFields::V6 { .. } => parsed.end - ETHERNET_LEN <= usize::from(IPV6_MIN_MTU),
    }
}

/// Outer IP packet length of `carried` sealed without metadata.
fn steady_len(session: &Session, carried: &[u8]) -> usize {
    let ip_udp = outer_header_len(session.waypoints.source) - ETHERNET_LEN;
    ip_udp + steady_body_len(session, carried, carried.len()) + trailer_len(session)
}

/// Length of `len` carried bytes sealed without metadata, before the trailer. A plain
/// payload that begins with the cookie gets a 12-byte marker in front of it.
fn steady_body_len(session: &Session, carried: &[u8], len: usize) -> usize {
    if session.encrypt {
        padded_len(len)
    } else if carried.starts_with(&COOKIE) {
        len + BASE_HEADER_LEN
    } else {
        len
    }
}

fn trailer_len(session: &Session) -> usize {
    SEQUENCE_LEN + session.keys.sending().suite().tag_len()
}

/// Returns the longest carried payload that crosses a WAN of `mtu` bytes without metadata.
fn max_steady_carried(session: &Session, carried: &[u8], mtu: usize) -> usize {
    let ip_udp = outer_header_len(session.waypoints.source) - ETHERNET_LEN;
    let room = mtu.saturating_sub(ip_udp + trailer_len(session));
    if session.encrypt {
        // PKCS#7 adds 1 to 16 bytes, so the longest payload is one short of whole blocks.
        (room / 16 * 16).saturating_sub(1)
    } else if carried.starts_with(&COOKIE) {
        room.saturating_sub(BASE_HEADER_LEN)
    } else {
        room
    }
}

/// Output side of [`seal_fragments`]: frame pools, queue, counters and fragment id.
pub(super) struct FragmentOutput<'a> {
    pub frames: &'a mut dyn FrameSource,
    /// Receives every fragment but the first, which is returned.
    pub outbox: &'a mut VecDeque<(InterfaceId, Frame)>,
    pub counters: &'a mut FragmentCounters,
    /// The fragment TLV's extended id for this packet.
    pub extended_id: u32,
    pub max_fragments: usize,
}

/// Seals `carried` as SVR fragments of `session`, each a packet with its own sequence
/// number and with metadata whose header section contains the fragment TLV. Returns the first
/// fragment and queues the others in order. Nothing is sent and no packet number is used
/// unless every fragment could be made.
pub(super) fn seal_fragments(
    epoch: &KeyEpoch,
    session: &mut Session,
    parsed: &ParsedFrame,
    carried: &[u8],
    wan_mtu: u16,
    output: FragmentOutput<'_>,
) -> Result<(InterfaceId, Frame), DropReason> {
    let port = session.wan_interface;
    let macs = wan_macs(epoch, session)?;
    let peer = epoch.peers.get(usize::from(session.peer)).ok_or(DropReason::NoRoute)?;
    let keys = peer.metadata_keys.as_ref().ok_or(DropReason::NoKey)?;
    let tag_key = peer.pair_keys.first().ok_or(DropReason::NoKey)?.send();

    // Once the handshake is done a fragment carries only the session UUID, which binds it
    // to the session because the tag does not cover the outer ports.
    let carrier = [PayloadTlv::SessionUuid(session.uuid)];
    let head = session.metadata_head().ok_or(DropReason::Malformed)?;
    let payload_tlvs: PayloadTlvs<'_> = if session.send_metadata {
        session.metadata.tlvs(&head)
    } else {
        PayloadTlvs::from(&carrier[..])
    };

    let header_len = outer_header_len(session.waypoints.source);
    let ip_udp = header_len - ETHERNET_LEN;
    let mtu = usize::from(wan_mtu);
    let probe = [HeaderTlv::Fragment(Fragment::default())];
    let piece = max_piece_len(mtu.saturating_sub(ip_udp), |len| {
        let packet = fragment_packet(session, (keys, tag_key), payload_tlvs, &probe, 1);
        ip_udp + sealed_len_bound(&packet, len) <= mtu
    })
    .ok_or(DropReason::TooLong)?;
    let count = carried.len().div_ceil(piece);
    let last_offset = (count.saturating_sub(1) * piece) / 8;
    if count > output.max_fragments || last_offset > usize::from(Fragment::MAX_OFFSET) {
        return Err(DropReason::TooLong);
    }
    let first_number = session.sent.checked_add(1).ok_or(DropReason::NoKey)?;
    let last_number = session.sent.checked_add(count as u64).ok_or(DropReason::NoKey)?;
    if last_number > Sequence::MAX_NUMBER {
        return Err(DropReason::NoKey);
    }

    let fields = outer_fields(&parsed.ip, session.waypoints.source.is_ipv4());
    let original_id = match parsed.ip {
        IpFields::V4 { identification, .. } => identification,
        IpFields::V6 { flow_label, .. } => flow_label as u16,
    };
    let FragmentOutput { frames, outbox, counters, extended_id, .. } = output;
    let mut first = None;
    for index in 0..count {
        let start = index * piece;
        let end = (start + piece).min(carried.len());
        let fragment = Fragment {
            extended_id,
            original_id,
            reserved_flag: false,
            dont_fragment: false,
            more_fragments: end < carried.len(),
            offset: (start / 8) as u16,
            largest_seen: piece as u16,
        };
        let header_tlvs = [HeaderTlv::Fragment(fragment)];
        let number = first_number + index as u64;
        let packet = fragment_packet(session, (keys, tag_key), payload_tlvs, &header_tlvs, number);
        let made = seal_one(frames, port, header_len, mtu, &packet, &carried[start..end]).and_then(
            |mut out| match emit_outer(out.data_mut(), macs, &session.waypoints, &fields) {
                Ok(()) => Ok(out),
                Err(_) => Err(discard(frames, port, out, DropReason::TooLong)),
            },
        );
        match (made, first.is_none()) {
            (Ok(out), true) => first = Some((port, out)),
            (Ok(out), false) => outbox.push_back((port, out)),
            (Err(reason), _) => {
                // Take back what this packet queued, the newest first.
                for _ in 1..index {
                    if let Some((port, frame)) = outbox.pop_back() {
                        frames.free(port, frame);
                    }
                }
                if let Some((port, frame)) = first.take() {
                    frames.free(port, frame);
                }
                return Err(reason);
            }
        }
    }

    session.sent = last_number;
    counters.packets_fragmented += 1;
    counters.fragments_sent += count as u64;
    first.ok_or(DropReason::TooLong)
}

/// Builds the packet of one fragment of `session`.
fn fragment_packet<'a>(
    session: &'a Session,
    (keys, tag_key): (&'a MetadataKeys, &'a MacKey),
    payload_tlvs: PayloadTlvs<'a>,
    header_tlvs: &'a [HeaderTlv],
    number: u64,
) -> Outgoing<'a> {
    Outgoing {
        session: session.keys.sending(),
        direction: session.send_direction(),
        number,
        encrypt: session.encrypt,
        metadata: Some(OutgoingMetadata { keys, tag_key, header_tlvs, payload_tlvs }),
    }
}

/// Seals one fragment into a new frame on `port`, leaving room for the outer headers.
fn seal_one(
    frames: &mut dyn FrameSource,
    port: InterfaceId,
    header_len: usize,
    mtu: usize,
    packet: &Outgoing<'_>,
    piece: &[u8],
) -> Result<Frame, DropReason> {
    let bound = header_len + sealed_len_bound(packet, piece.len());
    let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
    let sealed = out
        .append(bound)
        .map_err(|_| DropReason::TooLong)
        .and_then(|buffer| seal(&mut buffer[header_len..], packet, piece).map_err(seal_drop));
    let sealed = match sealed {
        Ok(len) => len,
        Err(reason) => return Err(discard(frames, port, out, reason)),
    };
    out.truncate(header_len + sealed);
    if header_len - ETHERNET_LEN + sealed > mtu {
        return Err(discard(frames, port, out, DropReason::TooLong));
    }
    Ok(out)
}

/// Returns the MAC addresses of the session's SVR packets on its WAN port.
fn wan_macs(epoch: &KeyEpoch, session: &Session) -> Result<Macs, DropReason> {
    let port = session.wan_interface;
    let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
    let next_hop = session
        .path
        .and_then(|path| epoch.path(session.peer, path))
        .and_then(|path| path.gateway)
        .unwrap_or(session.waypoints.destination);
    let destination = epoch.neighbour(port, next_hop).ok_or(DropReason::NoRoute)?;
    Ok(Macs { source: interface.mac, destination })
}

/// Replies to the packet in `frame`, received on LAN port `port`, with an ICMP error that
/// names `mtu`, sent back out of `port` to the MAC address the packet came from.
pub(super) fn answer_too_big(
    epoch: &KeyEpoch,
    now: Instant,
    port: InterfaceId,
    (parsed, frame): (&ParsedFrame, &[u8]),
    mtu: u16,
    limiter: &mut IcmpLimiter,
    frames: &mut dyn FrameSource,
) -> Result<(InterfaceId, Frame), DropReason> {
    if !may_answer(parsed, frame) {
        limiter.counters_mut().suppressed += 1;
        return Err(DropReason::TooLong);
    }
    if !limiter.allow(now) {
        return Err(DropReason::TooLong);
    }
    let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
    // The error comes from the router's address on the LAN port. A port without one of
    // the packet's family sends it from the packet's destination address instead.
    let source = interface.address_like(parsed.tuple.source).unwrap_or(parsed.tuple.destination);
    let macs = Macs { source: interface.mac, destination: parsed.source_mac };
    let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
    let written =
        out.append(too_big_len(parsed)).map_err(|_| DropReason::TooLong).and_then(|buffer| {
            emit_too_big(buffer, macs, source, parsed, frame, mtu, limiter)
                .map_err(|_| DropReason::Malformed)
        });
    match written {
        Ok(()) => Ok((port, out)),
        Err(reason) => Err(discard(frames, port, out, reason)),
    }
}
