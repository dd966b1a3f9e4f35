//! Control packet codec: fixtures both ways, one test per reception check, and arbitrary
//! bytes never panicking.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "helpers outside #[test] functions fail the test on a broken expectation"
)]

use std::time::Duration;

use proptest::prelude::*;
use svr_control::bfd::packet::{
    BufferTooSmall, CONTROL_LEN, ControlPacket, ControlView, Diagnostic, Flags, ParseError, State,
};

/// A Down packet as FRR 8.4 bfdd sends before it has heard from its peer: discriminator
/// 0x8d71e300, 1000 ms transmit and receive, 50 ms echo.
const FRR_DOWN: [u8; 24] = [
    0x20, 0x40, 0x03, 0x18, // version 1, diag 0, state Down, mult 3, length 24
    0x8d, 0x71, 0xe3, 0x00, // my discriminator
    0x00, 0x00, 0x00, 0x00, // your discriminator
    0x00, 0x0f, 0x42, 0x40, // desired min tx 1 000 000 us
    0x00, 0x0f, 0x42, 0x40, // required min rx 1 000 000 us
    0x00, 0x00, 0xc3, 0x50, // required min echo rx 50 000 us
];

/// An Up packet with the Final bit set in reply to a Poll, 300 ms timers, diag 3.
const UP_FINAL: [u8; 24] = [
    0x23, 0xd0, 0x05, 0x18, // version 1, diag 3, state Up, F, mult 5, length 24
    0x00, 0x00, 0x12, 0x34, // my discriminator
    0xde, 0xad, 0xbe, 0xef, // your discriminator
    0x00, 0x04, 0x93, 0xe0, // desired min tx 300 000 us
    0x00, 0x04, 0x93, 0xe0, // required min rx 300 000 us
    0x00, 0x00, 0x00, 0x00, // no echo
];

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn valid() -> [u8; 24] {
    UP_FINAL
}

#[test]
fn parse_frr_down() {
    let (packet, length) = ControlPacket::parse(&FRR_DOWN).unwrap();
    assert_eq!(length, 24);
    assert_eq!(packet.state, State::Down);
    assert_eq!(packet.diagnostic, Diagnostic::None);
    assert_eq!(packet.flags, Flags::default());
    assert_eq!(packet.detect_mult, 3);
    assert_eq!(packet.my_discriminator, 0x8d71_e300);
    assert_eq!(packet.your_discriminator, 0);
    assert_eq!(packet.desired_min_tx, ms(1000));
    assert_eq!(packet.required_min_rx, ms(1000));
    assert_eq!(packet.required_min_echo_rx, ms(50));
}

#[test]
fn emit_frr_down() {
    let packet = ControlPacket {
        diagnostic: Diagnostic::None,
        state: State::Down,
        flags: Flags::default(),
        detect_mult: 3,
        my_discriminator: 0x8d71_e300,
        your_discriminator: 0,
        desired_min_tx: ms(1000),
        required_min_rx: ms(1000),
        required_min_echo_rx: ms(50),
    };
    assert_eq!(packet.to_bytes(), FRR_DOWN);
}

#[test]
fn parse_up_final() {
    let (packet, _) = ControlPacket::parse(&UP_FINAL).unwrap();
    assert_eq!(packet.state, State::Up);
    assert_eq!(packet.diagnostic, Diagnostic::NeighborSignaledSessionDown);
    assert!(packet.flags.final_);
    assert!(!packet.flags.poll);
    assert_eq!(packet.detect_mult, 5);
    assert_eq!(packet.my_discriminator, 0x1234);
    assert_eq!(packet.your_discriminator, 0xdead_beef);
    assert_eq!(packet.desired_min_tx, ms(300));
    assert_eq!(packet.required_min_echo_rx, Duration::ZERO);
    assert_eq!(packet.to_bytes(), UP_FINAL);
}

#[test]
fn emit_into_junk_buffer() {
    let (packet, _) = ControlPacket::parse(&UP_FINAL).unwrap();
    let mut buffer = [0xa5u8; 40];
    assert_eq!(packet.emit(&mut buffer), Ok(24));
    assert_eq!(buffer[..24], UP_FINAL);
    assert!(buffer[24..].iter().all(|b| *b == 0xa5), "emit wrote past the packet");
}

