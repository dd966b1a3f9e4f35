//! SVR metadata codec: the base header, the header and payload TLV sections, and every
//! TLV type the public record names.
//!
//! Two layers, as in smoltcp. [`Metadata`] is a checked view over the bytes at the
//! start of an L4 payload: [`Metadata::new_checked`] validates the cookie, version and
//! both lengths once, and its TLV iterators walk bounded sub-slices. [`MetadataRepr`] is
//! the owned form, with [`MetadataRepr::parse`] and [`MetadataRepr::emit`].
//!
//! The payload section may be ciphertext under the metadata key, and nothing on the wire
//! marks it. [`MetadataRepr::parse`] therefore keeps it opaque, and
//! [`parse_payload_tlvs`] parses it once the crypto layer has decrypted it.
//! All integers are big-endian and TLVs carry no padding. Unknown TLV types are accepted
//! in either section and re-emitted byte-exact in their original position.

mod context;
mod error;
mod fields;
mod header;
mod header_tlv;
mod payload_tlv;
mod repr;
mod tlv;

pub use context::{
    Ipv4Context, Ipv6Context, MAX_EGRESS_ROUTERS, MulticastAddresses, MulticastEgressList,
    MulticastGroup, SessionContext,
};
pub use error::{MetadataError, Section};
pub use fields::{
    ControlReason, Fragment, HealthCheck, MAX_MODIFY_REQUEST_LEN, MAX_PAYLOAD_KEY_LEN,
    ModifyRequest, PathMetrics, PayloadKeyBlob,
};
pub use header::{
    BASE_HEADER_LEN, COOKIE, Detection, MAX_HEADER_LEN, MAX_PAYLOAD_LEN, Metadata, VERSION, detect,
    original_payload_offset,
};
pub use header_tlv::HeaderTlv;
pub use payload_tlv::{PayloadTlv, parse_payload_tlvs};
pub use repr::{MetadataRepr, PayloadSection, emit_false_positive_marker, parse_header_tlvs};
pub use tlv::{MAX_TEXT_LEN, RawTlv, TLV_HEADER_LEN, TlvIter, UnknownTlv, types};
