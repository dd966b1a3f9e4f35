//! [`Engine::process_burst`]: a received burst through the multi-buffer crypto engine.
//!
//! The frames of the burst are parsed and their sessions looked up together first
//! ([`SessionTable::find_lan_burst`], [`SessionTable::find_wan_burst`]), so that the cache
//! misses of all the lookups overlap. Each frame then takes its session from that lookup,
//! unless an earlier frame of the burst has added, removed or moved a session since. Then
//! the frame looks its session up again, mostly in lines the batch has brought into the
//! cache.
//!
//! Each packet then gets its session work, in receive order, exactly as
//! [`Engine::process`] does it. A session packet without metadata is then staged instead of
//! sealed or opened: LAN packets as seal jobs, WAN packets as open jobs. The staged jobs run
//! through [`crate::crypto::mb`] together, after which each packet is finished (trailer or
//! restored headers, transmit or drop with its counter) in receive order.
//!
//! Any other packet (metadata, SVR or IPv4 fragments, ICMP errors, unencrypted sessions,
//! malformed frames) takes the one-packet path. The jobs staged before it run first, so
//! the output keeps the receive order and every session receives its packets in that order.
//!
//! Opening stays exact when a burst holds several packets of one session. Each job checks
//! the replay window as it was when the job was staged, on a copy. When the burst is
//! finished, each packet is checked again against the real window, which by then records
//! the earlier packets of the burst, and only an authentic packet that passes is recorded.
//! A packet that the one-packet path would drop as a replay before its tag check is so
//! dropped as a replay here too, and a forged packet changes no window.

use std::mem;
use std::net::{IpAddr, Ipv4Addr};
use std::ops::Range;
use std::time::Instant;

use tracing::debug;

use super::{CryptoPath, Engine, Fit, FrameSource, discard, outer_fields, receive_drop, seal_drop};
use crate::counters::DropReason;
use crate::crypto::mb::{self, OpenJob, SealJob, Width};
use crate::crypto::{CryptoError, Direction, OpenError, SEQUENCE_LEN, Sequence, padded_len};
use crate::epoch::{InterfaceId, InterfaceRole, KeyEpoch, TenantId};
use crate::forward::FiveTuple;
use crate::forward::headers::{IpHeaderFields, Macs, emit_outer, outer_header_len};
use crate::forward::parse::{ETHERNET_LEN, ParsedFrame, parse_frame, parse_wan_frame};
use crate::io::{Frame, MAX_BURST};
use crate::packet::{Detection, detect};
use crate::replay::ReplayWindow;
use crate::sealed::{
    MAX_SEALED_LEN, Outgoing, ReceiveError, Received, classify, peek_sequence, seal,
    sealed_len_bound, starts_with_cookie,
};
use crate::session::{Role, Session, SessionId, SessionTable};

const _: () = assert!(MAX_BURST <= mb::MAX_BURST, "a receive burst must fit one mb slice");

/// The frames and jobs of the burst being processed, kept between bursts so that their
/// storage is allocated once.
#[derive(Debug)]
pub(super) struct Staging {
    resolved: Resolved,
    seals: Vec<StagedSeal>,
    opens: Vec<StagedOpen>,
    /// Jobs run through the multi-buffer engine, sealed and opened.
    #[cfg(test)]
    jobs_run: (u64, u64),
    /// Session lookups done ahead that were used, and those done again because the table
    /// had changed.
    #[cfg(test)]
    lookups_ahead: (u64, u64),
}

impl Staging {
    pub(super) fn new() -> Staging {
        Staging {
            resolved: Resolved { len: 0, generation: 0, frames: [None; MAX_BURST] },
            seals: Vec::with_capacity(MAX_BURST),
            opens: Vec::with_capacity(MAX_BURST),
            #[cfg(test)]
            jobs_run: (0, 0),
            #[cfg(test)]
            lookups_ahead: (0, 0),
        }
    }
}

/// The session lookup of one frame, done by the batched lookup of its burst before the
/// frame's turn.
#[derive(Debug, Clone, Copy)]
pub(super) struct FoundAhead {
    id: Option<SessionId>,
    /// [`SessionTable::generation`] when the lookup ran.
    generation: u64,
}

