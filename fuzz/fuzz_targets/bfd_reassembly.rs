//! Fuzz target for metadata reassembly. The input is a sequence of records, each a one-byte
//! clock advance in units of 100 ms, a two-byte big-endian length and that many bytes of
//! metadata section. Memory and message caps must hold after every record.
#![no_main]

use std::time::Duration;

use libfuzzer_sys::fuzz_target;
use svr_control::bfd::Instant;
use svr_control::bfd::metadata::{Reassembled, Reassembler, ReassemblyLimits};

fuzz_target!(|input: &[u8]| {
    // Tight limits so the fuzzer reaches every cap quickly.
    let limits = ReassemblyLimits {
        max_message_len: 8192,
        max_messages: 4,
        max_total_bytes: 16 * 1024,
        timeout: Duration::from_secs(1),
    };
    let mut reassembler = Reassembler::new(limits);
    let mut now = Instant::ZERO;
    let mut rest = input;
    while rest.len() >= 3 {
        now = now + Duration::from_millis(100 * u64::from(rest[0]));
        let len = usize::from(u16::from_be_bytes([rest[1], rest[2]])).min(rest.len() - 3);
        let section = &rest[3..3 + len];
        rest = &rest[3 + len..];

        if let Ok(Reassembled::Complete(message)) = reassembler.insert(section, now) {
            assert!(!message.is_empty());
            assert!(message.len() <= limits.max_message_len);
        }
        assert!(reassembler.reserved_bytes() <= limits.max_total_bytes);
        assert!(reassembler.pending_messages() <= limits.max_messages);
    }
});
