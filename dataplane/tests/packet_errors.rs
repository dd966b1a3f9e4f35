//! One test per `MetadataError` variant: the bytes or values that raise it, the exact
//! variant with its values, and a message that names them.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::error::Error as _;

use svr_dataplane::packet::{
    ControlReason, Fragment, HeaderTlv, HealthCheck, MAX_EGRESS_ROUTERS, MAX_TEXT_LEN, Metadata,
    MetadataError, MetadataRepr, ModifyRequest, MulticastEgressList, PathMetrics, PayloadSection,
    PayloadTlv, Section, UnknownTlv, detect, parse_header_tlvs, parse_payload_tlvs,
};

const COOKIE: [u8; 8] = [0x4C, 0x48, 0xDB, 0xC6, 0xDD, 0xF6, 0x67, 0x0C];

/// Builds metadata bytes around a header-TLV section and a payload-TLV section.
fn metadata(header: &[u8], payload: &[u8]) -> Vec<u8> {
    let header_len = 12 + header.len() as u16;
    let mut bytes = COOKIE.to_vec();
    bytes.extend_from_slice(&(0x1000 | header_len).to_be_bytes());
    bytes.extend_from_slice(&(payload.len() as u16).to_be_bytes());
    bytes.extend_from_slice(header);
    bytes.extend_from_slice(payload);
    bytes
}

fn check_err(bytes: &[u8]) -> MetadataError {
    Metadata::new_checked(bytes).unwrap_err()
}

fn parse_cleartext_err(bytes: &[u8]) -> MetadataError {
    let view = Metadata::new_checked(bytes).unwrap();
    MetadataRepr::parse_cleartext(&view).unwrap_err()
}

fn emit_err(repr: &MetadataRepr) -> MetadataError {
    let mut buffer = vec![0xA5; 70_000];
    let before = buffer.clone();
    let error = repr.emit(&mut buffer).unwrap_err();
    assert_eq!(buffer, before, "emit wrote before failing");
    error
}

fn payload_only(tlvs: Vec<PayloadTlv>) -> MetadataRepr {
    MetadataRepr { header_tlvs: vec![], payload: PayloadSection::Tlvs(tlvs) }
}

#[test]
fn error_truncated() {
    let error = check_err(&COOKIE[..]);
    assert_eq!(error, MetadataError::Truncated { needed: 12, had: 8 });
    assert_eq!(error.to_string(), "metadata truncated: needed 12 bytes, had 8");
}

#[test]
fn error_bad_cookie() {
    let mut bytes = metadata(&[], &[]);
    bytes[7] = 0x0D;
    let error = check_err(&bytes);
    let mut found = COOKIE;
    found[7] = 0x0D;
    assert_eq!(error, MetadataError::BadCookie { found });
    assert!(error.to_string().contains("0d"), "{error}");
}

#[test]
fn error_unsupported_version() {
    let mut bytes = metadata(&[], &[]);
    bytes[8] = 0x20 | (bytes[8] & 0x0F);
    let error = check_err(&bytes);
    assert_eq!(error, MetadataError::UnsupportedVersion { version: 2 });
    assert!(detect(&bytes).is_err());
    assert_eq!(error.to_string(), "unsupported metadata version 2, expected 1");
}

#[test]
fn error_header_length_too_small() {
    let mut bytes = metadata(&[], &[]);
    bytes[9] = 11;
    let error = check_err(&bytes);
    assert_eq!(error, MetadataError::HeaderLengthTooSmall { header_len: 11 });
    assert!(error.to_string().contains("11"), "{error}");
}

#[test]
fn error_header_length_beyond_buffer() {
    let mut bytes = metadata(&[0x00, 0x10, 0x00, 0x04, 0, 0, 0, 1], &[]);
    bytes.truncate(19);
    let error = check_err(&bytes);
    assert_eq!(error, MetadataError::HeaderLengthBeyondBuffer { header_len: 20, buffer_len: 19 });
    assert!(error.to_string().contains("20"), "{error}");
}

