//! SVR fragmentation of carried payloads too long for the WAN MTU, and the per-worker
//! reassembly of the fragments a peer sends (`docs/protocol.md` section 10).
//!
//! A fragment is the piece `offset * 8 .. offset * 8 + len` of a session's carried payload
//! (the UDP payload for UDP, the whole L4 message otherwise), sealed as an SVR packet of
//! its own. This module is pure: the engine seals and opens the pieces, and passes the time
//! in. Reassembly keeps a fixed number of slots, each with a buffer allocated once when the
//! engine is made, so holding a fragment costs one copy and no allocation.

use std::fmt;
use std::time::{Duration, Instant};

use crate::packet::Fragment;

/// Limits of a worker's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ReassemblyConfig {
    /// Time from the first fragment of a packet after which its slot is freed and the
    /// fragments held are dropped.
    pub timeout: Duration,
    /// Packets reassembled at once; each slot owns a buffer of `max_packet_len` bytes.
    pub slots: usize,
    /// Maximum carried payload length one packet reassembles to.
    pub max_packet_len: usize,
    /// Maximum number of fragments of one packet.
    pub max_fragments: usize,
    /// Maximum number of bytes held for one session over all its slots.
    pub max_session_bytes: usize,
    /// Maximum number of bytes held over all slots.
    pub max_total_bytes: usize,
}

impl Default for ReassemblyConfig {
    /// Jumbo frames of 9000 bytes fit `max_packet_len`. 32 slots take 288 KiB per worker.
    fn default() -> ReassemblyConfig {
        ReassemblyConfig {
            timeout: Duration::from_secs(5),
            slots: 32,
            max_packet_len: 9216,
            max_fragments: 64,
            max_session_bytes: 4 * 9216,
            max_total_bytes: 256 * 1024,
        }
    }
}

/// Counters of fragmentation and reassembly on one worker.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FragmentCounters {
    /// LAN packets sent as SVR fragments.
    pub packets_fragmented: u64,
    /// SVR fragments sent.
    pub fragments_sent: u64,
    /// SVR fragments received with a valid tag.
    pub fragments_received: u64,
    /// Packets reassembled whole and forwarded.
    pub packets_reassembled: u64,
    /// Packets whose fragments did not all arrive before the timeout.
    pub timeouts: u64,
    /// Packets dropped unfinished to make room for another one.
    pub evictions: u64,
    /// Fragments dropped because the same range was already held.
    pub duplicates: u64,
    /// Packets dropped because two of their fragments overlapped or disagreed on the end.
    pub overlaps: u64,
    /// Fragments or packets dropped by a limit of [`ReassemblyConfig`], or malformed.
    pub rejected: u64,
}

/// Outcome of adding a fragment to its packet's reassembly.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Insert {
    /// The fragment is held; the packet is not yet complete.
    Held,
    /// The packet is complete in this slot: read it with [`Reassembler::packet`] and free
    /// the slot with [`Reassembler::release`].
    Complete(usize),
}

/// Reason a fragment was not held.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum FragmentError {
    /// A fragment with no bytes.
    Empty,
    /// A fragment with more fragments after it whose length is not a multiple of 8.
    Unaligned { len: usize },
    /// The fragment ends past the maximum packet length.
    TooLong { end: usize, max: usize },
    /// The packet already has the maximum number of fragments.
    TooManyFragments { max: usize },
    /// The fragment covers exactly a range already held.
    Duplicate { start: usize, end: usize },
    /// The fragment overlaps a range already held; the packet is dropped.
    Overlap { start: usize, end: usize },
    /// The fragment ends past the packet's end, or names another end than the last
    /// fragment did; the packet is dropped.
    Inconsistent { end: usize, total: usize },
    /// The session or all sessions would hold more bytes than allowed, and no other
    /// packet could be dropped to make room.
    OverLimit { needed: usize, max: usize },
}

/// The reassembly slots of one worker.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct Reassembler {
    config: ReassemblyConfig,
    slots: Vec<Slot>,
    held_bytes: usize,
    counters: FragmentCounters,
}

/// One packet being reassembled.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
struct Slot {
    key: Option<Key>,
    /// When the first fragment arrived, while `key` is set.
    started: Option<Instant>,
    buffer: Box<[u8]>,
    /// Byte ranges held, in arrival order.
    ranges: Vec<(usize, usize)>,
    held: usize,
    /// The packet length, known once the last fragment arrived.
    total: Option<usize>,
}