/// The frames of the burst being processed, parsed and with their sessions looked up.
#[derive(Debug)]
struct Resolved {
    /// Frames of the burst; later entries belong to earlier bursts.
    len: usize,
    /// [`SessionTable::generation`] when the sessions were looked up.
    generation: u64,
    /// Each frame's parse and session, or `None` for a frame that does not parse.
    frames: [Option<(ParsedFrame, Option<SessionId>)>; MAX_BURST],
}

impl Resolved {
    /// Frame `index`'s parse, or `None` when it does not parse.
    fn parsed(&self, index: usize) -> Option<ParsedFrame> {
        self.frame(index).map(|(parsed, _)| parsed)
    }

    /// Frame `index`'s session lookup, or `None` when the frame does not parse.
    fn ahead(&self, index: usize) -> Option<FoundAhead> {
        let (_, id) = self.frame(index)?;
        Some(FoundAhead { id, generation: self.generation })
    }

    fn frame(&self, index: usize) -> Option<(ParsedFrame, Option<SessionId>)> {
        if index >= self.len {
            return None;
        }
        *self.frames.get(index)?
    }
}

/// A LAN packet whose session work is done, copied into its output frame and waiting to
/// be sealed.
#[derive(Debug)]
struct StagedSeal {
    /// Index of the received frame in the burst.
    input: usize,
    /// Range of the carried bytes in the received frame.
    carried: Range<usize>,
    session: SessionId,
    number: u64,
    direction: Direction,
    port: InterfaceId,
    /// The output frame: outer headers still to write, then the payload to seal in place.
    out: Frame,
    header_len: usize,
    waypoints: FiveTuple,
    macs: Macs,
    fields: IpHeaderFields,
}

/// A WAN packet whose session and key are found and whose number passed the replay
/// pre-check, waiting to be opened.
#[derive(Debug)]
struct StagedOpen {
    /// Index of the received frame in the burst.
    input: usize,
    /// Range of the SVR payload in the received frame.
    payload: Range<usize>,
    session: SessionId,
    key_id: u8,
    number: u64,
    direction: Direction,
    outer: ParsedFrame,
}

/// Role of the port a burst arrived on.
#[derive(Debug, Clone, Copy)]
enum Side {
    Lan,
    Wan,
}

/// Filler for the unused entries of a burst's array of lookup keys.
const UNSPECIFIED_TUPLE: FiveTuple = FiveTuple {
    source: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    destination: IpAddr::V4(Ipv4Addr::UNSPECIFIED),
    source_port: 0,
    destination_port: 0,
    protocol: 0,
};

/// Outcome of the first steps for one received packet.
enum Stage<T> {
    /// It waits in the staging area.
    Staged(T),
    /// It was dropped for this reason.
    Dropped(DropReason),
    /// It needs the one-packet path, and has changed no state that this path would not
    /// change the same way.
    Single,
}

impl Engine {
    /// Processes `burst`, received on `port`, as [`Engine::process`] would process each
    /// frame in turn, with the same output frames in the same order and the same counters.
    /// With [`CryptoPath::Burst`] the session packets are sealed or opened together.
    ///
    /// Every output frame waits in [`Engine::pop_output`]; take them all before the next
    /// call. The received frames are left for the caller to free. Nothing is held back for
    /// later packets: a short burst is processed completely.
    pub fn process_burst(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        burst: &mut [Frame],
        frames: &mut dyn FrameSource,
    ) {
        let role = epoch.interfaces.get(usize::from(port)).map(|interface| interface.role);
        for chunk in burst.chunks_mut(MAX_BURST) {
            match role {
                Some(InterfaceRole::Lan { .. }) => self.resolve(Side::Lan, chunk),
                Some(InterfaceRole::Wan) => self.resolve(Side::Wan, chunk),
                None => self.staged.resolved.len = 0,
            }
            match (self.config.crypto, role) {
                (CryptoPath::Burst(width), Some(InterfaceRole::Lan { tenant })) => {
                    for index in 0..chunk.len() {
                        self.stage_lan(epoch, now, port, tenant, chunk, index, frames);
                    }
                    self.run_staged(width, epoch, now, port, chunk, frames);
                }
                (CryptoPath::Burst(width), Some(InterfaceRole::Wan)) => {
                    for index in 0..chunk.len() {
                        self.stage_wan(width, epoch, now, port, chunk, index, frames);
                    }
                    self.run_staged(width, epoch, now, port, chunk, frames);
                }
                _ => {
                    for (index, frame) in chunk.iter_mut().enumerate() {
                        let ahead = self.staged.resolved.ahead(index);
                        self.process_single(epoch, now, port, frame, frames, ahead);
                    }
                }
            }
        }
    }