#[test]
fn emit_short_buffer() {
    let (packet, _) = ControlPacket::parse(&UP_FINAL).unwrap();
    let mut buffer = [0u8; 23];
    assert_eq!(packet.emit(&mut buffer), Err(BufferTooSmall { needed: 24, available: 23 }));
}

#[test]
fn flags_each_bit() {
    let cases = [
        (0x20u8, Flags { poll: true, ..Flags::default() }),
        (0x10, Flags { final_: true, ..Flags::default() }),
        (0x08, Flags { control_plane_independent: true, ..Flags::default() }),
        (0x02, Flags { demand: true, ..Flags::default() }),
    ];
    for (bit, flags) in cases {
        let mut bytes = valid();
        bytes[1] = 0xc0 | bit;
        let (packet, _) = ControlPacket::parse(&bytes).unwrap();
        assert_eq!(packet.flags, flags, "bit {bit:#04x}");
        assert_eq!(packet.to_bytes()[1], 0xc0 | bit, "bit {bit:#04x}");
    }
}

#[test]
fn every_state_and_diagnostic() {
    for bits in 0..4u8 {
        let state = State::from_bits(bits);
        assert_eq!(state.to_bits(), bits);
    }
    for bits in 0..32u8 {
        let diag = Diagnostic::from_bits(bits);
        assert_eq!(diag.to_bits(), bits);
    }
    assert_eq!(Diagnostic::from_bits(1), Diagnostic::ControlDetectionTimeExpired);
    assert_eq!(Diagnostic::from_bits(7), Diagnostic::AdministrativelyDown);
    assert_eq!(Diagnostic::from_bits(9), Diagnostic::Unassigned(9));
}

#[test]
fn trailing_bytes_beyond_length() {
    let mut datagram = valid().to_vec();
    datagram.extend_from_slice(b"trailer");
    let (packet, length) = ControlPacket::parse(&datagram).unwrap();
    assert_eq!(length, 24);
    assert_eq!(packet.to_bytes(), UP_FINAL);
}

#[test]
fn view_accessors() {
    let view = ControlView::new_checked(&FRR_DOWN[..]).unwrap();
    assert_eq!(view.version(), 1);
    assert_eq!(view.length(), 24);
    assert_eq!(view.my_discriminator(), 0x8d71_e300);
    assert_eq!(view.desired_min_tx_us(), 1_000_000);
    assert_eq!(view.required_min_echo_rx_us(), 50_000);
}

#[test]
fn reject_truncated() {
    assert_eq!(ControlPacket::parse(&valid()[..23]), Err(ParseError::Truncated { datagram: 23 }));
    assert_eq!(ControlPacket::parse(&[]), Err(ParseError::Truncated { datagram: 0 }));
}

#[test]
fn reject_bad_version() {
    let mut bytes = valid();
    bytes[0] = (2 << 5) | 3;
    assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::BadVersion { version: 2 }));
    bytes[0] = 3;
    assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::BadVersion { version: 0 }));
}

#[test]
fn reject_length_too_short() {
    let mut bytes = valid();
    bytes[3] = 23;
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(ParseError::LengthTooShort { length: 23, minimum: 24 })
    );
}

#[test]
fn reject_length_too_short_with_auth() {
    let mut datagram = valid().to_vec();
    datagram.extend_from_slice(&[1, 2]);
    datagram[1] |= 0x04;
    datagram[3] = 25;
    assert_eq!(
        ControlPacket::parse(&datagram),
        Err(ParseError::LengthTooShort { length: 25, minimum: 26 })
    );
}

#[test]
fn reject_length_exceeds_datagram() {
    let mut bytes = valid();
    bytes[3] = 30;
    assert_eq!(
        ControlPacket::parse(&bytes),
        Err(ParseError::LengthExceedsDatagram { length: 30, datagram: 24 })
    );
}

#[test]
fn reject_zero_detect_mult() {
    let mut bytes = valid();
    bytes[2] = 0;
    assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::ZeroDetectMult));
}

#[test]
fn reject_multipoint() {
    let mut bytes = valid();
    bytes[1] |= 0x01;
    assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::MultipointSet));
}

#[test]
fn reject_zero_my_discriminator() {
    let mut bytes = valid();
    bytes[4..8].fill(0);
    assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::ZeroMyDiscriminator));
}

