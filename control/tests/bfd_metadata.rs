//! Metadata framing and reassembly: fixtures, one test per rejection, limits, timeouts and
//! arbitrary input.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

use std::time::Duration;

use proptest::prelude::*;
use svr_control::bfd::metadata::{
    FragmentHeader, HEADER_LEN, MAX_FRAGMENTS, MetadataError, Reassembled, Reassembler,
    ReassemblyLimits, fragment, max_fragment_data,
};
use svr_control::bfd::timers::Instant;

const T0: Instant = Instant::ZERO;

fn at_ms(n: u64) -> Instant {
    Instant::ZERO + Duration::from_millis(n)
}

fn message(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i * 7 + i / 251) as u8).collect()
}

fn section(header: FragmentHeader, data: &[u8]) -> Vec<u8> {
    let mut head = [0u8; HEADER_LEN];
    header.emit(&mut head);
    let mut out = head.to_vec();
    out.extend_from_slice(data);
    out
}

fn header(id: u32, index: u16, count: u16, total: u32, offset: u32, len: u16) -> FragmentHeader {
    FragmentHeader { message_id: id, index, count, total_len: total, offset, fragment_len: len }
}

fn reassembler() -> Reassembler {
    Reassembler::new(ReassemblyLimits::default())
}

#[test]
fn header_fixture_both_ways() {
    let bytes: [u8; 24] = [
        0x53, 0x56, 0x01, 0x00, // magic, version 1, reserved
        0x00, 0x00, 0x01, 0x02, // message id 258
        0x00, 0x01, 0x00, 0x04, // fragment 1 of 4
        0x00, 0x00, 0x0f, 0xa0, // total 4000
        0x00, 0x00, 0x04, 0xb4, // offset 1204
        0x00, 0x03, 0x00, 0x00, // fragment length 3, reserved
    ];
    let mut datagram = bytes.to_vec();
    datagram.extend_from_slice(b"abc");
    let (parsed, data) = FragmentHeader::parse(&datagram).unwrap();
    assert_eq!(parsed, header(258, 1, 4, 4000, 1204, 3));
    assert_eq!(data, b"abc");
    let mut out = [0xffu8; HEADER_LEN];
    parsed.emit(&mut out);
    assert_eq!(out, bytes);
}

#[test]
fn fragment_sizes_for_mtu_1280() {
    // 1280 - 20 (IPv4) - 8 (UDP) - 24 (BFD) - 24 (header) = 1204 bytes per fragment.
    assert_eq!(max_fragment_data(1280, false), Ok(1204));
    assert_eq!(max_fragment_data(1280, true), Ok(1184));
    let sections = fragment(9, &message(4000), 1204, 65536).unwrap();
    assert_eq!(sections.len(), 4);
    for s in &sections[..3] {
        assert_eq!(s.len(), HEADER_LEN + 1204);
        // Control packet, UDP and IPv4 headers bring it to exactly the MTU.
        assert_eq!(s.len() + 24 + 8 + 20, 1280);
    }
    assert_eq!(sections[3].len(), HEADER_LEN + 4000 - 3 * 1204);
}

#[test]
fn reassemble_in_order() {
    let data = message(4000);
    let mut r = reassembler();
    let sections = fragment(1, &data, 1204, 65536).unwrap();
    for s in &sections[..3] {
        assert_eq!(r.insert(s, T0), Ok(Reassembled::Pending));
    }
    assert_eq!(r.insert(&sections[3], T0), Ok(Reassembled::Complete(data)));
    assert_eq!(r.pending_messages(), 0);
    assert_eq!(r.reserved_bytes(), 0);
    assert_eq!(r.counters().completed, 1);
}

#[test]
fn reassemble_out_of_order_interleaved() {
    let a = message(3000);
    let b: Vec<u8> = message(2500).into_iter().map(|x| x ^ 0x5a).collect();
    let sa = fragment(10, &a, 1000, 65536).unwrap();
    let sb = fragment(11, &b, 1000, 65536).unwrap();
    let mut r = reassembler();
    assert_eq!(r.insert(&sa[2], T0), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sb[1], T0), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sa[0], T0), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sb[2], T0), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sb[0], T0), Ok(Reassembled::Complete(b)));
    assert_eq!(r.insert(&sa[1], T0), Ok(Reassembled::Complete(a)));
}