    /// Parses the frames of `burst`, received on a port of `side`, and looks up all their
    /// sessions in one batch.
    fn resolve(&mut self, side: Side, burst: &[Frame]) {
        let mut tuples = [UNSPECIFIED_TUPLE; MAX_BURST];
        let mut indexes = [0; MAX_BURST];
        let mut count = 0;
        let resolved = &mut self.staged.resolved;
        for ((index, frame), entry) in burst.iter().enumerate().zip(&mut resolved.frames) {
            let parsed = match side {
                Side::Lan => parse_frame(frame.data()),
                Side::Wan => parse_wan_frame(frame.data()),
            };
            *entry = parsed.ok().map(|parsed| (parsed, None));
            if let Some((parsed, _)) = entry {
                tuples[count] = parsed.tuple;
                indexes[count] = index;
                count += 1;
            }
        }

        let mut found = [None; MAX_BURST];
        match side {
            Side::Lan => self.sessions.find_lan_burst(&tuples[..count], &mut found[..count]),
            Side::Wan => self.sessions.find_wan_burst(&tuples[..count], &mut found[..count]),
        }
        for (index, id) in indexes.iter().zip(found).take(count) {
            if let Some((_, session)) = &mut resolved.frames[*index] {
                *session = id;
            }
        }
        resolved.len = burst.len().min(MAX_BURST);
        resolved.generation = self.sessions.generation();
    }

    /// Finds the session of LAN `tuple`: `ahead`'s when the table is unchanged since that
    /// lookup, else by a lookup now.
    pub(super) fn find_lan_session(
        &mut self,
        tuple: &FiveTuple,
        ahead: Option<FoundAhead>,
    ) -> Option<SessionId> {
        self.find_session(tuple, ahead, SessionTable::find_lan)
    }

    /// Finds the session of the outer `tuple` of a WAN packet: `ahead`'s when the table is
    /// unchanged since that lookup, else by a lookup now.
    pub(super) fn find_wan_session(
        &mut self,
        tuple: &FiveTuple,
        ahead: Option<FoundAhead>,
    ) -> Option<SessionId> {
        self.find_session(tuple, ahead, SessionTable::find_wan)
    }

    fn find_session(
        &mut self,
        tuple: &FiveTuple,
        ahead: Option<FoundAhead>,
        find: fn(&SessionTable, &FiveTuple) -> Option<SessionId>,
    ) -> Option<SessionId> {
        match ahead {
            Some(ahead) if ahead.generation == self.sessions.generation() => {
                #[cfg(test)]
                {
                    self.staged.lookups_ahead.0 += 1;
                }
                ahead.id
            }
            Some(_) => {
                #[cfg(test)]
                {
                    self.staged.lookups_ahead.1 += 1;
                }
                find(&self.sessions, tuple)
            }
            None => find(&self.sessions, tuple),
        }
    }

    /// Runs one frame through [`Engine::process`], its output frames queued in order after
    /// those already queued. `ahead` is its session lookup from the batched lookup.
    fn process_single(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        frame: &mut Frame,
        frames: &mut dyn FrameSource,
        ahead: Option<FoundAhead>,
    ) {
        let before = self.outbox.len();
        if let Ok(Some(out)) = self.process_ahead(epoch, now, port, frame, frames, ahead) {
            // `process` queued the further fragments of a packet after `before`.
            self.outbox.insert(before, out);
        }
    }

