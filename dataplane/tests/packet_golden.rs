//! Hand-built SVR metadata packets checked both ways: parsing gives the expected values
//! and emitting those values gives the exact bytes. The same packets seed the fuzz
//! corpus in `fuzz/corpus/metadata/`.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use svr_dataplane::packet::{
    ControlReason, Detection, Fragment, HeaderTlv, HealthCheck, Ipv4Context, Ipv6Context, Metadata,
    MetadataRepr, ModifyRequest, MulticastAddresses, MulticastEgressList, MulticastGroup,
    PathMetrics, PayloadKeyBlob, PayloadSection, PayloadTlv, SessionContext, UnknownTlv, detect,
    emit_false_positive_marker, original_payload_offset, parse_payload_tlvs,
};
use uuid::Uuid;

/// A golden packet: the L4 payload bytes, the metadata they parse to, and the original
/// payload that follows the metadata.
struct Golden {
    name: &'static str,
    bytes: Vec<u8>,
    repr: MetadataRepr,
    original_payload: &'static [u8],
}

const JUNK: u8 = 0xA5;

fn v4(a: u8, b: u8, c: u8, d: u8) -> Ipv4Addr {
    Ipv4Addr::new(a, b, c, d)
}

fn lan_v6() -> Ipv6Addr {
    "fd00:200::10".parse().unwrap()
}

fn remote_v6() -> Ipv6Addr {
    "fd00:205::20".parse().unwrap()
}

fn session_uuid() -> Uuid {
    Uuid::from_bytes([
        0x6f, 0x1d, 0x3a, 0x2c, 0x4b, 0x5e, 0x4f, 0x60, 0x8a, 0x7b, 0x9c, 0x0d, 0x1e, 0x2f, 0x30,
        0x41,
    ])
}

fn forward_v4() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        // cookie
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 20; payload length 112
        0x10, 0x14, 0x00, 0x70,
        // header: Security ID (16), 4 bytes, 7
        0x00, 0x10, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
        // payload: forward context IPv4 (2), 13 bytes
        0x00, 0x02, 0x00, 0x0D,
        0x0A, 0xC8, 0x01, 0x0A, // 10.200.1.10
        0x0A, 0xC8, 0x05, 0x14, // 10.200.5.20
        0x9C, 0x40,             // 40000
        0x01, 0xBB,             // 443
        0x06,                   // TCP
        // session UUID (6), 16 bytes
        0x00, 0x06, 0x00, 0x10,
        0x6f, 0x1d, 0x3a, 0x2c, 0x4b, 0x5e, 0x4f, 0x60,
        0x8a, 0x7b, 0x9c, 0x0d, 0x1e, 0x2f, 0x30, 0x41,
        // tenant (7), "lan-users"
        0x00, 0x07, 0x00, 0x09, b'l', b'a', b'n', b'-', b'u', b's', b'e', b'r', b's',
        // service (10), "web"
        0x00, 0x0A, 0x00, 0x03, b'w', b'e', b'b',
        // source router (14), "r1"
        0x00, 0x0E, 0x00, 0x02, b'r', b'1',
        // peer pathway id (19), "wan-a"
        0x00, 0x13, 0x00, 0x05, b'w', b'a', b'n', b'-', b'a',
        // session encrypted (11), flag
        0x00, 0x0B, 0x00, 0x00,
        // payload key (46), 32 bytes
        0x00, 0x2E, 0x00, 0x20,
        0x00, 0x01, 0x02, 0x03, 0x04, 0x05, 0x06, 0x07,
        0x08, 0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x0E, 0x0F,
        0x10, 0x11, 0x12, 0x13, 0x14, 0x15, 0x16, 0x17,
        0x18, 0x19, 0x1A, 0x1B, 0x1C, 0x1D, 0x1E, 0x1F,
        // original payload
        b'p', b'i', b'n', b'g',
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::SecurityId(7)],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::ForwardContext(SessionContext::V4(Ipv4Context {
                source: v4(10, 200, 1, 10),
                destination: v4(10, 200, 5, 20),
                source_port: 40000,
                destination_port: 443,
                protocol: 6,
            })),
            PayloadTlv::SessionUuid(session_uuid()),
            PayloadTlv::Tenant("lan-users".into()),
            PayloadTlv::Service("web".into()),
            PayloadTlv::SourceRouter("r1".into()),
            PayloadTlv::PeerPathwayId("wan-a".into()),
            PayloadTlv::SessionEncrypted,
            PayloadTlv::PayloadKey(PayloadKeyBlob::new((0..32).collect()).unwrap()),
        ]),
    };
    Golden { name: "forward-v4", bytes, repr, original_payload: b"ping" }
}