/// A packet's identity: its session's UUID and the fragment TLV's extended id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Key {
    session: u128,
    id: u32,
}

impl Reassembler {
    /// Allocates every slot's buffer.
    pub fn new(config: ReassemblyConfig) -> Reassembler {
        let slots = (0..config.slots)
            .map(|_| Slot {
                key: None,
                started: None,
                buffer: vec![0; config.max_packet_len].into_boxed_slice(),
                ranges: Vec::with_capacity(config.max_fragments),
                held: 0,
                total: None,
            })
            .collect();
        Reassembler { config, slots, held_bytes: 0, counters: FragmentCounters::default() }
    }

    /// Returns the counters, to which the engine adds the sending side.
    pub fn counters(&self) -> &FragmentCounters {
        &self.counters
    }

    /// Returns the counters, writable.
    pub fn counters_mut(&mut self) -> &mut FragmentCounters {
        &mut self.counters
    }

    /// Number of packets being reassembled.
    pub fn in_progress(&self) -> usize {
        self.slots.iter().filter(|slot| slot.key.is_some()).count()
    }

    /// Bytes held over all slots.
    pub fn held_bytes(&self) -> usize {
        self.held_bytes
    }

    /// Adds `piece`, the payload of an authenticated fragment of session `session`, to its
    /// packet. Frees the slots that timed out first. Every error is counted.
    pub fn insert(
        &mut self,
        now: Instant,
        session: u128,
        fragment: &Fragment,
        piece: &[u8],
    ) -> Result<Insert, FragmentError> {
        self.expire(now);
        let key = Key { session, id: fragment.extended_id };
        let start = usize::from(fragment.offset) * 8;
        let range = (start, start + piece.len(), fragment.more_fragments);
        let result = self.insert_unexpired(now, key, range, piece);
        match result {
            Ok(_) => self.counters.fragments_received += 1,
            Err(FragmentError::Duplicate { .. }) => self.counters.duplicates += 1,
            Err(FragmentError::Overlap { .. } | FragmentError::Inconsistent { .. }) => {
                self.counters.overlaps += 1
            }
            Err(_) => self.counters.rejected += 1,
        }
        result
    }

    /// Returns the reassembled packet in slot `index`, empty unless [`Insert::Complete`] named it.
    pub fn packet(&self, index: usize) -> &[u8] {
        match self.slots.get(index) {
            Some(slot) => match slot.total {
                Some(total) if slot.held == total => &slot.buffer[..total],
                _ => &[],
            },
            None => &[],
        }
    }

    /// Frees slot `index` after its packet was read.
    pub fn release(&mut self, index: usize) {
        self.free(index);
    }

    /// Frees the slots whose first fragment is older than the timeout; returns how many.
    pub fn expire(&mut self, now: Instant) -> usize {
        let timeout = self.config.timeout;
        let mut expired = 0;
        for index in 0..self.slots.len() {
            let slot = &self.slots[index];
            let started = slot.started.filter(|_| slot.key.is_some());
            if started.is_some_and(|started| now.saturating_duration_since(started) >= timeout) {
                self.free(index);
                expired += 1;
            }
        }
        self.counters.timeouts += expired as u64;
        expired
    }

    fn insert_unexpired(
        &mut self,
        now: Instant,
        key: Key,
        (start, end, more): (usize, usize, bool),
        piece: &[u8],
    ) -> Result<Insert, FragmentError> {
        let len = piece.len();
        if len == 0 {
            return Err(FragmentError::Empty);
        }
        if more && !len.is_multiple_of(8) {
            return Err(FragmentError::Unaligned { len });
        }
        let max = self.config.max_packet_len;
        if end > max {
            return Err(FragmentError::TooLong { end, max });
        }

        let index = match self.find(key) {
            Some(index) => index,
            None => self.claim(now, key)?,
        };
        if let Err(error) = self.check_range(index, start, end, more) {
            if !matches!(error, FragmentError::Duplicate { .. }) {
                self.free(index);
            }
            return Err(error);
        }
        if let Err(error) = self.make_room(index, key.session, len) {
            self.free(index);
            return Err(error);
        }

        let slot = &mut self.slots[index];
        slot.buffer[start..end].copy_from_slice(piece);
        slot.ranges.push((start, end));
        slot.held += len;
        if !more {
            slot.total = Some(end);
        }
        self.held_bytes += len;
        match slot.total {
            Some(total) if slot.held == total => Ok(Insert::Complete(index)),
            _ => Ok(Insert::Held),
        }
    }

