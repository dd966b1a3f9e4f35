//! Message codec and sealing tests: round trips of every message type, one test per
//! decode error, and the layered encrypt-then-MAC of sealed bodies.

// Test helpers outside #[test] functions unwrap too; a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use proptest::prelude::*;
use rand::SeedableRng;
use rand::rngs::StdRng;
use svr_control::kex::error::{DecodeError, SealError};
use svr_control::kex::keys::{
    BUNDLE_LEN, MetadataKeyBundle, PeerKey, PeerKeyKind, PeerKeySet, TranscriptSide,
    canonical_salts, transcript_hash,
};
use svr_control::kex::msg::{self, Body, HEADER_LEN, Header, MessageKind};
use svr_control::kex::{DhGroup, HmacAlgorithm, KexAlgorithm, MlKemLevel};

fn header(kind: MessageKind) -> Header {
    Header { kind, sender_boot: 0x0102030405060708, receiver_boot: 9, sequence: 77, exchange: 3 }
}

fn encode(body: &Body) -> Vec<u8> {
    msg::append_signature(msg::encode_unsigned(&header(body.kind()), body), &[0xaa; 64])
}

fn bodies() -> Vec<Body> {
    let hybrid = KexAlgorithm::Hybrid(DhGroup::Modp2048, MlKemLevel::MlKem768);
    vec![
        Body::Certificate { certificate: vec![1, 2, 3] },
        Body::CertificateAck { fingerprint: [5; 48] },
        Body::Salt { salt: 0xdeadbeef, algorithm: hybrid },
        Body::SaltAck { salt: 1, algorithm: KexAlgorithm::MlKem(MlKemLevel::MlKem512) },
        Body::KeyExchange {
            algorithm: hybrid,
            dh_public: vec![9; 256],
            encapsulation_key: vec![8; 1184],
        },
        Body::Encapsulation { ciphertext: vec![7; 1088] },
        Body::MetadataKey { sealed: vec![6; 112] },
        Body::MetadataKeyAck { sealed: vec![5; 80] },
        Body::RekeyRequest,
    ]
}

#[test]
fn codec_round_trip_every_type() {
    for body in bodies() {
        let bytes = encode(&body);
        let m = msg::decode(&bytes).unwrap();
        assert_eq!(m.header, header(body.kind()));
        assert_eq!(m.body, body);
        assert_eq!(m.signature, &[0xaa; 64]);
        assert_eq!(m.signed, &bytes[..bytes.len() - 66]);
    }
}

#[test]
fn codec_header_layout() {
    let bytes = encode(&Body::RekeyRequest);
    assert_eq!(bytes.len(), HEADER_LEN + 2 + 64);
    assert_eq!(bytes[0], 1, "version");
    assert_eq!(bytes[1], 9, "type");
    assert_eq!(&bytes[2..4], &[0, 0], "body length");
    assert_eq!(&bytes[4..12], &[1, 2, 3, 4, 5, 6, 7, 8], "sender boot");
    assert_eq!(&bytes[12..20], &9u64.to_be_bytes(), "receiver boot");
    assert_eq!(&bytes[20..28], &77u64.to_be_bytes(), "sequence");
    assert_eq!(&bytes[28..32], &3u32.to_be_bytes(), "exchange");
    assert_eq!(&bytes[32..34], &64u16.to_be_bytes(), "signature length");
}

#[test]
fn decode_truncated() {
    let bytes = encode(&Body::Salt { salt: 1, algorithm: KexAlgorithm::default() });
    for len in [0, 1, HEADER_LEN - 1, HEADER_LEN + 3, bytes.len() - 1] {
        assert!(
            matches!(msg::decode(&bytes[..len]), Err(DecodeError::Truncated { .. })),
            "length {len}"
        );
    }
}

#[test]
fn decode_unknown_version() {
    let mut bytes = encode(&Body::RekeyRequest);
    bytes[0] = 2;
    assert_eq!(msg::decode(&bytes).err(), Some(DecodeError::UnknownVersion { version: 2 }));
}

#[test]
fn decode_unknown_type() {
    let mut bytes = encode(&Body::RekeyRequest);
    bytes[1] = 42;
    assert_eq!(msg::decode(&bytes).err(), Some(DecodeError::UnknownType { kind: 42 }));
}

#[test]
fn decode_unknown_algorithm() {
    let mut bytes = encode(&Body::Salt { salt: 1, algorithm: KexAlgorithm::default() });
    // Algorithm code follows the 4-byte salt: kind 1, dh bits 2048 -> 3072.
    bytes[HEADER_LEN + 5..HEADER_LEN + 7].copy_from_slice(&3072u16.to_be_bytes());
    assert_eq!(
        msg::decode(&bytes).err(),
        Some(DecodeError::UnknownAlgorithm { kind: 1, dh_bits: 3072, ml_kem: 0 })
    );
    for code in
        [[0, 0, 0, 0, 0], [1, 8, 0, 3, 0], [2, 8, 0, 3, 0], [3, 0, 0, 3, 0], [4, 8, 0, 3, 0]]
    {
        assert!(KexAlgorithm::from_code(code).is_err(), "{code:?}");
    }
}