fn forward_v6() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 46; payload length 57
        0x10, 0x2E, 0x00, 0x39,
        // header: fragment (1), 10 bytes
        0x00, 0x01, 0x00, 0x0A,
        0x00, 0x00, 0x12, 0x34, // extended id 0x1234
        0xAB, 0xCD,             // original id
        0x20, 0xB9,             // More Fragments, offset 185
        0x05, 0xDC,             // largest seen 1500
        // ICMP error location IPv6 (21), fd00:200::1
        0x00, 0x15, 0x00, 0x10,
        0xFD, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00,
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x01,
        // payload: forward context IPv6 (3), 37 bytes
        0x00, 0x03, 0x00, 0x25,
        0xFD, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // fd00:200::10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        0xFD, 0x00, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, // fd00:205::20
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
        0x9C, 0x41,             // 40001
        0x00, 0x35,             // 53
        0x11,                   // UDP
        // destination router (17), "r2"
        0x00, 0x11, 0x00, 0x02, b'r', b'2',
        // security policy (15), "secure"
        0x00, 0x0F, 0x00, 0x06, b's', b'e', b'c', b'u', b'r', b'e',
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![
            HeaderTlv::Fragment(Fragment {
                extended_id: 0x1234,
                original_id: 0xABCD,
                reserved_flag: false,
                dont_fragment: false,
                more_fragments: true,
                offset: 185,
                largest_seen: 1500,
            }),
            HeaderTlv::IcmpErrorLocation(IpAddr::V6("fd00:200::1".parse().unwrap())),
        ],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::ForwardContext(SessionContext::V6(Ipv6Context {
                source: lan_v6(),
                destination: remote_v6(),
                source_port: 40001,
                destination_port: 53,
                protocol: 17,
            })),
            PayloadTlv::DestinationRouter("r2".into()),
            PayloadTlv::SecurityPolicy("secure".into()),
        ]),
    };
    Golden { name: "forward-v6", bytes, repr, original_payload: b"" }
}

fn reverse_v4() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 20; payload length 33
        0x10, 0x14, 0x00, 0x21,
        // header: Security ID (16), 7
        0x00, 0x10, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
        // payload: reverse context IPv4 (4), 13 bytes
        0x00, 0x04, 0x00, 0x0D,
        0x0A, 0xC8, 0x05, 0x14, // 10.200.5.20
        0x0A, 0xC8, 0x01, 0x0A, // 10.200.1.10
        0x01, 0xBB,             // 443
        0x9C, 0x40,             // 40000
        0x06,                   // TCP
        // session count (13), 42
        0x00, 0x0D, 0x00, 0x08, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x2A,
        // disable forward metadata (18), flag
        0x00, 0x12, 0x00, 0x00,
        // original payload
        b'p', b'o', b'n', b'g',
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::SecurityId(7)],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::ReverseContext(SessionContext::V4(Ipv4Context {
                source: v4(10, 200, 5, 20),
                destination: v4(10, 200, 1, 10),
                source_port: 443,
                destination_port: 40000,
                protocol: 6,
            })),
            PayloadTlv::SessionCount(42),
            PayloadTlv::DisableForwardMetadata,
        ]),
    };
    Golden { name: "reverse-v4", bytes, repr, original_payload: b"pong" }
}

fn reverse_v6() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 12 (no header TLVs); payload length 45
        0x10, 0x0C, 0x00, 0x2D,
        // payload: reverse context IPv6 (5), 37 bytes
        0x00, 0x05, 0x00, 0x25,
        0xFD, 0x00, 0x02, 0x05, 0x00, 0x00, 0x00, 0x00, // fd00:205::20
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x20,
        0xFD, 0x00, 0x02, 0x00, 0x00, 0x00, 0x00, 0x00, // fd00:200::10
        0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x10,
        0x00, 0x35,             // 53
        0x9C, 0x41,             // 40001
        0x11,                   // UDP
        // disable forward metadata (18), flag
        0x00, 0x12, 0x00, 0x00,
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::ReverseContext(SessionContext::V6(Ipv6Context {
                source: remote_v6(),
                destination: lan_v6(),
                source_port: 53,
                destination_port: 40001,
                protocol: 17,
            })),
            PayloadTlv::DisableForwardMetadata,
        ]),
    };
    Golden { name: "reverse-v6", bytes, repr, original_payload: b"" }
}