    /// Checks a new range against the ranges and the end already known in slot `index`.
    fn check_range(
        &self,
        index: usize,
        start: usize,
        end: usize,
        more: bool,
    ) -> Result<(), FragmentError> {
        let slot = &self.slots[index];
        if slot.ranges.len() >= self.config.max_fragments {
            return Err(FragmentError::TooManyFragments { max: self.config.max_fragments });
        }
        for &(held_start, held_end) in &slot.ranges {
            if (held_start, held_end) == (start, end) {
                return Err(FragmentError::Duplicate { start, end });
            }
            if start < held_end && held_start < end {
                return Err(FragmentError::Overlap { start, end });
            }
        }
        // The last fragment fixes the end: nothing may lie past it, and no second last
        // fragment may name another.
        let furthest = slot.ranges.iter().map(|range| range.1).max().unwrap_or(0);
        match (slot.total, more) {
            (Some(total), _) if end > total || !more => {
                Err(FragmentError::Inconsistent { end, total })
            }
            (None, false) if furthest > end => {
                Err(FragmentError::Inconsistent { end: furthest, total: end })
            }
            _ => Ok(()),
        }
    }

    /// Drops other packets, oldest first, until `len` more bytes fit the session's and the
    /// total limit.
    fn make_room(&mut self, index: usize, session: u128, len: usize) -> Result<(), FragmentError> {
        loop {
            let session_bytes: usize = self
                .slots
                .iter()
                .filter(|slot| slot.key.is_some_and(|key| key.session == session))
                .map(|slot| slot.held)
                .sum();
            let (victim, needed, max) = if session_bytes + len > self.config.max_session_bytes {
                let victim = self.oldest(index, |key| key.session == session);
                (victim, session_bytes + len, self.config.max_session_bytes)
            } else if self.held_bytes + len > self.config.max_total_bytes {
                (self.oldest(index, |_| true), self.held_bytes + len, self.config.max_total_bytes)
            } else {
                return Ok(());
            };
            match victim {
                Some(victim) => {
                    self.free(victim);
                    self.counters.evictions += 1;
                }
                None => return Err(FragmentError::OverLimit { needed, max }),
            }
        }
    }

    fn find(&self, key: Key) -> Option<usize> {
        self.slots.iter().position(|slot| slot.key == Some(key))
    }

    /// Takes a free slot for a new packet, or the oldest one when all are in use.
    fn claim(&mut self, now: Instant, key: Key) -> Result<usize, FragmentError> {
        let index = match self.slots.iter().position(|slot| slot.key.is_none()) {
            Some(index) => index,
            None => {
                let oldest = self.oldest(usize::MAX, |_| true);
                let oldest = oldest.ok_or(FragmentError::OverLimit { needed: 1, max: 0 })?;
                self.free(oldest);
                self.counters.evictions += 1;
                oldest
            }
        };
        let slot = &mut self.slots[index];
        slot.key = Some(key);
        slot.started = Some(now);
        Ok(index)
    }

    /// Returns the oldest slot in use other than `except` whose key passes `filter`.
    fn oldest(&self, except: usize, filter: impl Fn(&Key) -> bool) -> Option<usize> {
        self.slots
            .iter()
            .enumerate()
            .filter(|(index, slot)| *index != except && slot.key.as_ref().is_some_and(&filter))
            .min_by_key(|(_, slot)| slot.started)
            .map(|(index, _)| index)
    }

    fn free(&mut self, index: usize) {
        if let Some(slot) = self.slots.get_mut(index) {
            self.held_bytes -= slot.held;
            slot.key = None;
            slot.started = None;
            slot.ranges.clear();
            slot.held = 0;
            slot.total = None;
        }
    }
}

/// Returns the longest piece, a multiple of 8 bytes, that `fits` accepts, or `None` when
/// not even 8 bytes fit. `fits(len)` must be monotonic: true up to some length, then false.
pub fn max_piece_len(upper: usize, fits: impl Fn(usize) -> bool) -> Option<usize> {
    let mut len = upper & !7;
    while len >= 8 {
        if fits(len) {
            return Some(len);
        }
        len -= 8;
    }
    None
}