    /// Does the session work of LAN frame `index` of `burst` and stages it as a seal job,
    /// or sends it on the one-packet path after the jobs staged before it.
    #[expect(clippy::too_many_arguments, reason = "the burst and its context travel together")]
    fn stage_lan(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        tenant: TenantId,
        burst: &mut [Frame],
        index: usize,
        frames: &mut dyn FrameSource,
    ) {
        let (done, rest) = burst.split_at_mut(index);
        let Some(frame) = rest.first_mut() else {
            return;
        };
        let Some(parsed) = self.staged.resolved.parsed(index) else {
            // IPv4 fragments from LAN hosts and malformed frames.
            self.flush_staged(epoch, now, port, done, frames);
            self.process_single(epoch, now, port, frame, frames, None);
            return;
        };
        let ahead = self.staged.resolved.ahead(index);
        let (id, fit) = match self.prepare_lan(epoch, now, port, tenant, &parsed, frame, ahead) {
            Ok(decided) => decided,
            Err(reason) => return self.count_drop(now, port, reason),
        };

        let mtu = self.config.wan_mtu;
        if fit == Fit::Whole
            && let Some(session) = self.sessions.get_mut(id)
            && session.encrypt
            && !session.send_metadata
        {
            match stage_seal(epoch, id, session, &parsed, frame.data(), index, mtu, frames) {
                Ok(staged) => {
                    // `seal_towards_peer` takes the number once the packet will certainly be
                    // sent, and from here on only `finish_seal` can still drop it.
                    // NOTE: a ciphertext that begins with the 8-byte SVR cookie gets a
                    // 12-byte marker there, and if that pushes it over the MTU it is
                    // dropped with its number taken, unlike on the one-packet path.
                    session.sent = staged.number;
                    session.last_seen = now;
                    self.staged.seals.push(staged);
                }
                Err(reason) => self.count_drop(now, port, reason),
            }
            return;
        }

        self.flush_staged(epoch, now, port, done, frames);
        let before = self.outbox.len();
        match self.send_lan(epoch, now, port, id, fit, &parsed, frame, frames) {
            Ok(out) => self.outbox.insert(before, out),
            Err(reason) => self.count_drop(now, port, reason),
        }
    }

    /// Does the session work of WAN frame `index` of `burst` and stages it as an open job,
    /// or sends it on the one-packet path after the jobs staged before it.
    #[expect(clippy::too_many_arguments, reason = "the burst and its context travel together")]
    fn stage_wan(
        &mut self,
        width: Width,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        burst: &mut [Frame],
        index: usize,
        frames: &mut dyn FrameSource,
    ) {
        let (done, rest) = burst.split_at_mut(index);
        let Some(frame) = rest.first_mut() else {
            return;
        };
        let ahead = self.staged.resolved.ahead(index);
        match self.stage_open(now, index, frame) {
            Stage::Staged(staged) => self.staged.opens.push(staged),
            Stage::Dropped(reason) => self.count_drop(now, port, reason),
            Stage::Single => {
                self.run_staged(width, epoch, now, port, done, frames);
                self.process_single(epoch, now, port, frame, frames, ahead);
            }
        }
    }

    /// The steps of `handle_wan` and `open_session_packet` before the tag check, for a
    /// packet without metadata of an encrypting session.
    fn stage_open(&mut self, now: Instant, index: usize, frame: &Frame) -> Stage<StagedOpen> {
        let Some(outer) = self.staged.resolved.parsed(index) else {
            return Stage::Single;
        };
        let payload = outer.carried();
        let packet = &frame.data()[payload.clone()];
        if !matches!(classify(packet), Ok(Received::Session)) {
            return Stage::Single;
        }
        let ahead = self.staged.resolved.ahead(index);
        let Some(id) = self.find_wan_session(&outer.tuple, ahead) else {
            return Stage::Single;
        };
        let Some(session) = self.sessions.get_mut(id) else {
            return Stage::Single;
        };
        // A transit session's packets go on without being decrypted, on their own path.
        if !session.encrypt || session.is_transit() {
            return Stage::Single;
        }

        // The steps from here on are those of the one-packet path, in its order. Advancing
        // the keys again at the same time changes nothing, so the packet may still go on
        // to that path.
        if session.keys.advance(now, self.config.rotation_grace) {
            self.counters.key_switches += 1;
        }
        // The burst engine decrypts the whole body, so a packet whose body begins with the
        // cookie (a false-positive marker, or metadata where none may be) goes alone.
        let tag_len = session.keys.sending().suite().tag_len();
        let Some(body_len) = packet.len().checked_sub(SEQUENCE_LEN + tag_len) else {
            return Stage::Single;
        };
        if !matches!(detect(&packet[..body_len]), Ok(Detection::Absent)) {
            return Stage::Single;
        }
        let sequence = match peek_sequence(packet, tag_len) {
            Ok(sequence) => sequence,
            Err(error) => return Stage::Dropped(receive_drop(error)),
        };
        if session.keys.receiving(sequence.key_id()).is_none() {
            return Stage::Dropped(session.keys.missing_key_reason(sequence.key_id()));
        }
        if session.window.check(sequence.number()).is_err() {
            return Stage::Dropped(DropReason::Replay);
        }
        Stage::Staged(StagedOpen {
            input: index,
            payload,
            session: id,
            key_id: sequence.key_id(),
            number: sequence.number(),
            direction: session.receive_direction(),
            outer,
        })
    }

