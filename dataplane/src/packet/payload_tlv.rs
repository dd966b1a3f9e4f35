//! Typed TLVs of the payload section, which the metadata key may encrypt: the session's
//! identity, names and key.

use std::net::Ipv4Addr;

use uuid::Uuid;

use super::context::{MulticastEgressList, MulticastGroup, SessionContext};
use super::error::{MetadataError, Section};
use super::fields::PayloadKeyBlob;
use super::tlv::{
    MAX_TEXT_LEN, RawTlv, TLV_HEADER_LEN, TlvIter, UnknownTlv, check_text, fixed, text, types,
};

/// A TLV of the payload section.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PayloadTlv {
    /// Type 2 (IPv4) or 3 (IPv6): the session's original 5-tuple.
    ForwardContext(SessionContext),
    /// Type 4 (IPv4) or 5 (IPv6): the 5-tuple of the reverse direction.
    ReverseContext(SessionContext),
    /// Type 6.
    SessionUuid(Uuid),
    /// Type 7: source tenant name.
    Tenant(String),
    /// Type 10: service name.
    Service(String),
    /// Type 11: the session's original payload is encrypted.
    SessionEncrypted,
    /// Type 12: TCP SYN flag, used when TCP is carried as UDP.
    TcpSyn,
    /// Type 13: number of sessions, a u64 sent in reverse metadata.
    SessionCount(u64),
    /// Type 14: source router name.
    SourceRouter(String),
    /// Type 15: the sender's security policy name.
    SecurityPolicy(String),
    /// Type 17: destination router name.
    DestinationRouter(String),
    /// Type 18: the ingress should stop adding forward metadata.
    DisableForwardMetadata,
    /// Type 19: name of the peer path.
    PeerPathwayId(String),
    /// Type 25: IPv4 source NAT address.
    SourceNat(Ipv4Addr),
    /// Type 35: application name.
    ApplicationName(String),
    /// Type 42: remaining session time in seconds.
    RemainingSessionTime(u32),
    /// Type 46 in the payload section: the session's payload key material.
    PayloadKey(PayloadKeyBlob),
    /// Type 50.
    MulticastGroup(MulticastGroup),
    /// Type 51.
    MulticastEgressList(MulticastEgressList),
    /// A type the codec does not know, kept byte-exact.
    Unknown(UnknownTlv),
}

/// Parses a cleartext payload-TLV section (after decryption, when it was encrypted).
pub fn parse_payload_tlvs(section: &[u8]) -> Result<Vec<PayloadTlv>, MetadataError> {
    TlvIter::new(section, Section::Payload)
        .map(|tlv| tlv.and_then(|tlv| PayloadTlv::parse(&tlv)))
        .collect()
}