impl fmt::Display for FragmentError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            FragmentError::Empty => f.write_str("empty fragment"),
            FragmentError::Unaligned { len } => {
                write!(f, "fragment of {len} bytes before the last, expected a multiple of 8")
            }
            FragmentError::TooLong { end, max } => {
                write!(f, "fragment ends at byte {end}, past the maximum packet length {max}")
            }
            FragmentError::TooManyFragments { max } => {
                write!(f, "packet already has the maximum of {max} fragments")
            }
            FragmentError::Duplicate { start, end } => {
                write!(f, "fragment {start}..{end} already held")
            }
            FragmentError::Overlap { start, end } => {
                write!(f, "fragment {start}..{end} overlaps a fragment already held")
            }
            FragmentError::Inconsistent { end, total } => {
                write!(f, "fragment ends at byte {end}, but the packet ends at byte {total}")
            }
            FragmentError::OverLimit { needed, max } => {
                write!(f, "reassembly would hold {needed} bytes, more than the maximum {max}")
            }
        }
    }
}

impl std::error::Error for FragmentError {}

#[cfg(test)]
mod tests {
    use super::*;

    const SESSION: u128 = 0x1234;

    fn fragment(id: u32, offset_bytes: usize, more: bool) -> Fragment {
        Fragment {
            extended_id: id,
            original_id: 7,
            more_fragments: more,
            offset: (offset_bytes / 8) as u16,
            ..Fragment::default()
        }
    }

    /// Builds a packet of `len` bytes whose neighbouring bytes differ.
    fn packet(len: usize) -> Vec<u8> {
        (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
    }

    fn pieces(data: &[u8], piece: usize) -> Vec<(usize, &[u8], bool)> {
        data.chunks(piece)
            .enumerate()
            .map(|(i, chunk)| (i * piece, chunk, (i + 1) * piece < data.len()))
            .collect()
    }

    fn small(config: impl FnOnce(&mut ReassemblyConfig)) -> (Reassembler, Instant) {
        let now = Instant::now();
        let mut settings =
            ReassemblyConfig { slots: 4, max_packet_len: 4096, ..Default::default() };
        config(&mut settings);
        (Reassembler::new(settings), now)
    }

    #[test]
    fn reassemble_in_order() {
        let (mut r, now) = small(|_| {});
        let data = packet(3000);
        let all = pieces(&data, 1400);
        for (i, (offset, chunk, more)) in all.iter().enumerate() {
            let result = r.insert(now, SESSION, &fragment(1, *offset, *more), chunk).unwrap();
            if i + 1 < all.len() {
                assert_eq!(result, Insert::Held);
            } else {
                let Insert::Complete(index) = result else { panic!("not complete") };
                assert_eq!(r.packet(index), &data[..]);
                r.release(index);
            }
        }
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.held_bytes(), 0);
        assert_eq!(r.counters().fragments_received, 3);
    }

    #[test]
    fn reassemble_out_of_order() {
        let (mut r, now) = small(|_| {});
        let data = packet(2999);
        let mut all = pieces(&data, 800);
        all.reverse();
        all.swap(1, 2);
        let mut complete = None;
        for (offset, chunk, more) in all {
            assert!(complete.is_none(), "complete before the last fragment");
            if let Insert::Complete(index) =
                r.insert(now, SESSION, &fragment(9, offset, more), chunk).unwrap()
            {
                complete = Some(index);
            }
        }
        assert_eq!(r.packet(complete.unwrap()), &data[..]);
    }

    #[test]
    fn reassemble_interleaved_packets() {
        let (mut r, now) = small(|_| {});
        let a = packet(1600);
        let b: Vec<u8> = packet(1600).iter().map(|x| !x).collect();
        let (pa, pb) = (pieces(&a, 800), pieces(&b, 800));
        assert_eq!(r.insert(now, SESSION, &fragment(1, 0, true), pa[0].1), Ok(Insert::Held));
        assert_eq!(r.insert(now, SESSION, &fragment(2, 0, true), pb[0].1), Ok(Insert::Held));
        let Ok(Insert::Complete(ib)) = r.insert(now, SESSION, &fragment(2, 800, false), pb[1].1)
        else {
            panic!("b not complete")
        };
        assert_eq!(r.packet(ib), &b[..]);
        r.release(ib);
        let Ok(Insert::Complete(ia)) = r.insert(now, SESSION, &fragment(1, 800, false), pa[1].1)
        else {
            panic!("a not complete")
        };
        assert_eq!(r.packet(ia), &a[..]);
    }