    /// Runs the staged jobs, if any, before a packet that takes the one-packet path.
    fn flush_staged(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        done: &mut [Frame],
        frames: &mut dyn FrameSource,
    ) {
        if let CryptoPath::Burst(width) = self.config.crypto {
            self.run_staged(width, epoch, now, port, done, frames);
        }
    }

    /// Seals and opens the staged jobs together and finishes their packets in receive
    /// order. `burst` holds the received frames the jobs came from.
    fn run_staged(
        &mut self,
        width: Width,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        burst: &mut [Frame],
        frames: &mut dyn FrameSource,
    ) {
        if !self.staged.seals.is_empty() {
            self.run_seals(width, now, port, burst, frames);
        }
        if !self.staged.opens.is_empty() {
            self.run_opens(width, epoch, now, port, burst, frames);
        }
    }

    fn run_seals(
        &mut self,
        width: Width,
        now: Instant,
        port: InterfaceId,
        burst: &[Frame],
        frames: &mut dyn FrameSource,
    ) {
        let mut staged = mem::take(&mut self.staged.seals);
        let mut results: [Option<Result<usize, CryptoError>>; MAX_BURST] = [None; MAX_BURST];
        let sessions = &self.sessions;
        let filler = staged.iter().find_map(|job| sessions.get(job.session));
        if let Some(filler) = filler.map(|session| session.keys.sending()) {
            // Slots past the staged jobs get a placeholder job that is never run.
            let count = staged.len();
            let mut items = staged.iter_mut();
            let mut jobs: [SealJob<'_>; MAX_BURST] = core::array::from_fn(|_| {
                let Some(item) = items.next() else {
                    return SealJob::new(filler, Direction::Forward, 1, &mut [], 0);
                };
                let len = item.carried.len();
                match sessions.get(item.session) {
                    Some(session) => {
                        let keys = session.keys.sending();
                        let buffer = &mut item.out.data_mut()[item.header_len..];
                        SealJob::new(keys, item.direction, item.number, buffer, len)
                    }
                    // An empty buffer makes the job fail; the packet is dropped below.
                    None => SealJob::new(filler, item.direction, item.number, &mut [], len),
                }
            });
            mb::seal_burst_with(width, &mut jobs[..count]);
            #[cfg(test)]
            {
                self.staged.jobs_run.0 += count as u64;
            }
            for (result, job) in results.iter_mut().zip(&jobs[..count]) {
                *result = job.result();
            }
        }