fn unknown_in_place() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 32; payload length 24
        0x10, 0x20, 0x00, 0x18,
        // header: Security ID (16), 9
        0x00, 0x10, 0x00, 0x04, 0x00, 0x00, 0x00, 0x09,
        // unknown type 9, 3 bytes
        0x00, 0x09, 0x00, 0x03, 0xAA, 0xBB, 0xCC,
        // control message (24), keep-alive
        0x00, 0x18, 0x00, 0x01, 0x01,
        // payload: tenant (7), "lan"
        0x00, 0x07, 0x00, 0x03, b'l', b'a', b'n',
        // unknown type 300, 2 bytes
        0x01, 0x2C, 0x00, 0x02, 0xDE, 0xAD,
        // service (10), "dns"
        0x00, 0x0A, 0x00, 0x03, b'd', b'n', b's',
        // unknown type 23, empty
        0x00, 0x17, 0x00, 0x00,
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![
            HeaderTlv::SecurityId(9),
            HeaderTlv::Unknown(UnknownTlv { tlv_type: 9, value: vec![0xAA, 0xBB, 0xCC] }),
            HeaderTlv::ControlMessage(ControlReason::KeepAlive),
        ],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::Tenant("lan".into()),
            PayloadTlv::Unknown(UnknownTlv { tlv_type: 300, value: vec![0xDE, 0xAD] }),
            PayloadTlv::Service("dns".into()),
            PayloadTlv::Unknown(UnknownTlv { tlv_type: 23, value: vec![] }),
        ]),
    };
    Golden { name: "unknown-in-place", bytes, repr, original_payload: b"" }
}

fn session_control() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 58; payload length 28
        0x10, 0x3A, 0x00, 0x1C,
        // header: control message (24), health check: state exists
        0x00, 0x18, 0x00, 0x01, 0x08,
        // session health check (46), request
        0x00, 0x2E, 0x00, 0x01, 0x01,
        // path metrics (26), 10 bytes
        0x00, 0x1A, 0x00, 0x0A,
        0x30, 0x00, 0x00, 0x64, // tx color 3, 100 ms
        0x30, 0x00, 0x00, 0x82, // rx color 3, 130 ms
        0x80, 0x05,             // drop, previous rx color count 5
        // modify request (28): F, D, sequence 42
        0x00, 0x1C, 0x00, 0x02, 0xC0, 0x2A,
        // ICMP error location IPv4 (20), 10.200.9.1
        0x00, 0x14, 0x00, 0x04, 0x0A, 0xC8, 0x09, 0x01,
        // global interface id (8), 3
        0x00, 0x08, 0x00, 0x04, 0x00, 0x00, 0x00, 0x03,
        // payload: remaining session time (42), 300 s
        0x00, 0x2A, 0x00, 0x04, 0x00, 0x00, 0x01, 0x2C,
        // source NAT IPv4 (25), 10.200.1.1
        0x00, 0x19, 0x00, 0x04, 0x0A, 0xC8, 0x01, 0x01,
        // TCP SYN (12), flag
        0x00, 0x0C, 0x00, 0x00,
        // application name (35), "mail"
        0x00, 0x23, 0x00, 0x04, b'm', b'a', b'i', b'l',
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![
            HeaderTlv::ControlMessage(ControlReason::HealthCheckStateExists),
            HeaderTlv::HealthCheck(HealthCheck::Request),
            HeaderTlv::PathMetrics(PathMetrics {
                tx_color: 3,
                tx_time_ms: 100,
                rx_color: 3,
                rx_time_ms: 130,
                drop: true,
                previous_rx_color_count: 5,
            }),
            HeaderTlv::ModifyRequest(ModifyRequest {
                f_flag: true,
                d_flag: true,
                reserved: 0,
                sequence: 42,
                extra: vec![],
            }),
            HeaderTlv::IcmpErrorLocation(IpAddr::V4(v4(10, 200, 9, 1))),
            HeaderTlv::GlobalInterfaceId(3),
        ],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::RemainingSessionTime(300),
            PayloadTlv::SourceNat(v4(10, 200, 1, 1)),
            PayloadTlv::TcpSyn,
            PayloadTlv::ApplicationName("mail".into()),
        ]),
    };
    Golden { name: "session-control", bytes, repr, original_payload: b"" }
}