    #[test]
    fn duplicate_fragment_dropped() {
        let (mut r, now) = small(|_| {});
        let data = packet(1600);
        r.insert(now, SESSION, &fragment(1, 0, true), &data[..800]).unwrap();
        let again = r.insert(now, SESSION, &fragment(1, 0, true), &data[..800]);
        assert_eq!(again, Err(FragmentError::Duplicate { start: 0, end: 800 }));
        assert_eq!(r.counters().duplicates, 1);
        // The packet still completes with the held copy.
        let done = r.insert(now, SESSION, &fragment(1, 800, false), &data[800..]).unwrap();
        let Insert::Complete(index) = done else { panic!("not complete") };
        assert_eq!(r.packet(index), &data[..]);
    }

    #[test]
    fn overlapping_fragment_drops_packet() {
        let (mut r, now) = small(|_| {});
        let data = packet(1600);
        r.insert(now, SESSION, &fragment(1, 0, true), &data[..800]).unwrap();
        let overlap = r.insert(now, SESSION, &fragment(1, 792, false), &data[792..]);
        assert_eq!(overlap, Err(FragmentError::Overlap { start: 792, end: 1600 }));
        assert_eq!(r.counters().overlaps, 1);
        assert_eq!(r.in_progress(), 0, "the whole packet is dropped");
        assert_eq!(r.held_bytes(), 0);
        // A correct last fragment now starts a new packet and does not complete it.
        let after = r.insert(now, SESSION, &fragment(1, 800, false), &data[800..]);
        assert_eq!(after, Ok(Insert::Held));
    }