#[test]
fn error_payload_length_beyond_buffer() {
    let mut bytes = metadata(&[], &[0x00, 0x0B, 0x00, 0x00]);
    bytes.pop();
    let error = check_err(&bytes);
    assert_eq!(
        error,
        MetadataError::PayloadLengthBeyondBuffer { header_len: 12, payload_len: 4, buffer_len: 15 }
    );
    assert!(error.to_string().contains("payload length 4"), "{error}");
}

#[test]
fn error_tlv_header_truncated() {
    let bytes = metadata(&[0x00, 0x10, 0x00], &[]);
    let view = Metadata::new_checked(&bytes[..]).unwrap();
    let error = MetadataRepr::parse(&view).unwrap_err();
    assert_eq!(error, MetadataError::TlvHeaderTruncated { section: Section::Header, remaining: 3 });
    assert!(error.to_string().contains("header section"), "{error}");

    let error = parse_payload_tlvs(&[0x00]).unwrap_err();
    assert_eq!(
        error,
        MetadataError::TlvHeaderTruncated { section: Section::Payload, remaining: 1 }
    );
}

#[test]
fn error_tlv_overrun() {
    // A tenant TLV claims 9 bytes but the payload section has 3 after its header.
    let bytes = metadata(&[], &[0x00, 0x07, 0x00, 0x09, b'l', b'a', b'n']);
    let error = parse_cleartext_err(&bytes);
    assert_eq!(
        error,
        MetadataError::TlvOverrun {
            section: Section::Payload,
            tlv_type: 7,
            length: 9,
            remaining: 3
        }
    );
    assert_eq!(
        error.to_string(),
        "tlv type 7 length 9 runs past the end of the payload section (3 bytes left)"
    );

    // The iterator yields the error once and then stops.
    let view = Metadata::new_checked(&bytes[..]).unwrap();
    let mut tlvs = view.payload_tlvs();
    assert!(tlvs.next().unwrap().is_err());
    assert!(tlvs.next().is_none());
}

#[test]
fn error_bad_tlv_length() {
    // Security ID with 3 bytes in place of 4.
    let error = parse_header_tlvs(&[0x00, 0x10, 0x00, 0x03, 0, 0, 1]).unwrap_err();
    assert_eq!(error, MetadataError::BadTlvLength { tlv_type: 16, length: 3, min: 4, max: 4 });
    assert_eq!(error.to_string(), "tlv type 16 has length 3, expected 4");

    // A flag TLV with a value.
    let error = parse_payload_tlvs(&[0x00, 0x0B, 0x00, 0x01, 0x00]).unwrap_err();
    assert_eq!(error, MetadataError::BadTlvLength { tlv_type: 11, length: 1, min: 0, max: 0 });

    // A payload key with no bytes.
    let error = parse_payload_tlvs(&[0x00, 0x2E, 0x00, 0x00]).unwrap_err();
    assert_eq!(error, MetadataError::BadTlvLength { tlv_type: 46, length: 0, min: 1, max: 256 });
    assert_eq!(error.to_string(), "tlv type 46 has length 0, expected 1 to 256");

    // An IPv6 multicast group context one byte short.
    let mut group = vec![0x00, 0x32, 0x00, 34, 6];
    group.extend_from_slice(&[0; 33]);
    let error = parse_payload_tlvs(&group).unwrap_err();
    assert_eq!(error, MetadataError::BadTlvLength { tlv_type: 50, length: 34, min: 35, max: 35 });

    // A modify request with one byte.
    let error = parse_header_tlvs(&[0x00, 0x1C, 0x00, 0x01, 0x80]).unwrap_err();
    assert_eq!(error, MetadataError::BadTlvLength { tlv_type: 28, length: 1, min: 2, max: 64 });
}

#[test]
fn error_wrong_section() {
    // Security ID (16) in the payload section.
    let bytes = metadata(&[], &[0x00, 0x10, 0x00, 0x04, 0, 0, 0, 7]);
    let error = parse_cleartext_err(&bytes);
    assert_eq!(error, MetadataError::WrongSection { tlv_type: 16, section: Section::Payload });
    assert_eq!(error.to_string(), "tlv type 16 is not allowed in the payload section");

    // Tenant (7) in the header section.
    let error = parse_header_tlvs(&[0x00, 0x07, 0x00, 0x01, b'x']).unwrap_err();
    assert_eq!(error, MetadataError::WrongSection { tlv_type: 7, section: Section::Header });
}