fn multicast() -> Golden {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 12; payload length 27
        0x10, 0x0C, 0x00, 0x1B,
        // payload: multicast group context (50), 11 bytes
        0x00, 0x32, 0x00, 0x0B,
        0x04,                   // IPv4
        0x00,                   // flags
        0x0A, 0xC8, 0x01, 0x0A, // source 10.200.1.10
        0xEF, 0x01, 0x02, 0x03, // group 239.1.2.3
        0x11,                   // UDP
        // multicast egress list (51), 8 bytes: 2 routers
        0x00, 0x33, 0x00, 0x08,
        0x00, 0x02,
        0x02, b'r', b'2',
        0x02, b'r', b'3',
    ];
    let repr = MetadataRepr {
        header_tlvs: vec![],
        payload: PayloadSection::Tlvs(vec![
            PayloadTlv::MulticastGroup(MulticastGroup {
                flags: 0,
                addresses: MulticastAddresses::V4 {
                    source: v4(10, 200, 1, 10),
                    group: v4(239, 1, 2, 3),
                },
                protocol: 17,
            }),
            PayloadTlv::MulticastEgressList(MulticastEgressList {
                routers: vec!["r2".into(), "r3".into()],
            }),
        ]),
    };
    Golden { name: "multicast", bytes, repr, original_payload: b"" }
}

/// Metadata whose payload section is ciphertext: 32 bytes that do not walk as TLVs.
fn encrypted_bytes() -> Vec<u8> {
    #[rustfmt::skip]
    let bytes = vec![
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C,
        // version 1, header length 20; payload length 32
        0x10, 0x14, 0x00, 0x20,
        // header: Security ID (16), 7
        0x00, 0x10, 0x00, 0x04, 0x00, 0x00, 0x00, 0x07,
        // payload section: ciphertext (first "TLV" claims 0x7C22 bytes)
        0xF3, 0x91, 0x7C, 0x22, 0x0E, 0x5B, 0xA8, 0x61,
        0x3D, 0xC4, 0x97, 0x02, 0x6F, 0xE0, 0x1B, 0x88,
        0x54, 0xA3, 0xD9, 0x36, 0x7E, 0x0F, 0xC2, 0x4B,
        0x91, 0x68, 0x2A, 0xF5, 0x13, 0xBE, 0x87, 0x5C,
        // original payload (ciphertext under the payload key)
        0x77, 0x12, 0xE4, 0x09,
    ];
    bytes
}

/// Returns every cleartext golden packet.
fn goldens() -> Vec<Golden> {
    vec![
        forward_v4(),
        forward_v6(),
        reverse_v4(),
        reverse_v6(),
        unknown_in_place(),
        session_control(),
        multicast(),
    ]
}

/// Returns the false-positive marker before an original payload that starts with the cookie.
fn marker_bytes() -> Vec<u8> {
    #[rustfmt::skip]
    let bytes = vec![
        // cookie, version 1, header length 12, payload length 0
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C, 0x10, 0x0C, 0x00, 0x00,
        // original payload, which starts with the cookie by chance
        0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C, b'd', b'a', b't', b'a',
    ];
    bytes
}

/// Emits `repr` into a junk-filled buffer 7 bytes longer than needed and returns the
/// emitted bytes, after checking the length and that the bytes past them are untouched.
fn emit_into_junk(repr: &MetadataRepr) -> Vec<u8> {
    let mut buffer = vec![JUNK; repr.buffer_len() + 7];
    let written = repr.emit(&mut buffer).unwrap();
    assert_eq!(written, repr.buffer_len());
    assert!(buffer[written..].iter().all(|&byte| byte == JUNK), "emit wrote past its length");
    buffer.truncate(written);
    buffer
}

#[test]
fn golden_parse_cleartext() {
    for golden in goldens() {
        let view = Metadata::new_checked(&golden.bytes[..]).unwrap();
        let repr = MetadataRepr::parse_cleartext(&view).unwrap();
        assert_eq!(repr, golden.repr, "{}", golden.name);
        assert_eq!(view.original_payload(), golden.original_payload, "{}", golden.name);
    }
}

#[test]
fn golden_emit_exact() {
    for golden in goldens() {
        let metadata_len = golden.bytes.len() - golden.original_payload.len();
        let emitted = emit_into_junk(&golden.repr);
        assert_eq!(emitted, golden.bytes[..metadata_len], "{}", golden.name);
    }
}

#[test]
fn golden_parse_keeps_payload_opaque() {
    for golden in goldens() {
        let view = Metadata::new_checked(&golden.bytes[..]).unwrap();
        let repr = MetadataRepr::parse(&view).unwrap();
        assert_eq!(repr.header_tlvs, golden.repr.header_tlvs, "{}", golden.name);

        let PayloadSection::Opaque(section) = &repr.payload else {
            panic!("{}: payload section was parsed", golden.name);
        };
        assert_eq!(section.as_slice(), view.payload_section(), "{}", golden.name);
        let PayloadSection::Tlvs(expected) = &golden.repr.payload else {
            panic!("{}: golden payload is not TLVs", golden.name);
        };
        assert_eq!(&parse_payload_tlvs(section).unwrap(), expected, "{}", golden.name);
    }
}