    #[test]
    fn second_last_fragment_rejected() {
        let (mut r, now) = small(|_| {});
        let data = packet(2400);
        r.insert(now, SESSION, &fragment(1, 1600, false), &data[1600..]).unwrap();
        let other_end = r.insert(now, SESSION, &fragment(1, 0, false), &data[..800]);
        assert_eq!(other_end, Err(FragmentError::Inconsistent { end: 800, total: 2400 }));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn fragment_past_end_rejected() {
        let (mut r, now) = small(|_| {});
        let data = packet(2400);
        r.insert(now, SESSION, &fragment(1, 1600, true), &data[1600..2400]).unwrap();
        let short_last = r.insert(now, SESSION, &fragment(1, 0, false), &data[..800]);
        assert_eq!(short_last, Err(FragmentError::Inconsistent { end: 2400, total: 800 }));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn lost_fragment_times_out() {
        let (mut r, now) = small(|c| c.timeout = Duration::from_secs(2));
        let data = packet(1600);
        r.insert(now, SESSION, &fragment(1, 0, true), &data[..800]).unwrap();
        assert_eq!(r.expire(now + Duration::from_millis(1999)), 0);
        assert_eq!(r.in_progress(), 1);
        assert_eq!(r.expire(now + Duration::from_secs(2)), 1);
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.held_bytes(), 0);
        assert_eq!(r.counters().timeouts, 1);
        // The late last fragment starts a new packet that never completes.
        let late =
            r.insert(now + Duration::from_secs(3), SESSION, &fragment(1, 800, false), &data[800..]);
        assert_eq!(late, Ok(Insert::Held));
    }

    #[test]
    fn unaligned_fragment_rejected() {
        let (mut r, now) = small(|_| {});
        let result = r.insert(now, SESSION, &fragment(1, 0, true), &[0; 801]);
        assert_eq!(result, Err(FragmentError::Unaligned { len: 801 }));
        assert_eq!(r.counters().rejected, 1);
    }

    #[test]
    fn empty_fragment_rejected() {
        let (mut r, now) = small(|_| {});
        assert_eq!(r.insert(now, SESSION, &fragment(1, 0, false), &[]), Err(FragmentError::Empty));
    }

    #[test]
    fn packet_length_limit() {
        let (mut r, now) = small(|c| c.max_packet_len = 2000);
        let result = r.insert(now, SESSION, &fragment(1, 1600, false), &[0; 401]);
        assert_eq!(result, Err(FragmentError::TooLong { end: 2001, max: 2000 }));
        assert_eq!(r.insert(now, SESSION, &fragment(1, 1600, false), &[0; 400]), Ok(Insert::Held));
    }

    #[test]
    fn fragment_count_limit() {
        let (mut r, now) = small(|c| c.max_fragments = 3);
        for i in 0..3 {
            assert_eq!(
                r.insert(now, SESSION, &fragment(1, i * 8, true), &[1; 8]),
                Ok(Insert::Held)
            );
        }
        let fourth = r.insert(now, SESSION, &fragment(1, 24, false), &[1; 8]);
        assert_eq!(fourth, Err(FragmentError::TooManyFragments { max: 3 }));
        assert_eq!(r.in_progress(), 0);
    }

    #[test]
    fn session_byte_limit_evicts_oldest() {
        let (mut r, now) = small(|c| c.max_session_bytes = 2000);
        r.insert(now, SESSION, &fragment(1, 0, true), &[1; 800]).unwrap();
        let later = now + Duration::from_millis(10);
        r.insert(later, SESSION, &fragment(2, 0, true), &[2; 800]).unwrap();
        r.insert(later, 99, &fragment(3, 0, true), &[3; 800]).unwrap();
        // A third packet of the session pushes it over 2000 bytes: its oldest packet goes,
        // the other session's stays.
        r.insert(later, SESSION, &fragment(4, 0, true), &[4; 800]).unwrap();
        assert_eq!(r.counters().evictions, 1);
        assert_eq!(r.in_progress(), 3);
        assert_eq!(r.held_bytes(), 2400);
        let restarted = r.insert(later, SESSION, &fragment(1, 800, false), &[1; 8]);
        assert_eq!(restarted, Ok(Insert::Held), "packet 1 was dropped, so it cannot complete");
    }

    #[test]
    fn session_byte_limit_rejects_single_packet() {
        let (mut r, now) = small(|c| c.max_session_bytes = 1000);
        r.insert(now, SESSION, &fragment(1, 0, true), &[1; 800]).unwrap();
        let result = r.insert(now, SESSION, &fragment(1, 800, false), &[1; 800]);
        assert_eq!(result, Err(FragmentError::OverLimit { needed: 1600, max: 1000 }));
        assert_eq!(r.in_progress(), 0);
        assert_eq!(r.held_bytes(), 0);
    }

    #[test]
    fn total_byte_limit_evicts_oldest() {
        let (mut r, now) = small(|c| c.max_total_bytes = 2000);
        r.insert(now, 1, &fragment(1, 0, true), &[1; 800]).unwrap();
        r.insert(now + Duration::from_millis(1), 2, &fragment(1, 0, true), &[2; 800]).unwrap();
        r.insert(now + Duration::from_millis(2), 3, &fragment(1, 0, true), &[3; 800]).unwrap();
        assert_eq!(r.counters().evictions, 1);
        assert_eq!(r.held_bytes(), 1600);
        assert_eq!(r.in_progress(), 2);
    }

    #[test]
    fn full_slots_evict_oldest() {
        let (mut r, now) = small(|c| c.slots = 2);
        r.insert(now, SESSION, &fragment(1, 0, true), &[1; 8]).unwrap();
        r.insert(now + Duration::from_millis(1), SESSION, &fragment(2, 0, true), &[2; 8]).unwrap();
        r.insert(now + Duration::from_millis(2), SESSION, &fragment(3, 0, true), &[3; 8]).unwrap();
        assert_eq!(r.counters().evictions, 1);
        assert_eq!(r.in_progress(), 2);
        // Packet 2 is still held and completes.
        let done = r.insert(now, SESSION, &fragment(2, 8, false), &[2; 8]).unwrap();
        let Insert::Complete(index) = done else { panic!("packet 2 was evicted") };
        assert_eq!(r.packet(index), &[2; 16]);
    }

    #[test]
    fn sessions_kept_apart() {
        let (mut r, now) = small(|_| {});
        r.insert(now, 1, &fragment(5, 0, true), &[1; 8]).unwrap();
        let other = r.insert(now, 2, &fragment(5, 8, false), &[2; 8]).unwrap();
        assert_eq!(other, Insert::Held, "same id in another session is another packet");
        assert_eq!(r.in_progress(), 2);
    }

    #[test]
    fn max_piece_len_steps_by_eight() {
        assert_eq!(max_piece_len(1000, |len| len <= 997), Some(992));
        assert_eq!(max_piece_len(1000, |len| len <= 1000), Some(1000));
        assert_eq!(max_piece_len(7, |_| true), None);
        assert_eq!(max_piece_len(1000, |_| false), None);
    }
}