#[test]
fn duplicate_fragment_idempotent() {
    let data = message(2000);
    let sections = fragment(2, &data, 1204, 65536).unwrap();
    let mut r = reassembler();
    assert_eq!(r.insert(&sections[0], T0), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sections[0], T0), Ok(Reassembled::Duplicate));
    assert_eq!(r.insert(&sections[1], T0), Ok(Reassembled::Complete(data)));
    // Late copies after delivery are not delivered again.
    assert_eq!(r.insert(&sections[1], T0), Ok(Reassembled::Duplicate));
    assert_eq!(r.insert(&sections[0], T0), Ok(Reassembled::Duplicate));
    assert_eq!(r.counters().duplicates, 3);
    assert_eq!(r.counters().completed, 1);
    assert_eq!(r.pending_messages(), 0);
}

fn expect_rejected(r: &mut Reassembler, bytes: &[u8], expected: MetadataError) {
    let before = r.counters().rejected();
    assert_eq!(r.insert(bytes, T0), Err(expected));
    assert_eq!(r.counters().rejected(), before + 1, "rejection of {expected:?} not counted");
}

#[test]
fn reject_truncated() {
    let mut r = reassembler();
    expect_rejected(&mut r, &[0x53, 0x56, 1], MetadataError::Truncated { len: 3 });
    assert_eq!(r.counters().truncated, 1);
}

#[test]
fn reject_bad_magic() {
    let mut bytes = section(header(1, 0, 1, 3, 0, 3), b"abc");
    bytes[0] = 0x00;
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::BadMagic { magic: 0x0056 });
    assert_eq!(r.counters().bad_magic, 1);
}

#[test]
fn reject_unsupported_version() {
    let mut bytes = section(header(1, 0, 1, 3, 0, 3), b"abc");
    bytes[2] = 2;
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::UnsupportedVersion { version: 2 });
    assert_eq!(r.counters().unsupported_version, 1);
}

#[test]
fn reject_reserved_not_zero() {
    let mut r = reassembler();
    for offset in [3usize, 22, 23] {
        let mut bytes = section(header(1, 0, 1, 3, 0, 3), b"abc");
        bytes[offset] = 1;
        expect_rejected(&mut r, &bytes, MetadataError::ReservedNotZero);
    }
    assert_eq!(r.counters().reserved_not_zero, 3);
}

#[test]
fn reject_fragment_length_mismatch() {
    let bytes = section(header(1, 0, 1, 10, 0, 4), b"abc");
    let mut r = reassembler();
    expect_rejected(
        &mut r,
        &bytes,
        MetadataError::FragmentLengthMismatch { declared: 4, actual: 3 },
    );
    assert_eq!(r.counters().fragment_length_mismatch, 1);
}

#[test]
fn reject_zero_fragment_count() {
    let bytes = section(header(1, 0, 0, 3, 0, 3), b"abc");
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::ZeroFragmentCount);
    assert_eq!(r.counters().zero_fragment_count, 1);
}

#[test]
fn reject_index_out_of_range() {
    let bytes = section(header(1, 2, 2, 6, 3, 3), b"abc");
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::IndexOutOfRange { index: 2, count: 2 });
    assert_eq!(r.counters().index_out_of_range, 1);
}

#[test]
fn reject_empty_message() {
    let bytes = section(header(1, 0, 1, 0, 0, 3), b"abc");
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::EmptyMessage);
    assert_eq!(r.counters().empty_message, 1);
    assert_eq!(fragment(1, &[], 1000, 65536), Err(MetadataError::EmptyMessage));
}

#[test]
fn reject_empty_fragment() {
    let bytes = section(header(1, 0, 1, 3, 0, 0), b"");
    let mut r = reassembler();
    expect_rejected(&mut r, &bytes, MetadataError::EmptyFragment);
    assert_eq!(r.counters().empty_fragment, 1);
}

#[test]
fn reject_fragment_out_of_bounds() {
    let bytes = section(header(1, 0, 1, 4, 2, 3), b"abc");
    let mut r = reassembler();
    expect_rejected(
        &mut r,
        &bytes,
        MetadataError::FragmentOutOfBounds { offset: 2, len: 3, total: 4 },
    );
    // An offset near the top of the 32-bit range must not wrap.
    let bytes = section(header(1, 0, 1, 10, u32::MAX, 3), b"abc");
    expect_rejected(
        &mut r,
        &bytes,
        MetadataError::FragmentOutOfBounds { offset: u32::MAX, len: 3, total: 10 },
    );
    assert_eq!(r.counters().fragment_out_of_bounds, 2);
}