#[test]
fn decode_field_too_long() {
    let big = Body::Certificate { certificate: vec![0; msg::MAX_CERTIFICATE + 1] };
    assert!(matches!(
        msg::decode(&encode(&big)),
        Err(DecodeError::FieldTooLong { field: "certificate", .. })
    ));
    let unsigned = msg::encode_unsigned(&header(MessageKind::RekeyRequest), &Body::RekeyRequest);
    let bytes = msg::append_signature(unsigned, &vec![0; msg::MAX_SIGNATURE + 1]);
    assert!(matches!(
        msg::decode(&bytes),
        Err(DecodeError::FieldTooLong { field: "signature", .. })
    ));
}

#[test]
fn decode_trailing_bytes() {
    let mut bytes = encode(&Body::RekeyRequest);
    bytes.push(0);
    assert_eq!(msg::decode(&bytes).err(), Some(DecodeError::TrailingBytes { count: 1 }));
    // Bytes after the last field inside the body.
    let mut bytes = encode(&Body::CertificateAck { fingerprint: [0; 48] });
    bytes[3] = 49;
    bytes.insert(HEADER_LEN + 48, 0);
    assert_eq!(msg::decode(&bytes).err(), Some(DecodeError::TrailingBytes { count: 1 }));
}

#[test]
fn bundle_round_trip_and_errors() {
    let mut rng = StdRng::seed_from_u64(1);
    let b = MetadataKeyBundle::generate(7, HmacAlgorithm::Sha512, &mut rng);
    let enc = b.encode();
    assert_eq!(enc.len(), BUNDLE_LEN);
    assert_eq!(MetadataKeyBundle::decode(&enc).unwrap(), b);
    let mut bad = enc.to_vec();
    bad[4] = 3;
    assert_eq!(MetadataKeyBundle::decode(&bad).err(), Some(DecodeError::UnknownHmac { code: 3 }));
    assert!(matches!(MetadataKeyBundle::decode(&enc[..10]), Err(DecodeError::Truncated { .. })));
    let mut long = enc.to_vec();
    long.push(0);
    assert_eq!(
        MetadataKeyBundle::decode(&long).err(),
        Some(DecodeError::TrailingBytes { count: 1 })
    );
    assert!(!format!("{b:?}").contains(&format!("{:?}", b.secret())));
}

fn key(kind: PeerKeyKind, secret: u8) -> PeerKey {
    PeerKey::derive(kind, &[secret; 32], &[1; 8], &[2; 48])
}

#[test]
fn seal_round_trip_and_tamper() {
    let mut rng = StdRng::seed_from_u64(2);
    let k = key(PeerKeyKind::Dh, 1);
    let sealed = k.seal(b"aad", b"hello metadata", &mut rng);
    assert_eq!(k.open(b"aad", &sealed).unwrap().as_slice(), b"hello metadata");
    assert_eq!(k.open(b"aae", &sealed).err(), Some(SealError::BadTag));
    for i in 0..sealed.len() {
        let mut t = sealed.clone();
        t[i] ^= 0x80;
        assert_eq!(k.open(b"aad", &t).err(), Some(SealError::BadTag), "byte {i}");
    }
    assert_eq!(key(PeerKeyKind::Dh, 2).open(b"aad", &sealed).err(), Some(SealError::BadTag));
    // Same plaintext, fresh IV: different ciphertext.
    assert_ne!(k.seal(b"aad", b"hello metadata", &mut rng), sealed);
}

#[test]
fn seal_bad_length() {
    let k = key(PeerKeyKind::Dh, 1);
    for len in [0, 16 + 48, 16 + 15 + 48, 16 + 17 + 48] {
        assert_eq!(k.open(b"", &vec![0; len]).err(), Some(SealError::BadLength { actual: len }));
    }
}

#[test]
fn hybrid_layers_dh_inside_mlkem_outside() {
    let mut rng = StdRng::seed_from_u64(3);
    let set = PeerKeySet::new(vec![key(PeerKeyKind::Dh, 1), key(PeerKeyKind::MlKem, 2)]);
    let sealed = set.seal(b"h", b"bundle", &mut rng);
    assert_eq!(set.open(b"h", &sealed).unwrap().as_slice(), b"bundle");

    // The outer layer opens with the ML-KEM key alone, and what it yields opens with the
    // DH key: encrypted first under DH, then under ML-KEM.
    let inner = key(PeerKeyKind::MlKem, 2).open(b"h", &sealed).unwrap();
    assert_eq!(key(PeerKeyKind::Dh, 1).open(b"h", &inner).unwrap().as_slice(), b"bundle");
    assert_eq!(key(PeerKeyKind::Dh, 1).open(b"h", &sealed).err(), Some(SealError::BadTag));
    let swapped = PeerKeySet::new(vec![key(PeerKeyKind::MlKem, 2), key(PeerKeyKind::Dh, 1)]);
    assert!(swapped.open(b"h", &sealed).is_err());
}

