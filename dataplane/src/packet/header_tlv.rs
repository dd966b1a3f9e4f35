//! Typed TLVs of the header section, which is never encrypted: attributes that belong
//! to the packet or the path, not to a session's secrets.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use super::error::{MetadataError, Section};
use super::fields::{ControlReason, Fragment, HealthCheck, ModifyRequest, PathMetrics};
use super::tlv::{RawTlv, TLV_HEADER_LEN, UnknownTlv, fixed, types};

/// A TLV of the header section.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum HeaderTlv {
    /// Type 1.
    Fragment(Fragment),
    /// Type 8: global interface id.
    GlobalInterfaceId(u32),
    /// Type 16: Security ID (security key version), sent in cleartext.
    SecurityId(u32),
    /// Type 20 (IPv4) or 21 (IPv6): address of the hop that produced an ICMP error.
    IcmpErrorLocation(IpAddr),
    /// Type 24.
    ControlMessage(ControlReason),
    /// Type 26.
    PathMetrics(PathMetrics),
    /// Type 28.
    ModifyRequest(ModifyRequest),
    /// Type 46 in the header section.
    HealthCheck(HealthCheck),
    /// A type the codec does not know, kept byte-exact.
    Unknown(UnknownTlv),
}

impl HeaderTlv {
    /// Parses one TLV found in the header section.
    pub fn parse(tlv: &RawTlv<'_>) -> Result<Self, MetadataError> {
        let parsed = match tlv.tlv_type {
            types::FRAGMENT => HeaderTlv::Fragment(Fragment::parse(tlv)?),
            types::GLOBAL_INTERFACE_ID => {
                HeaderTlv::GlobalInterfaceId(u32::from_be_bytes(fixed(tlv)?))
            }
            types::SECURITY_ID => HeaderTlv::SecurityId(u32::from_be_bytes(fixed(tlv)?)),
            types::ICMP_ERROR_LOCATION_V4 => {
                HeaderTlv::IcmpErrorLocation(IpAddr::V4(Ipv4Addr::from(fixed::<4>(tlv)?)))
            }
            types::ICMP_ERROR_LOCATION_V6 => {
                HeaderTlv::IcmpErrorLocation(IpAddr::V6(Ipv6Addr::from(fixed::<16>(tlv)?)))
            }
            types::CONTROL_MESSAGE => {
                let [reason] = fixed::<1>(tlv)?;
                HeaderTlv::ControlMessage(ControlReason::from(reason))
            }
            types::PATH_METRICS => HeaderTlv::PathMetrics(PathMetrics::parse(tlv)?),
            types::MODIFY_REQUEST => HeaderTlv::ModifyRequest(ModifyRequest::parse(tlv)?),
            types::HEALTH_CHECK_OR_PAYLOAD_KEY => {
                let [check] = fixed::<1>(tlv)?;
                HeaderTlv::HealthCheck(HealthCheck::from(check))
            }
            tlv_type if types::is_known(tlv_type) => {
                return Err(MetadataError::WrongSection { tlv_type, section: Section::Header });
            }
            tlv_type => HeaderTlv::Unknown(UnknownTlv { tlv_type, value: tlv.value.to_vec() }),
        };
        Ok(parsed)
    }

    /// Returns the TLV type number this value is emitted with.
    pub fn tlv_type(&self) -> u16 {
        match self {
            HeaderTlv::Fragment(_) => types::FRAGMENT,
            HeaderTlv::GlobalInterfaceId(_) => types::GLOBAL_INTERFACE_ID,
            HeaderTlv::SecurityId(_) => types::SECURITY_ID,
            HeaderTlv::IcmpErrorLocation(IpAddr::V4(_)) => types::ICMP_ERROR_LOCATION_V4,
            HeaderTlv::IcmpErrorLocation(IpAddr::V6(_)) => types::ICMP_ERROR_LOCATION_V6,
            HeaderTlv::ControlMessage(_) => types::CONTROL_MESSAGE,
            HeaderTlv::PathMetrics(_) => types::PATH_METRICS,
            HeaderTlv::ModifyRequest(_) => types::MODIFY_REQUEST,
            HeaderTlv::HealthCheck(_) => types::HEALTH_CHECK_OR_PAYLOAD_KEY,
            HeaderTlv::Unknown(unknown) => unknown.tlv_type,
        }
    }