impl PayloadTlv {
    /// Parses one TLV found in the payload section.
    pub fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let tlv_type = tlv.tlv_type;
        let parsed = match tlv_type {
            types::FORWARD_CONTEXT_V4 => PayloadTlv::ForwardContext(SessionContext::parse_v4(tlv)?),
            types::FORWARD_CONTEXT_V6 => PayloadTlv::ForwardContext(SessionContext::parse_v6(tlv)?),
            types::REVERSE_CONTEXT_V4 => PayloadTlv::ReverseContext(SessionContext::parse_v4(tlv)?),
            types::REVERSE_CONTEXT_V6 => PayloadTlv::ReverseContext(SessionContext::parse_v6(tlv)?),
            types::SESSION_UUID => PayloadTlv::SessionUuid(Uuid::from_bytes(fixed(tlv)?)),
            types::TENANT => PayloadTlv::Tenant(text(tlv_type, tlv.value, MAX_TEXT_LEN)?),
            types::SERVICE => PayloadTlv::Service(text(tlv_type, tlv.value, MAX_TEXT_LEN)?),
            types::SESSION_ENCRYPTED => {
                fixed::<0>(tlv)?;
                PayloadTlv::SessionEncrypted
            }
            types::TCP_SYN => {
                fixed::<0>(tlv)?;
                PayloadTlv::TcpSyn
            }
            types::SESSION_COUNT => PayloadTlv::SessionCount(u64::from_be_bytes(fixed(tlv)?)),
            types::SOURCE_ROUTER => {
                PayloadTlv::SourceRouter(text(tlv_type, tlv.value, MAX_TEXT_LEN)?)
            }
            types::SECURITY_POLICY => {
                PayloadTlv::SecurityPolicy(text(tlv_type, tlv.value, MAX_TEXT_LEN)?)
            }
            types::DESTINATION_ROUTER => {
                PayloadTlv::DestinationRouter(text(tlv_type, tlv.value, MAX_TEXT_LEN)?)
            }
            types::DISABLE_FORWARD_METADATA => {
                fixed::<0>(tlv)?;
                PayloadTlv::DisableForwardMetadata
            }
            types::PEER_PATHWAY_ID => {
                PayloadTlv::PeerPathwayId(text(tlv_type, tlv.value, MAX_TEXT_LEN)?)
            }
            types::SOURCE_NAT_V4 => PayloadTlv::SourceNat(Ipv4Addr::from(fixed::<4>(tlv)?)),
            types::APPLICATION_NAME => {
                PayloadTlv::ApplicationName(text(tlv_type, tlv.value, MAX_TEXT_LEN)?)
            }
            types::REMAINING_SESSION_TIME => {
                PayloadTlv::RemainingSessionTime(u32::from_be_bytes(fixed(tlv)?))
            }
            types::HEALTH_CHECK_OR_PAYLOAD_KEY => {
                PayloadTlv::PayloadKey(PayloadKeyBlob::parse(tlv)?)
            }
            types::MULTICAST_GROUP => PayloadTlv::MulticastGroup(MulticastGroup::parse(tlv)?),
            types::MULTICAST_EGRESS_LIST => {
                PayloadTlv::MulticastEgressList(MulticastEgressList::parse(tlv)?)
            }
            tlv_type if types::is_known(tlv_type) => {
                return Err(MetadataError::WrongSection { tlv_type, section: Section::Payload });
            }
            tlv_type => PayloadTlv::Unknown(UnknownTlv { tlv_type, value: tlv.value.to_vec() }),
        };
        Ok(parsed)
    }

    /// Returns the TLV type number this value is emitted with.
    pub fn tlv_type(&self) -> u16 {
        match self {
            PayloadTlv::ForwardContext(SessionContext::V4(_)) => types::FORWARD_CONTEXT_V4,
            PayloadTlv::ForwardContext(SessionContext::V6(_)) => types::FORWARD_CONTEXT_V6,
            PayloadTlv::ReverseContext(SessionContext::V4(_)) => types::REVERSE_CONTEXT_V4,
            PayloadTlv::ReverseContext(SessionContext::V6(_)) => types::REVERSE_CONTEXT_V6,
            PayloadTlv::SessionUuid(_) => types::SESSION_UUID,
            PayloadTlv::Tenant(_) => types::TENANT,
            PayloadTlv::Service(_) => types::SERVICE,
            PayloadTlv::SessionEncrypted => types::SESSION_ENCRYPTED,
            PayloadTlv::TcpSyn => types::TCP_SYN,
            PayloadTlv::SessionCount(_) => types::SESSION_COUNT,
            PayloadTlv::SourceRouter(_) => types::SOURCE_ROUTER,
            PayloadTlv::SecurityPolicy(_) => types::SECURITY_POLICY,
            PayloadTlv::DestinationRouter(_) => types::DESTINATION_ROUTER,
            PayloadTlv::DisableForwardMetadata => types::DISABLE_FORWARD_METADATA,
            PayloadTlv::PeerPathwayId(_) => types::PEER_PATHWAY_ID,
            PayloadTlv::SourceNat(_) => types::SOURCE_NAT_V4,
            PayloadTlv::ApplicationName(_) => types::APPLICATION_NAME,
            PayloadTlv::RemainingSessionTime(_) => types::REMAINING_SESSION_TIME,
            PayloadTlv::PayloadKey(_) => types::HEALTH_CHECK_OR_PAYLOAD_KEY,
            PayloadTlv::MulticastGroup(_) => types::MULTICAST_GROUP,
            PayloadTlv::MulticastEgressList(_) => types::MULTICAST_EGRESS_LIST,
            PayloadTlv::Unknown(unknown) => unknown.tlv_type,
        }
    }

    /// Length of the TLV on the wire, type and length fields included.
    pub fn buffer_len(&self) -> usize {
        TLV_HEADER_LEN + self.value_len()
    }

    /// Checks that every field fits the wire format.
    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        let tlv_type = self.tlv_type();
        match self {
            PayloadTlv::Tenant(name)
            | PayloadTlv::Service(name)
            | PayloadTlv::SourceRouter(name)
            | PayloadTlv::SecurityPolicy(name)
            | PayloadTlv::DestinationRouter(name)
            | PayloadTlv::PeerPathwayId(name)
            | PayloadTlv::ApplicationName(name) => check_text(tlv_type, name, MAX_TEXT_LEN),
            PayloadTlv::PayloadKey(key) => key.check(),
            PayloadTlv::MulticastEgressList(list) => list.check(),
            PayloadTlv::Unknown(unknown) => unknown.check(),
            PayloadTlv::ForwardContext(_)
            | PayloadTlv::ReverseContext(_)
            | PayloadTlv::SessionUuid(_)
            | PayloadTlv::SessionEncrypted
            | PayloadTlv::TcpSyn
            | PayloadTlv::SessionCount(_)
            | PayloadTlv::DisableForwardMetadata
            | PayloadTlv::SourceNat(_)
            | PayloadTlv::RemainingSessionTime(_)
            | PayloadTlv::MulticastGroup(_) => Ok(()),
        }
    }

    fn value_len(&self) -> usize {
        match self {
            PayloadTlv::ForwardContext(context) | PayloadTlv::ReverseContext(context) => {
                context.value_len()
            }
            PayloadTlv::SessionUuid(_) => 16,
            PayloadTlv::Tenant(name)
            | PayloadTlv::Service(name)
            | PayloadTlv::SourceRouter(name)
            | PayloadTlv::SecurityPolicy(name)
            | PayloadTlv::DestinationRouter(name)
            | PayloadTlv::PeerPathwayId(name)
            | PayloadTlv::ApplicationName(name) => name.len(),
            PayloadTlv::SessionEncrypted
            | PayloadTlv::TcpSyn
            | PayloadTlv::DisableForwardMetadata => 0,
            PayloadTlv::SessionCount(_) => 8,
            PayloadTlv::SourceNat(_) | PayloadTlv::RemainingSessionTime(_) => 4,
            PayloadTlv::PayloadKey(key) => key.as_bytes().len(),
            PayloadTlv::MulticastGroup(group) => group.value_len(),
            PayloadTlv::MulticastEgressList(list) => list.value_len(),
            PayloadTlv::Unknown(unknown) => unknown.value.len(),
        }
    }

    /// Writes the TLV at the start of `out`, which has room for at least `buffer_len()` bytes,
    /// and returns its length.
    pub(crate) fn emit(&self, out: &mut [u8]) -> usize {
        super::tlv::write_tlv(out, self.tlv_type(), self.value_len(), |value| match self {
            PayloadTlv::ForwardContext(context) | PayloadTlv::ReverseContext(context) => {
                context.emit_value(value)
            }
            PayloadTlv::SessionUuid(uuid) => value.copy_from_slice(uuid.as_bytes()),
            PayloadTlv::Tenant(name)
            | PayloadTlv::Service(name)
            | PayloadTlv::SourceRouter(name)
            | PayloadTlv::SecurityPolicy(name)
            | PayloadTlv::DestinationRouter(name)
            | PayloadTlv::PeerPathwayId(name)
            | PayloadTlv::ApplicationName(name) => value.copy_from_slice(name.as_bytes()),
            PayloadTlv::SessionEncrypted
            | PayloadTlv::TcpSyn
            | PayloadTlv::DisableForwardMetadata => {}
            PayloadTlv::SessionCount(count) => value.copy_from_slice(&count.to_be_bytes()),
            PayloadTlv::SourceNat(address) => value.copy_from_slice(&address.octets()),
            PayloadTlv::RemainingSessionTime(seconds) => {
                value.copy_from_slice(&seconds.to_be_bytes())
            }
            PayloadTlv::PayloadKey(key) => value.copy_from_slice(key.as_bytes()),
            PayloadTlv::MulticastGroup(group) => group.emit_value(value),
            PayloadTlv::MulticastEgressList(list) => list.emit_value(value),
            PayloadTlv::Unknown(unknown) => value.copy_from_slice(&unknown.value),
        })
    }
}