#[test]
fn reject_message_too_large() {
    let limits = ReassemblyLimits { max_message_len: 1000, ..ReassemblyLimits::default() };
    let mut r = Reassembler::new(limits);
    let bytes = section(header(1, 0, 2, 1001, 0, 3), b"abc");
    expect_rejected(&mut r, &bytes, MetadataError::MessageTooLarge { len: 1001, max: 1000 });
    assert_eq!(r.counters().message_too_large, 1);
    assert_eq!(r.reserved_bytes(), 0, "nothing reserved for a rejected message");
    assert_eq!(
        fragment(1, &message(1001), 500, 1000),
        Err(MetadataError::MessageTooLarge { len: 1001, max: 1000 })
    );
}

#[test]
fn reject_too_many_fragments() {
    let bytes = section(header(1, 0, MAX_FRAGMENTS + 1, 3000, 0, 3), b"abc");
    let mut r = reassembler();
    expect_rejected(
        &mut r,
        &bytes,
        MetadataError::TooManyFragments { count: MAX_FRAGMENTS + 1, max: MAX_FRAGMENTS },
    );
    assert_eq!(r.counters().too_many_fragments, 1);
    assert!(matches!(
        fragment(1, &message(20_000), 100, 65536),
        Err(MetadataError::TooManyFragments { .. })
    ));
}

#[test]
fn reject_too_many_messages() {
    let limits = ReassemblyLimits { max_messages: 2, ..ReassemblyLimits::default() };
    let mut r = Reassembler::new(limits);
    for id in 0..2 {
        let bytes = section(header(id, 0, 2, 6, 0, 3), b"abc");
        assert_eq!(r.insert(&bytes, T0), Ok(Reassembled::Pending));
    }
    let bytes = section(header(7, 0, 2, 6, 0, 3), b"abc");
    expect_rejected(&mut r, &bytes, MetadataError::TooManyMessages { max: 2 });
    assert_eq!(r.counters().too_many_messages, 1);
    assert_eq!(r.pending_messages(), 2);
}

#[test]
fn reject_memory_limit() {
    let limits = ReassemblyLimits { max_total_bytes: 5000, ..ReassemblyLimits::default() };
    let mut r = Reassembler::new(limits);
    let first = section(header(1, 0, 4, 4000, 0, 3), b"abc");
    assert_eq!(r.insert(&first, T0), Ok(Reassembled::Pending));
    assert_eq!(r.reserved_bytes(), 4000);
    let second = section(header(2, 0, 2, 2000, 0, 3), b"abc");
    expect_rejected(&mut r, &second, MetadataError::MemoryLimit { needed: 6000, limit: 5000 });
    assert_eq!(r.counters().memory_limit, 1);
    assert_eq!(r.reserved_bytes(), 4000);
}

#[test]
fn reject_inconsistent_header() {
    let mut r = reassembler();
    let first = section(header(1, 0, 2, 6, 0, 3), b"abc");
    assert_eq!(r.insert(&first, T0), Ok(Reassembled::Pending));
    // Same message id, a different total length.
    let other_total = section(header(1, 1, 2, 7, 3, 3), b"def");
    expect_rejected(&mut r, &other_total, MetadataError::InconsistentHeader { message_id: 1 });
    // Same message id, a different fragment count.
    let other_count = section(header(1, 1, 3, 6, 3, 3), b"def");
    expect_rejected(&mut r, &other_count, MetadataError::InconsistentHeader { message_id: 1 });
    assert_eq!(r.counters().inconsistent_header, 2);
}

#[test]
fn reject_overlap() {
    let mut r = reassembler();
    let first = section(header(1, 0, 3, 9, 0, 4), b"abcd");
    assert_eq!(r.insert(&first, T0), Ok(Reassembled::Pending));
    // Fragment 1 claims bytes 3..6, overlapping fragment 0's 0..4.
    let overlapping = section(header(1, 1, 3, 9, 3, 3), b"xyz");
    expect_rejected(&mut r, &overlapping, MetadataError::Overlap { message_id: 1, index: 1 });
    // Fragment 0 again with different bytes is no duplicate.
    let conflicting = section(header(1, 0, 3, 9, 0, 4), b"abcX");
    expect_rejected(&mut r, &conflicting, MetadataError::Overlap { message_id: 1, index: 0 });
    assert_eq!(r.counters().overlap, 2);
    assert_eq!(r.counters().duplicates, 0);
}