#[test]
fn reject_zero_your_discriminator() {
    for (bits, state) in [(2u8, State::Init), (3, State::Up)] {
        let mut bytes = valid();
        bytes[1] = bits << 6;
        bytes[8..12].fill(0);
        assert_eq!(ControlPacket::parse(&bytes), Err(ParseError::ZeroYourDiscriminator { state }));
    }
    // Down and AdminDown may leave it zero.
    for bits in [0u8, 1] {
        let mut bytes = valid();
        bytes[1] = bits << 6;
        bytes[8..12].fill(0);
        assert!(ControlPacket::parse(&bytes).is_ok(), "state bits {bits}");
    }
}

#[test]
fn authentication_bit_parses() {
    // Whether authentication is in use is session state, so the codec only checks the
    // length minimum of the A bit and returns the section inside the Length field.
    let mut datagram = valid().to_vec();
    // A simple-password section: type 1, length 4, key id 1, one password byte.
    datagram.extend_from_slice(&[1, 4, 1, b'x']);
    datagram[1] |= 0x04;
    datagram[3] = 28;
    let (packet, length) = ControlPacket::parse(&datagram).unwrap();
    assert!(packet.flags.authentication_present);
    assert_eq!(length, 28);
    datagram[3] = 25;
    assert_eq!(
        ControlPacket::parse(&datagram),
        Err(ParseError::LengthTooShort { length: 25, minimum: 26 })
    );
}

#[test]
fn errors_name_values() {
    let text = ParseError::BadVersion { version: 2 }.to_string();
    assert!(text.contains('2'), "{text}");
    assert!(text.contains("expected 1"), "{text}");
    let text = ParseError::LengthExceedsDatagram { length: 30, datagram: 24 }.to_string();
    assert!(text.contains("30"), "{text}");
    assert!(text.contains("24"), "{text}");
}

#[test]
fn intervals_saturate_on_emit() {
    let (mut packet, _) = ControlPacket::parse(&UP_FINAL).unwrap();
    packet.desired_min_tx = Duration::from_secs(10_000);
    let bytes = packet.to_bytes();
    assert_eq!(bytes[12..16], [0xff; 4]);
    assert_eq!(bytes.len(), CONTROL_LEN);
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..96)) {
        let _ = ControlPacket::parse(&bytes);
    }

    #[test]
    fn round_trip(
        diag in 0u8..32,
        state in 0u8..4,
        poll in any::<bool>(),
        demand in any::<bool>(),
        cpi in any::<bool>(),
        mult in 1u8..,
        my in 1u32..,
        your in 1u32..,
        tx in any::<u32>(),
        rx in any::<u32>(),
        echo in any::<u32>(),
    ) {
        let packet = ControlPacket {
            diagnostic: Diagnostic::from_bits(diag),
            state: State::from_bits(state),
            flags: Flags { poll, demand, control_plane_independent: cpi, ..Flags::default() },
            detect_mult: mult,
            my_discriminator: my,
            your_discriminator: your,
            desired_min_tx: Duration::from_micros(u64::from(tx)),
            required_min_rx: Duration::from_micros(u64::from(rx)),
            required_min_echo_rx: Duration::from_micros(u64::from(echo)),
        };
        let bytes = packet.to_bytes();
        let (parsed, length) = ControlPacket::parse(&bytes).unwrap();
        prop_assert_eq!(parsed, packet);
        prop_assert_eq!(length, 24);
    }
}

#[test]
fn corpus_packets_parse() {
    // The seed corpus contains packets captured from FRR 8.4 bfdd and from this
    // implementation. Each must stay a valid packet that emits back to its first 24 bytes.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/bfd");
    let mut seen = 0;
    for entry in std::fs::read_dir(&dir).unwrap() {
        let path = entry.unwrap().path();
        let bytes = std::fs::read(&path).unwrap();
        let (packet, length) = ControlPacket::parse(&bytes)
            .unwrap_or_else(|e| panic!("{} does not parse: {e}", path.display()));
        assert_eq!(length, CONTROL_LEN, "{}", path.display());
        assert_eq!(packet.to_bytes()[..], bytes[..CONTROL_LEN], "{}", path.display());
        seen += 1;
    }
    assert!(seen >= 6, "only {seen} corpus files in {}", dir.display());
}
