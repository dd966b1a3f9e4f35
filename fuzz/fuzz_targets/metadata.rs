//! Fuzz target for the SVR metadata parser: any input that parses must re-emit as the
//! same bytes and parse back to the same value.

#![no_main]

use libfuzzer_sys::fuzz_target;
use svr_dataplane::packet::{
    Metadata, MetadataRepr, PayloadSection, detect, parse_header_tlvs, parse_payload_tlvs,
};

fuzz_target!(|data: &[u8]| {
    let _ = detect(data);
    let _ = parse_header_tlvs(data);
    if let Ok(tlvs) = parse_payload_tlvs(data) {
        let repr = MetadataRepr { header_tlvs: Vec::new(), payload: PayloadSection::Tlvs(tlvs) };
        check_round_trip(&repr, None);
    }

    let Ok(view) = Metadata::new_checked(data) else {
        return;
    };
    let metadata = &data[..view.metadata_len()];
    for tlv in view.header_tlvs().chain(view.payload_tlvs()) {
        let _ = tlv;
    }
    if let Ok(repr) = MetadataRepr::parse(&view) {
        check_round_trip(&repr, Some(metadata));
    }
    if let Ok(repr) = MetadataRepr::parse_cleartext(&view) {
        check_round_trip(&repr, Some(metadata));
    }
});

/// Emits `repr`, checks the bytes against `expected` when given, then parses them
/// back and checks the value.
fn check_round_trip(repr: &MetadataRepr, expected: Option<&[u8]>) {
    let mut buffer = vec![0xA5; repr.buffer_len()];
    let written = repr.emit(&mut buffer).expect("a parsed value emits");
    assert_eq!(written, buffer.len());
    if let Some(expected) = expected {
        assert_eq!(buffer, expected, "re-emitted bytes differ");
    }

    let view = Metadata::new_checked(&buffer[..]).expect("emitted metadata passes the check");
    let reparsed = match repr.payload {
        PayloadSection::Tlvs(_) => MetadataRepr::parse_cleartext(&view),
        PayloadSection::Opaque(_) => MetadataRepr::parse(&view),
    };
    assert_eq!(reparsed.as_ref(), Ok(repr), "re-parsed value differs");
}
