//! Property tests of the metadata codec: random TLV sets survive emit then parse in both
//! sections, bytes that parse re-emit unchanged, and no byte string makes it panic.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use proptest::prelude::*;
use svr_dataplane::packet::{
    COOKIE, ControlReason, Fragment, HeaderTlv, HealthCheck, Ipv4Context, Ipv6Context,
    MAX_MODIFY_REQUEST_LEN, MAX_PAYLOAD_KEY_LEN, Metadata, MetadataRepr, ModifyRequest,
    MulticastAddresses, MulticastEgressList, MulticastGroup, PathMetrics, PayloadKeyBlob,
    PayloadSection, PayloadTlv, SessionContext, UnknownTlv, detect, parse_header_tlvs,
    parse_payload_tlvs, types,
};
use uuid::Uuid;

const JUNK: u8 = 0xA5;

fn ipv4() -> impl Strategy<Value = Ipv4Addr> {
    any::<[u8; 4]>().prop_map(Ipv4Addr::from)
}

fn ipv6() -> impl Strategy<Value = Ipv6Addr> {
    any::<[u8; 16]>().prop_map(Ipv6Addr::from)
}

/// Text of at most 255 bytes, multi-byte characters included.
fn name() -> impl Strategy<Value = String> {
    "\\PC{0,40}".prop_filter("longer than 255 bytes", |text| text.len() <= 255)
}

fn unknown_tlv() -> impl Strategy<Value = UnknownTlv> {
    (any::<u16>(), prop::collection::vec(any::<u8>(), 0..24))
        .prop_filter("known type", |(tlv_type, _)| !types::is_known(*tlv_type))
        .prop_map(|(tlv_type, value)| UnknownTlv { tlv_type, value })
}