#[test]
fn error_text_not_utf8() {
    let error = parse_payload_tlvs(&[0x00, 0x0A, 0x00, 0x02, 0xC3, 0x28]).unwrap_err();
    assert!(matches!(error, MetadataError::TextNotUtf8 { tlv_type: 10, .. }), "{error:?}");
    assert!(error.source().is_some(), "utf-8 error is not chained");
    assert_eq!(error.to_string(), "tlv type 10 text is not UTF-8");
}

#[test]
fn error_text_too_long() {
    let mut tlv = vec![0x00, 0x0E, 0x01, 0x00];
    tlv.extend_from_slice(&[b'r'; 256]);
    let error = parse_payload_tlvs(&tlv).unwrap_err();
    assert_eq!(error, MetadataError::TextTooLong { tlv_type: 14, length: 256, max: MAX_TEXT_LEN });
    assert!(error.to_string().contains("256"), "{error}");

    let repr = payload_only(vec![PayloadTlv::Service("s".repeat(256))]);
    assert_eq!(
        emit_err(&repr),
        MetadataError::TextTooLong { tlv_type: 10, length: 256, max: MAX_TEXT_LEN }
    );
}

#[test]
fn error_bad_address_family() {
    let mut tlv = vec![0x00, 0x32, 0x00, 0x0B, 5];
    tlv.extend_from_slice(&[0; 10]);
    let error = parse_payload_tlvs(&tlv).unwrap_err();
    assert_eq!(error, MetadataError::BadAddressFamily { tlv_type: 50, family: 5 });
    assert_eq!(error.to_string(), "tlv type 50 has address family 5, expected 4 or 6");
}

#[test]
fn error_egress_list_malformed() {
    // Two routers announced, one present.
    let short = [0x00, 0x33, 0x00, 0x05, 0x00, 0x02, 0x02, b'r', b'2'];
    let error = parse_payload_tlvs(&short).unwrap_err();
    assert_eq!(error, MetadataError::EgressListMalformed { count: 2, parsed: 1, extra: 0 });

    // A name length that runs past the value.
    let overrun = [0x00, 0x33, 0x00, 0x04, 0x00, 0x01, 0x05, b'r'];
    let error = parse_payload_tlvs(&overrun).unwrap_err();
    assert_eq!(error, MetadataError::EgressListMalformed { count: 1, parsed: 0, extra: 2 });

    // Bytes left after the last router.
    let trailing = [0x00, 0x33, 0x00, 0x06, 0x00, 0x01, 0x02, b'r', b'2', 0xFF];
    let error = parse_payload_tlvs(&trailing).unwrap_err();
    assert_eq!(error, MetadataError::EgressListMalformed { count: 1, parsed: 1, extra: 1 });
    assert!(error.to_string().contains("1 bytes are left over"), "{error}");
}

#[test]
fn error_count_too_large() {
    let count = (MAX_EGRESS_ROUTERS + 1) as u16;
    let mut tlv = vec![0x00, 0x33, 0x00, 0x02];
    tlv.extend_from_slice(&count.to_be_bytes());
    let error = parse_payload_tlvs(&tlv).unwrap_err();
    assert_eq!(
        error,
        MetadataError::CountTooLarge { tlv_type: 51, count: 257, max: MAX_EGRESS_ROUTERS }
    );
    assert!(error.to_string().contains("257"), "{error}");

    let list = MulticastEgressList { routers: vec!["r".into(); MAX_EGRESS_ROUTERS + 1] };
    let repr = payload_only(vec![PayloadTlv::MulticastEgressList(list)]);
    assert_eq!(
        emit_err(&repr),
        MetadataError::CountTooLarge { tlv_type: 51, count: 257, max: MAX_EGRESS_ROUTERS }
    );
}