#[test]
fn golden_detect_metadata() {
    for golden in goldens() {
        let metadata_len = golden.bytes.len() - golden.original_payload.len();
        let view = Metadata::new_checked(&golden.bytes[..]).unwrap();
        let detection = detect(&golden.bytes).unwrap();
        assert_eq!(
            detection,
            Detection::Metadata { header_len: view.header_len(), payload_len: view.payload_len() },
            "{}",
            golden.name
        );
        assert_eq!(
            original_payload_offset(&golden.bytes).unwrap(),
            metadata_len,
            "{}",
            golden.name
        );
    }
}

#[test]
fn encrypted_parse_opaque() {
    let bytes = encrypted_bytes();
    let view = Metadata::new_checked(&bytes[..]).unwrap();
    let repr = MetadataRepr::parse(&view).unwrap();

    assert_eq!(repr.header_tlvs, vec![HeaderTlv::SecurityId(7)]);
    assert_eq!(repr.payload, PayloadSection::Opaque(bytes[20..52].to_vec()));
    assert_eq!(view.original_payload(), &[0x77, 0x12, 0xE4, 0x09]);
    assert!(MetadataRepr::parse_cleartext(&view).is_err());
    assert_eq!(emit_into_junk(&repr), bytes[..52]);
}

#[test]
fn encrypted_payload_section_mut() {
    let mut bytes = encrypted_bytes();
    let mut view = Metadata::new_checked(&mut bytes[..]).unwrap();
    view.payload_section_mut().fill(0);
    assert!(bytes[20..52].iter().all(|&byte| byte == 0));
    assert_eq!(bytes[19], 0x07);
    assert_eq!(bytes[52], 0x77);
}

#[test]
fn marker_detected() {
    let bytes = marker_bytes();
    assert_eq!(detect(&bytes).unwrap(), Detection::FalsePositiveMarker);
    assert_eq!(original_payload_offset(&bytes).unwrap(), 12);

    let view = Metadata::new_checked(&bytes[..]).unwrap();
    assert!(view.is_false_positive_marker());
    assert_eq!(view.original_payload(), &bytes[12..]);
    assert!(MetadataRepr::parse_cleartext(&view).unwrap().is_false_positive_marker());
}

#[test]
fn marker_emitted() {
    let bytes = marker_bytes();
    let mut buffer = [JUNK; 16];
    assert_eq!(emit_false_positive_marker(&mut buffer).unwrap(), 12);
    assert_eq!(buffer[..12], bytes[..12]);
    assert_eq!(buffer[12..], [JUNK; 4]);
    assert_eq!(emit_into_junk(&MetadataRepr::false_positive_marker()), bytes[..12]);
}

#[test]
fn detect_absent() {
    assert_eq!(detect(b"").unwrap(), Detection::Absent);
    assert_eq!(detect(b"GET / HTTP/1.1\r\n").unwrap(), Detection::Absent);
    // A prefix of the cookie is not the cookie.
    assert_eq!(detect(&[0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67]).unwrap(), Detection::Absent);
    assert_eq!(original_payload_offset(b"hello").unwrap(), 0);
}

#[test]
fn detect_cookie_insane_lengths() {
    let mut bytes = forward_v4().bytes;
    bytes[11] = 0xFF;
    assert!(detect(&bytes).is_err());
}

#[test]
fn payload_key_debug_redacted() {
    let key = PayloadKeyBlob::new(vec![0x42; 32]).unwrap();
    let text = format!("{key:?}");
    assert_eq!(text, "PayloadKeyBlob(32 bytes)");
}

/// Checks the seed corpus of the fuzz crate against the golden packets. Run with
/// `SVR_WRITE_CORPUS=1` to rewrite it.
#[test]
fn corpus_matches_goldens() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/metadata");
    let mut packets: Vec<(&str, Vec<u8>)> =
        goldens().into_iter().map(|golden| (golden.name, golden.bytes)).collect();
    packets.push(("encrypted", encrypted_bytes()));
    packets.push(("false-positive-marker", marker_bytes()));

    let write = std::env::var_os("SVR_WRITE_CORPUS").is_some();
    if write {
        std::fs::create_dir_all(&dir).unwrap();
    }
    for (name, bytes) in packets {
        let path = dir.join(name);
        if write {
            std::fs::write(&path, &bytes).unwrap();
        }
        let stored = std::fs::read(&path).unwrap_or_else(|error| {
            panic!("{}: {error}; run with SVR_WRITE_CORPUS=1", path.display())
        });
        assert_eq!(stored, bytes, "{} differs from the golden packet", path.display());
    }
}