    /// Length of the TLV on the wire, type and length fields included.
    pub fn buffer_len(&self) -> usize {
        TLV_HEADER_LEN + self.value_len()
    }

    /// Checks that every field fits the wire format.
    pub(crate) fn check(&self) -> Result<(), MetadataError> {
        match self {
            HeaderTlv::Fragment(fragment) => fragment.check(),
            HeaderTlv::PathMetrics(metrics) => metrics.check(),
            HeaderTlv::ModifyRequest(request) => request.check(),
            HeaderTlv::Unknown(unknown) => unknown.check(),
            HeaderTlv::ControlMessage(ControlReason::Other(value))
                if !matches!(ControlReason::from(*value), ControlReason::Other(_)) =>
            {
                Err(MetadataError::NamedValueAsOther {
                    field: "control message reason",
                    value: *value,
                })
            }
            HeaderTlv::HealthCheck(HealthCheck::Other(value))
                if !matches!(HealthCheck::from(*value), HealthCheck::Other(_)) =>
            {
                Err(MetadataError::NamedValueAsOther { field: "health check", value: *value })
            }
            HeaderTlv::GlobalInterfaceId(_)
            | HeaderTlv::SecurityId(_)
            | HeaderTlv::IcmpErrorLocation(_)
            | HeaderTlv::ControlMessage(_)
            | HeaderTlv::HealthCheck(_) => Ok(()),
        }
    }

    fn value_len(&self) -> usize {
        match self {
            HeaderTlv::Fragment(_) => Fragment::LEN,
            HeaderTlv::GlobalInterfaceId(_) | HeaderTlv::SecurityId(_) => 4,
            HeaderTlv::IcmpErrorLocation(IpAddr::V4(_)) => 4,
            HeaderTlv::IcmpErrorLocation(IpAddr::V6(_)) => 16,
            HeaderTlv::ControlMessage(_) | HeaderTlv::HealthCheck(_) => 1,
            HeaderTlv::PathMetrics(_) => PathMetrics::LEN,
            HeaderTlv::ModifyRequest(request) => request.value_len(),
            HeaderTlv::Unknown(unknown) => unknown.value.len(),
        }
    }

    /// Writes the TLV at the start of `out`, which has room for at least `buffer_len()` bytes,
    /// and returns its length.
    pub(crate) fn emit(&self, out: &mut [u8]) -> usize {
        super::tlv::write_tlv(out, self.tlv_type(), self.value_len(), |value| match self {
            HeaderTlv::Fragment(fragment) => fragment.emit_value(value),
            HeaderTlv::GlobalInterfaceId(id) | HeaderTlv::SecurityId(id) => {
                value.copy_from_slice(&id.to_be_bytes())
            }
            HeaderTlv::IcmpErrorLocation(IpAddr::V4(address)) => {
                value.copy_from_slice(&address.octets())
            }
            HeaderTlv::IcmpErrorLocation(IpAddr::V6(address)) => {
                value.copy_from_slice(&address.octets())
            }
            HeaderTlv::ControlMessage(reason) => value[0] = u8::from(*reason),
            HeaderTlv::PathMetrics(metrics) => metrics.emit_value(value),
            HeaderTlv::ModifyRequest(request) => request.emit_value(value),
            HeaderTlv::HealthCheck(check) => value[0] = u8::from(*check),
            HeaderTlv::Unknown(unknown) => value.copy_from_slice(&unknown.value),
        })
    }
}