#[test]
fn error_buffer_too_small() {
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::SecurityId(7)],
        payload: PayloadSection::Tlvs(vec![PayloadTlv::SessionEncrypted]),
    };
    let mut buffer = [0xA5; 23];
    let error = repr.emit(&mut buffer).unwrap_err();
    assert_eq!(error, MetadataError::BufferTooSmall { needed: 24, available: 23 });
    assert_eq!(buffer, [0xA5; 23]);
    assert_eq!(error.to_string(), "buffer too small for metadata: needed 24 bytes, have 23");

    let mut empty = [];
    assert_eq!(
        MetadataRepr::false_positive_marker().emit(&mut empty),
        Err(MetadataError::BufferTooSmall { needed: 12, available: 0 })
    );
}

#[test]
fn error_header_section_too_long() {
    // 64 unknown TLVs of 60 bytes: 12 + 64 * 64 = 4108 > 4095.
    let tlv = HeaderTlv::Unknown(UnknownTlv { tlv_type: 9, value: vec![0; 60] });
    let repr = MetadataRepr { header_tlvs: vec![tlv; 64], payload: PayloadSection::Opaque(vec![]) };
    let error = emit_err(&repr);
    assert_eq!(error, MetadataError::HeaderSectionTooLong { header_len: 4108, max: 4095 });
    assert!(error.to_string().contains("4108"), "{error}");
}

#[test]
fn error_payload_section_too_long() {
    let repr =
        MetadataRepr { header_tlvs: vec![], payload: PayloadSection::Opaque(vec![0; 65_536]) };
    let error = emit_err(&repr);
    assert_eq!(error, MetadataError::PayloadSectionTooLong { payload_len: 65_536, max: 65_535 });
    assert!(error.to_string().contains("65536"), "{error}");
}

#[test]
fn error_field_out_of_range() {
    let fragment = Fragment { offset: 0x2000, ..Fragment::default() };
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::Fragment(fragment)],
        payload: PayloadSection::Opaque(vec![]),
    };
    let error = emit_err(&repr);
    assert_eq!(
        error,
        MetadataError::FieldOutOfRange { field: "fragment offset", value: 0x2000, max: 0x1FFF }
    );
    assert_eq!(error.to_string(), "fragment offset value 8192 is above the field maximum of 8191");

    let metrics = PathMetrics { rx_color: 16, ..PathMetrics::default() };
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::PathMetrics(metrics)],
        payload: PayloadSection::Opaque(vec![]),
    };
    assert!(matches!(
        emit_err(&repr),
        MetadataError::FieldOutOfRange { field: "path metrics rx color", value: 16, max: 15 }
    ));

    let request = ModifyRequest { sequence: 0x1000, ..ModifyRequest::default() };
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::ModifyRequest(request)],
        payload: PayloadSection::Opaque(vec![]),
    };
    assert!(matches!(
        emit_err(&repr),
        MetadataError::FieldOutOfRange { field: "modify request sequence", value: 4096, .. }
    ));
}

#[test]
fn error_unknown_tlv_has_known_type() {
    let repr = payload_only(vec![PayloadTlv::Unknown(UnknownTlv { tlv_type: 7, value: vec![] })]);
    let error = emit_err(&repr);
    assert_eq!(error, MetadataError::UnknownTlvHasKnownType { tlv_type: 7 });
    assert!(error.to_string().contains("tlv type 7"), "{error}");
}

#[test]
fn named_value_as_other() {
    for (tlv, field, value) in [
        (HeaderTlv::ControlMessage(ControlReason::Other(1)), "control message reason", 1),
        (HeaderTlv::HealthCheck(HealthCheck::Other(2)), "health check", 2),
    ] {
        let repr = MetadataRepr { header_tlvs: vec![tlv], payload: PayloadSection::Tlvs(vec![]) };
        let error = repr.emit(&mut [0u8; 64]).unwrap_err();
        assert_eq!(error, MetadataError::NamedValueAsOther { field, value });
        assert_eq!(
            error.to_string(),
            format!("{field} {value} has a named variant; use it instead of Other")
        );
    }
    // Numbers without a name still emit.
    let repr = MetadataRepr {
        header_tlvs: vec![HeaderTlv::ControlMessage(ControlReason::Other(4))],
        payload: PayloadSection::Tlvs(vec![]),
    };
    assert!(repr.emit(&mut [0u8; 64]).is_ok());
}