        for (item, result) in staged.drain(..).zip(results) {
            let out_port = item.port;
            match self.finish_seal(burst, item, result, frames) {
                Ok(out) => {
                    self.counters.ingress_forwarded += 1;
                    self.outbox.push_back((out_port, out));
                }
                Err(reason) => self.count_drop(now, port, reason),
            }
        }
        self.staged.seals = staged;
    }

    /// Writes the outer headers of a sealed packet, after sealing it again on the
    /// one-packet path when its ciphertext begins with the SVR cookie.
    fn finish_seal(
        &mut self,
        burst: &[Frame],
        mut item: StagedSeal,
        result: Option<Result<usize, CryptoError>>,
        frames: &mut dyn FrameSource,
    ) -> Result<Frame, DropReason> {
        let Some(session) = self.sessions.get(item.session) else {
            return Err(discard(frames, item.port, item.out, DropReason::NoSession));
        };
        let mut sealed = match result {
            Some(Ok(len)) => len,
            Some(Err(error)) => {
                return Err(discard(frames, item.port, item.out, seal_drop(error.into())));
            }
            None => return Err(discard(frames, item.port, item.out, DropReason::NoSession)),
        };

        let keys = session.keys.sending();
        let body_len = padded_len(item.carried.len());
        let sequence =
            Sequence::new(keys.key_id(), item.number).map_err(|error| seal_drop(error.into()));
        let body = &item.out.data()[item.header_len..item.header_len + body_len];
        if let Ok(sequence) = sequence
            && starts_with_cookie(body, sequence)
        {
            // `seal` puts a false-positive marker in front; the IV comes from the number,
            // so the ciphertext is the same.
            // NOTE: no test reaches this branch, because a ciphertext begins with the
            // cookie once in 2^64 packets.
            let outgoing = Outgoing {
                session: keys,
                direction: item.direction,
                number: item.number,
                encrypt: true,
                metadata: None,
            };
            let carried = burst.get(item.input).map(|frame| &frame.data()[item.carried.clone()]);
            let buffer = &mut item.out.data_mut()[item.header_len..];
            match carried.map(|carried| seal(buffer, &outgoing, carried)) {
                Some(Ok(len)) => sealed = len,
                Some(Err(error)) => {
                    return Err(discard(frames, item.port, item.out, seal_drop(error)));
                }
                None => return Err(discard(frames, item.port, item.out, DropReason::Malformed)),
            }
        }

        item.out.truncate(item.header_len + sealed);
        let ip_len = item.header_len - ETHERNET_LEN + sealed;
        if ip_len > usize::from(self.config.wan_mtu) {
            return Err(discard(frames, item.port, item.out, DropReason::TooLong));
        }
        if emit_outer(item.out.data_mut(), item.macs, &item.waypoints, &item.fields).is_err() {
            return Err(discard(frames, item.port, item.out, DropReason::TooLong));
        }
        Ok(item.out)
    }

    fn run_opens(
        &mut self,
        width: Width,
        epoch: &KeyEpoch,
        now: Instant,
        port: InterfaceId,
        burst: &mut [Frame],
        frames: &mut dyn FrameSource,
    ) {
        let staged = mem::take(&mut self.staged.opens);
        let mut results: [Option<Result<usize, OpenError>>; MAX_BURST] = [None; MAX_BURST];
        let sessions = &self.sessions;
        let keys_of = |item: &StagedOpen| {
            sessions.get(item.session).and_then(|session| session.keys.receiving(item.key_id))
        };
        if let Some(filler) = staged.iter().find_map(keys_of) {
            // Each job checks and records a copy of its session's window; the real windows
            // are checked and recorded in receive order below.
            let mut windows: [ReplayWindow; MAX_BURST] =
                core::array::from_fn(|_| ReplayWindow::new());
            for (window, item) in windows.iter_mut().zip(&staged) {
                if let Some(session) = sessions.get(item.session) {
                    window.clone_from(&session.window);
                }
            }
            let mut items = staged.iter();
            let mut inputs = burst.iter_mut().enumerate();
            let mut jobs: [OpenJob<'_>; MAX_BURST] = windows.each_mut().map(|window| {
                let Some(item) = items.next() else {
                    return OpenJob::new(filler, Direction::Forward, window, &mut []);
                };
                let frame = inputs.find(|(index, _)| *index == item.input).map(|(_, frame)| frame);
                match (frame, keys_of(item)) {
                    (Some(frame), Some(keys)) => {
                        let packet = &mut frame.data_mut()[item.payload.clone()];
                        OpenJob::new(keys, item.direction, window, packet)
                    }
                    // An empty packet makes the job fail; the packet is dropped below.
                    _ => OpenJob::new(filler, item.direction, window, &mut []),
                }
            });
            let count = staged.len();
            mb::open_burst_with(width, &mut jobs[..count]);
            #[cfg(test)]
            {
                self.staged.jobs_run.1 += count as u64;
            }
            for (result, job) in results.iter_mut().zip(&jobs[..count]) {
                *result = job.result();
            }
        }

        let mut staged = staged;
        for (item, result) in staged.drain(..).zip(results) {
            match self.finish_open(epoch, now, burst, &item, result, frames) {
                Ok(out) => {
                    self.counters.egress_forwarded += 1;
                    self.outbox.push_back(out);
                }
                Err(reason) => self.count_drop(now, port, reason),
            }
        }
        self.staged.opens = staged;
    }

    /// Checks an opened packet against its session's window as it is now, records it, and
    /// restores it onto the LAN.
    fn finish_open(
        &mut self,
        epoch: &KeyEpoch,
        now: Instant,
        burst: &[Frame],
        item: &StagedOpen,
        result: Option<Result<usize, OpenError>>,
        frames: &mut dyn FrameSource,
    ) -> Result<(InterfaceId, Frame), DropReason> {
        let session = self.sessions.get_mut(item.session).ok_or(DropReason::NoSession)?;
        // An earlier packet of this session in the burst may have moved the window since
        // this one was staged; the one-packet path would check it before the tag.
        session.window.check(item.number).map_err(|_| DropReason::Replay)?;
        let len = match result {
            Some(Ok(len)) => len,
            Some(Err(OpenError::Replay(_))) => return Err(DropReason::Replay),
            Some(Err(OpenError::Crypto(error))) => {
                return Err(receive_drop(ReceiveError::Crypto(error)));
            }
            None => return Err(DropReason::NoSession),
        };
        session.window.record(item.number).map_err(|_| DropReason::Replay)?;
        if session.role == Role::Egress && session.send_metadata {
            session.send_metadata = false;
            debug!(session = %session.uuid, "metadata handshake complete");
        }
        session.last_seen = now;

        let frame = burst.get(item.input).ok_or(DropReason::Malformed)?;
        let plain = &frame.data()[item.payload.start..item.payload.start + len];
        let hop = super::lan_next_hop(epoch, session);
        let restored = super::restore_onto_lan(epoch, session, &item.outer, plain, frames);
        if restored.as_ref().is_err_and(|reason| *reason == DropReason::NoNeighbour) {
            Engine::note_unresolved(&mut self.unresolved, hop);
        }
        restored
    }
}