#[test]
fn peer_key_labels_separate_kinds() {
    let mut rng = StdRng::seed_from_u64(4);
    let dh = key(PeerKeyKind::Dh, 1);
    let kem = key(PeerKeyKind::MlKem, 1);
    let sealed = dh.seal(b"", b"x", &mut rng);
    assert_eq!(kem.open(b"", &sealed).err(), Some(SealError::BadTag));
}

#[test]
fn salts_and_transcript_agree_on_both_sides() {
    assert_eq!(canonical_salts("a", 1, "b", 2), canonical_salts("b", 2, "a", 1));
    assert_eq!(canonical_salts("a", 1, "b", 2), [0, 0, 0, 1, 0, 0, 0, 2]);
    let fa = [1u8; 48];
    let fb = [2u8; 48];
    let a = TranscriptSide { name: "a", certificate_fingerprint: &fa, salt: 1, dh_public: &[3] };
    let b = TranscriptSide { name: "b", certificate_fingerprint: &fb, salt: 2, dh_public: &[4] };
    let code = KexAlgorithm::default().code();
    let h1 = transcript_hash(1, code, a, b, b"ek", b"ct");
    assert_eq!(h1, transcript_hash(1, code, b, a, b"ek", b"ct"));
    assert_ne!(h1, transcript_hash(2, code, a, b, b"ek", b"ct"));
    assert_ne!(h1, transcript_hash(1, code, a, b, b"ek", b"cu"));
    let a2 = TranscriptSide { salt: 9, ..a };
    assert_ne!(h1, transcript_hash(1, code, a2, b, b"ek", b"ct"));
}

fn algorithm() -> impl Strategy<Value = KexAlgorithm> {
    let g = prop_oneof![Just(DhGroup::Modp1024), Just(DhGroup::Modp2048), Just(DhGroup::Modp4096)];
    let l = prop_oneof![
        Just(MlKemLevel::MlKem512),
        Just(MlKemLevel::MlKem768),
        Just(MlKemLevel::MlKem1024)
    ];
    prop_oneof![
        g.clone().prop_map(KexAlgorithm::DiffieHellman),
        l.clone().prop_map(KexAlgorithm::MlKem),
        (g, l).prop_map(|(g, l)| KexAlgorithm::Hybrid(g, l)),
    ]
}

fn body() -> impl Strategy<Value = Body> {
    let bytes = |max| proptest::collection::vec(any::<u8>(), 0..max);
    prop_oneof![
        bytes(300).prop_map(|certificate| Body::Certificate { certificate }),
        any::<[u8; 32]>().prop_map(|f| {
            let mut fingerprint = [0u8; 48];
            fingerprint[..32].copy_from_slice(&f);
            Body::CertificateAck { fingerprint }
        }),
        (any::<u32>(), algorithm()).prop_map(|(salt, algorithm)| Body::Salt { salt, algorithm }),
        (any::<u32>(), algorithm()).prop_map(|(salt, algorithm)| Body::SaltAck { salt, algorithm }),
        (algorithm(), bytes(512), bytes(1568)).prop_map(
            |(algorithm, dh_public, encapsulation_key)| {
                Body::KeyExchange { algorithm, dh_public, encapsulation_key }
            }
        ),
        bytes(1568).prop_map(|ciphertext| Body::Encapsulation { ciphertext }),
        bytes(1024).prop_map(|sealed| Body::MetadataKey { sealed }),
        bytes(1024).prop_map(|sealed| Body::MetadataKeyAck { sealed }),
        Just(Body::RekeyRequest),
    ]
}

proptest! {
    #[test]
    fn codec_round_trip_prop(b in body(), seq in any::<u64>(), ex in any::<u32>(), sig in proptest::collection::vec(any::<u8>(), 0..200)) {
        let h = Header { kind: b.kind(), sender_boot: 5, receiver_boot: 6, sequence: seq, exchange: ex };
        let bytes = msg::append_signature(msg::encode_unsigned(&h, &b), &sig);
        let m = msg::decode(&bytes).unwrap();
        prop_assert_eq!(m.header, h);
        prop_assert_eq!(m.body, b);
        prop_assert_eq!(m.signature, sig.as_slice());
    }

    #[test]
    fn decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..600)) {
        let _ = msg::decode(&bytes);
    }

    #[test]
    fn decode_mutated_never_panics(b in body(), pos in any::<usize>(), val in any::<u8>()) {
        let mut bytes = encode(&b);
        let i = pos % bytes.len();
        bytes[i] = val;
        let _ = msg::decode(&bytes);
    }
}