#[test]
fn reject_coverage_mismatch() {
    let mut r = reassembler();
    // Two fragments of a 10-byte message that leave bytes 3..5 uncovered.
    let a = section(header(1, 0, 2, 10, 0, 3), b"abc");
    let b = section(header(1, 1, 2, 10, 5, 5), b"fghij");
    assert_eq!(r.insert(&a, T0), Ok(Reassembled::Pending));
    expect_rejected(&mut r, &b, MetadataError::CoverageMismatch { message_id: 1 });
    assert_eq!(r.counters().coverage_mismatch, 1);
    assert_eq!(r.pending_messages(), 0);
    assert_eq!(r.reserved_bytes(), 0);
}

#[test]
fn reject_mtu_too_small() {
    assert_eq!(max_fragment_data(100, false), Err(MetadataError::PathMtuTooSmall { mtu: 100 }));
}

#[test]
fn partial_times_out() {
    let limits =
        ReassemblyLimits { timeout: Duration::from_secs(10), ..ReassemblyLimits::default() };
    let mut r = Reassembler::new(limits);
    let data = message(3000);
    let sections = fragment(5, &data, 1204, 65536).unwrap();
    assert_eq!(r.insert(&sections[0], T0), Ok(Reassembled::Pending));
    assert_eq!(r.expire(at_ms(9_999)), 0);
    assert_eq!(r.expire(at_ms(10_000)), 1);
    assert_eq!(r.counters().timed_out, 1);
    assert_eq!(r.reserved_bytes(), 0);
    // The remaining fragments now start a fresh message that cannot complete in time.
    assert_eq!(r.insert(&sections[1], at_ms(10_001)), Ok(Reassembled::Pending));
    assert_eq!(r.insert(&sections[2], at_ms(25_000)), Ok(Reassembled::Pending));
    assert_eq!(r.counters().timed_out, 2);
    assert_eq!(r.counters().completed, 0);
}

#[test]
fn errors_name_values() {
    let text = MetadataError::MessageTooLarge { len: 70_000, max: 65_536 }.to_string();
    assert!(text.contains("70000"), "{text}");
    assert!(text.contains("65536"), "{text}");
    let text = MetadataError::BadMagic { magic: 0x1234 }.to_string();
    assert!(text.contains("0x1234"), "{text}");
    assert!(text.contains("0x5356"), "{text}");
}

proptest! {
    #[test]
    fn arbitrary_sections_never_panic(
        sections in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..80), 1..20),
    ) {
        let mut r = reassembler();
        for (i, s) in sections.iter().enumerate() {
            let _ = r.insert(s, at_ms(i as u64 * 100));
            prop_assert!(r.reserved_bytes() <= ReassemblyLimits::default().max_total_bytes);
        }
    }

    #[test]
    fn any_order_reassembles(
        len in 1usize..9000,
        chunk in 80usize..1300,
        seed in any::<u64>(),
        duplicate in any::<bool>(),
    ) {
        let data: Vec<u8> = (0..len).map(|i| (i as u64 ^ seed) as u8).collect();
        let mut sections = fragment(seed as u32, &data, chunk, 65536).unwrap();
        // A seeded shuffle, and optionally a repeated fragment.
        let n = sections.len();
        for i in (1..n).rev() {
            let j = ((seed >> (i % 48)) as usize ^ i) % (i + 1);
            sections.swap(i, j);
        }
        if duplicate {
            let copy = sections[0].clone();
            sections.insert(n / 2, copy);
        }
        let mut r = reassembler();
        let mut complete = None;
        for s in &sections {
            match r.insert(s, T0).unwrap() {
                Reassembled::Complete(bytes) => complete = Some(bytes),
                Reassembled::Pending | Reassembled::Duplicate => {}
            }
        }
        prop_assert_eq!(complete, Some(data));
        prop_assert_eq!(r.reserved_bytes(), 0);
    }
}