fn session_context() -> impl Strategy<Value = SessionContext> {
    prop_oneof![
        (ipv4(), ipv4(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(source, destination, source_port, destination_port, protocol)| {
                SessionContext::V4(Ipv4Context {
                    source,
                    destination,
                    source_port,
                    destination_port,
                    protocol,
                })
            }
        ),
        (ipv6(), ipv6(), any::<u16>(), any::<u16>(), any::<u8>()).prop_map(
            |(source, destination, source_port, destination_port, protocol)| {
                SessionContext::V6(Ipv6Context {
                    source,
                    destination,
                    source_port,
                    destination_port,
                    protocol,
                })
            }
        ),
    ]
}

fn header_tlv() -> impl Strategy<Value = HeaderTlv> {
    prop_oneof![
        (any::<u32>(), any::<u16>(), any::<[bool; 3]>(), 0..=Fragment::MAX_OFFSET, any::<u16>())
            .prop_map(|(extended_id, original_id, flags, offset, largest_seen)| {
                HeaderTlv::Fragment(Fragment {
                    extended_id,
                    original_id,
                    reserved_flag: flags[0],
                    dont_fragment: flags[1],
                    more_fragments: flags[2],
                    offset,
                    largest_seen,
                })
            }),
        any::<u32>().prop_map(HeaderTlv::GlobalInterfaceId),
        any::<u32>().prop_map(HeaderTlv::SecurityId),
        ipv4().prop_map(|address| HeaderTlv::IcmpErrorLocation(IpAddr::V4(address))),
        ipv6().prop_map(|address| HeaderTlv::IcmpErrorLocation(IpAddr::V6(address))),
        any::<u8>().prop_map(|reason| HeaderTlv::ControlMessage(ControlReason::from(reason))),
        (0..16u8, 0..0x1000_0000u32, 0..16u8, 0..0x1000_0000u32, any::<bool>(), 0..0x8000u16)
            .prop_map(|(tx_color, tx_time_ms, rx_color, rx_time_ms, drop, count)| {
                HeaderTlv::PathMetrics(PathMetrics {
                    tx_color,
                    tx_time_ms,
                    rx_color,
                    rx_time_ms,
                    drop,
                    previous_rx_color_count: count,
                })
            }),
        (
            any::<bool>(),
            any::<bool>(),
            0..4u8,
            0..0x1000u16,
            prop::collection::vec(any::<u8>(), 0..=MAX_MODIFY_REQUEST_LEN - 2)
        )
            .prop_map(|(f_flag, d_flag, reserved, sequence, extra)| {
                HeaderTlv::ModifyRequest(ModifyRequest {
                    f_flag,
                    d_flag,
                    reserved,
                    sequence,
                    extra,
                })
            }),
        any::<u8>().prop_map(|check| HeaderTlv::HealthCheck(HealthCheck::from(check))),
        unknown_tlv().prop_map(HeaderTlv::Unknown),
    ]
}

fn payload_tlv() -> impl Strategy<Value = PayloadTlv> {
    prop_oneof![
        session_context().prop_map(PayloadTlv::ForwardContext),
        session_context().prop_map(PayloadTlv::ReverseContext),
        any::<[u8; 16]>().prop_map(|bytes| PayloadTlv::SessionUuid(Uuid::from_bytes(bytes))),
        name().prop_map(PayloadTlv::Tenant),
        name().prop_map(PayloadTlv::Service),
        Just(PayloadTlv::SessionEncrypted),
        Just(PayloadTlv::TcpSyn),
        any::<u64>().prop_map(PayloadTlv::SessionCount),
        name().prop_map(PayloadTlv::SourceRouter),
        name().prop_map(PayloadTlv::SecurityPolicy),
        name().prop_map(PayloadTlv::DestinationRouter),
        Just(PayloadTlv::DisableForwardMetadata),
        name().prop_map(PayloadTlv::PeerPathwayId),
        ipv4().prop_map(PayloadTlv::SourceNat),
        name().prop_map(PayloadTlv::ApplicationName),
        any::<u32>().prop_map(PayloadTlv::RemainingSessionTime),
        prop::collection::vec(any::<u8>(), 1..=MAX_PAYLOAD_KEY_LEN)
            .prop_map(|bytes| PayloadTlv::PayloadKey(PayloadKeyBlob::new(bytes).unwrap())),
        (any::<u8>(), ipv4(), ipv4(), any::<u8>()).prop_map(|(flags, source, group, protocol)| {
            PayloadTlv::MulticastGroup(MulticastGroup {
                flags,
                addresses: MulticastAddresses::V4 { source, group },
                protocol,
            })
        }),
        (any::<u8>(), ipv6(), ipv6(), any::<u8>()).prop_map(|(flags, source, group, protocol)| {
            PayloadTlv::MulticastGroup(MulticastGroup {
                flags,
                addresses: MulticastAddresses::V6 { source, group },
                protocol,
            })
        }),
        prop::collection::vec(name(), 0..6)
            .prop_map(|routers| PayloadTlv::MulticastEgressList(MulticastEgressList { routers })),
        unknown_tlv().prop_map(PayloadTlv::Unknown),
    ]
}

fn repr() -> impl Strategy<Value = MetadataRepr> {
    (prop::collection::vec(header_tlv(), 0..8), prop::collection::vec(payload_tlv(), 0..12))
        .prop_map(|(header_tlvs, payload)| MetadataRepr {
            header_tlvs,
            payload: PayloadSection::Tlvs(payload),
        })
}

/// Generates a raw TLV: a type near the known range (or any type) with a value of random bytes.
fn raw_tlv() -> impl Strategy<Value = (u16, Vec<u8>)> {
    (prop_oneof![0..60u16, any::<u16>()], prop::collection::vec(any::<u8>(), 0..40))
}

fn encode_raw(tlvs: &[(u16, Vec<u8>)]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for (tlv_type, value) in tlvs {
        bytes.extend_from_slice(&tlv_type.to_be_bytes());
        bytes.extend_from_slice(&(value.len() as u16).to_be_bytes());
        bytes.extend_from_slice(value);
    }
    bytes
}

fn with_base_header(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut bytes = COOKIE.to_vec();
    bytes.extend_from_slice(&(0x1000 | (12 + header.len()) as u16).to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(payload);
    bytes
}

fn emit_into_junk(repr: &MetadataRepr) -> Vec<u8> {
    let mut buffer = vec![JUNK; repr.buffer_len() + 5];
    let written = repr.emit(&mut buffer).unwrap();
    assert_eq!(written, repr.buffer_len());
    assert!(buffer[written..].iter().all(|&byte| byte == JUNK));
    buffer.truncate(written);
    buffer
}

/// Runs every parser on `bytes` and, where parsing succeeds, checks that the value
/// re-emits as the same bytes.
fn parse_everything(bytes: &[u8]) {
    let _ = detect(bytes);
    let _ = parse_header_tlvs(bytes);
    if let Ok(tlvs) = parse_payload_tlvs(bytes) {
        let repr = MetadataRepr { header_tlvs: vec![], payload: PayloadSection::Tlvs(tlvs) };
        assert_eq!(emit_into_junk(&repr)[12..], *bytes);
    }

    let Ok(view) = Metadata::new_checked(bytes) else { return };
    let _ = view.original_payload();
    for tlv in view.header_tlvs().chain(view.payload_tlvs()) {
        let _ = tlv;
    }
    if let Ok(repr) = MetadataRepr::parse(&view) {
        assert_eq!(emit_into_junk(&repr), bytes[..view.metadata_len()]);
    }
    if let Ok(repr) = MetadataRepr::parse_cleartext(&view) {
        assert_eq!(emit_into_junk(&repr), bytes[..view.metadata_len()]);
    }
}

proptest! {
    #[test]
    fn repr_round_trip(repr in repr()) {
        let bytes = emit_into_junk(&repr);
        let view = Metadata::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(view.metadata_len(), bytes.len());
        let parsed = MetadataRepr::parse_cleartext(&view).unwrap();
        prop_assert_eq!(&parsed, &repr);
        prop_assert_eq!(emit_into_junk(&parsed), bytes);
    }

    #[test]
    fn payload_tlvs_round_trip(tlvs in prop::collection::vec(payload_tlv(), 0..16)) {
        let repr = MetadataRepr { header_tlvs: vec![], payload: PayloadSection::Tlvs(tlvs.clone()) };
        let bytes = emit_into_junk(&repr);
        prop_assert_eq!(parse_payload_tlvs(&bytes[12..]).unwrap(), tlvs);
    }

    #[test]
    fn header_tlvs_round_trip(tlvs in prop::collection::vec(header_tlv(), 0..16)) {
        let repr = MetadataRepr { header_tlvs: tlvs.clone(), payload: PayloadSection::Opaque(vec![]) };
        let bytes = emit_into_junk(&repr);
        prop_assert_eq!(parse_header_tlvs(&bytes[12..]).unwrap(), tlvs);
    }

    #[test]
    fn opaque_round_trip(
        header in prop::collection::vec(header_tlv(), 0..4),
        payload in prop::collection::vec(any::<u8>(), 0..200),
    ) {
        let repr = MetadataRepr { header_tlvs: header, payload: PayloadSection::Opaque(payload) };
        let bytes = emit_into_junk(&repr);
        let view = Metadata::new_checked(&bytes[..]).unwrap();
        prop_assert_eq!(MetadataRepr::parse(&view).unwrap(), repr);
    }

    #[test]
    fn raw_bytes_re_emit_exact(
        header in prop::collection::vec(raw_tlv(), 0..4),
        payload in prop::collection::vec(raw_tlv(), 0..6),
    ) {
        let bytes = with_base_header(&encode_raw(&header), &encode_raw(&payload));
        let view = Metadata::new_checked(&bytes[..]).unwrap();
        if let Ok(repr) = MetadataRepr::parse_cleartext(&view) {
            prop_assert_eq!(emit_into_junk(&repr), bytes.clone());
        }
        if let Ok(repr) = MetadataRepr::parse(&view) {
            prop_assert_eq!(emit_into_junk(&repr), bytes);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4096))]

    #[test]
    fn arbitrary_bytes_no_panic(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
        parse_everything(&bytes);
    }

    #[test]
    fn cookie_prefixed_bytes_no_panic(
        version_len in any::<u16>(),
        payload_len in 0..200u16,
        rest in prop::collection::vec(any::<u8>(), 0..300),
    ) {
        // Mostly version 1 and small lengths, so parsing gets past the base header.
        let version_len = 0x1000 | (version_len % 160);
        let mut bytes = COOKIE.to_vec();
        bytes.extend_from_slice(&version_len.to_be_bytes());
        bytes.extend_from_slice(&payload_len.to_be_bytes());
        bytes.extend_from_slice(&rest);
        parse_everything(&bytes);
    }

    #[test]
    fn framed_random_tlvs_no_panic(
        header in prop::collection::vec(raw_tlv(), 0..4),
        payload in prop::collection::vec(raw_tlv(), 0..6),
        cut in any::<prop::sample::Index>(),
    ) {
        let bytes = with_base_header(&encode_raw(&header), &encode_raw(&payload));
        parse_everything(&bytes);
        parse_everything(&bytes[..cut.index(bytes.len() + 1)]);
    }
}