/// The steps of `seal_towards_peer` before the encryption, for a packet without metadata
/// of an encrypting session: the output frame is taken and the carried bytes copied into
/// it. The session is not changed.
#[expect(clippy::too_many_arguments, reason = "the frame and its parse travel together")]
fn stage_seal(
    epoch: &KeyEpoch,
    id: SessionId,
    session: &Session,
    parsed: &ParsedFrame,
    frame: &[u8],
    input: usize,
    wan_mtu: u16,
    frames: &mut dyn FrameSource,
) -> Result<StagedSeal, DropReason> {
    let port = session.wan_interface;
    let interface = epoch.interfaces.get(usize::from(port)).ok_or(DropReason::NoRoute)?;
    let next_hop = session
        .path
        .and_then(|path| epoch.path(session.peer, path))
        .and_then(|path| path.gateway)
        .unwrap_or(session.waypoints.destination);
    let destination_mac = epoch.neighbour(port, next_hop).ok_or(DropReason::NoRoute)?;
    let number = session.sent.checked_add(1).ok_or(DropReason::NoKey)?;
    let keys = session.keys.sending();
    let direction = session.send_direction();

    let carried = parsed.carried();
    let outgoing = Outgoing { session: keys, direction, number, encrypt: true, metadata: None };
    let needed = sealed_len_bound(&outgoing, carried.len());
    let header_len = outer_header_len(session.waypoints.source);
    let mut out = frames.alloc(port).ok_or(DropReason::NoBuffer)?;
    let Ok(buffer) = out.append(header_len + needed) else {
        return Err(discard(frames, port, out, DropReason::TooLong));
    };
    if let Err(error) = Sequence::new(keys.key_id(), number) {
        return Err(discard(frames, port, out, seal_drop(error.into())));
    }
    if needed > MAX_SEALED_LEN {
        let max = MAX_SEALED_LEN - (needed - carried.len());
        let error = CryptoError::PayloadTooLarge { len: carried.len(), max };
        return Err(discard(frames, port, out, seal_drop(error.into())));
    }
    buffer[header_len..header_len + carried.len()].copy_from_slice(&frame[carried.clone()]);

    let sealed = padded_len(carried.len()) + SEQUENCE_LEN + keys.suite().tag_len();
    if header_len - ETHERNET_LEN + sealed > usize::from(wan_mtu) {
        return Err(discard(frames, port, out, DropReason::TooLong));
    }
    Ok(StagedSeal {
        input,
        carried,
        session: id,
        number,
        direction,
        port,
        out,
        header_len,
        waypoints: session.waypoints,
        macs: Macs { source: interface.mac, destination: destination_mac },
        fields: outer_fields(&parsed.ip, session.waypoints.source.is_ipv4()),
    })
}

#[cfg(test)]
mod tests;
