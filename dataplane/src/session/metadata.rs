//! The metadata a session sends, stored so that sending allocates nothing and the TLVs
//! that name the route (tenant, service, router) are kept once per route, not once per
//! session.

use std::collections::HashMap;
use std::sync::Arc;

use crate::epoch::{KeyEpoch, ServiceId, TenantId};
use crate::packet::PayloadTlv;
use crate::sealed::PayloadTlvs;

/// The stored part of the metadata a session sends. On the wire the TLVs follow
/// [`Session::metadata_head`] in this order: the route's shared TLVs, then `last`. Both
/// are built when the session starts or its payload key changes, so sending allocates
/// nothing.
#[derive(Debug)]
#[cfg_attr(test, derive(Clone))]
pub struct SessionMetadata {
    /// The TLVs that every session of one tenant and service sends from this router
    /// (tenant, service and source router names, and whether the session is encrypted),
    /// stored once and shared by those sessions. Empty on the egress.
    pub route: Option<Arc<[PayloadTlv]>>,
    /// The last TLV: the payload key on the ingress, disable-forward-metadata on the
    /// egress.
    pub last: PayloadTlv,
}

impl SessionMetadata {
    /// Returns the payload TLVs in wire order, starting with `head` from
    /// [`Session::metadata_head`].
    pub fn tlvs<'a>(&'a self, head: &'a [PayloadTlv]) -> PayloadTlvs<'a> {
        let route = self.route.as_deref().unwrap_or_default();
        PayloadTlvs::new([head, route, std::slice::from_ref(&self.last)])
    }
}

/// The shared route TLVs of one engine, by tenant and service. An entry is rebuilt when
/// the epoch's names or the service's encryption policy differ from those it was built
/// from, so a session always starts with the current names.
#[derive(Debug, Default)]
#[cfg_attr(test, derive(Clone))]
pub struct RouteTlvs {
    by_route: HashMap<(TenantId, ServiceId), Arc<[PayloadTlv]>>,
}

impl RouteTlvs {
    /// Returns the route TLVs for `tenant` and `service` in `epoch`, building them when
    /// missing or stale: tenant, service, source router, then session-encrypted when the
    /// service encrypts.
    pub fn tlvs(
        &mut self,
        epoch: &KeyEpoch,
        tenant: TenantId,
        service: ServiceId,
    ) -> Arc<[PayloadTlv]> {
        let tenant_name = epoch.tenants.get(usize::from(tenant)).map_or("", String::as_str);
        let service_entry = epoch.services.get(usize::from(service));
        let service_name = service_entry.map_or("", |entry| entry.name.as_str());
        let encrypt = service_entry.is_some_and(|entry| entry.encrypt);

        if let Some(tlvs) = self.by_route.get(&(tenant, service))
            && current(tlvs, tenant_name, service_name, &epoch.router, encrypt)
        {
            return Arc::clone(tlvs);
        }
        let mut tlvs = vec![
            PayloadTlv::Tenant(tenant_name.to_owned()),
            PayloadTlv::Service(service_name.to_owned()),
            PayloadTlv::SourceRouter(epoch.router.clone()),
        ];
        if encrypt {
            tlvs.push(PayloadTlv::SessionEncrypted);
        }
        let tlvs: Arc<[PayloadTlv]> = tlvs.into();
        self.by_route.insert((tenant, service), Arc::clone(&tlvs));
        tlvs
    }
}

/// Returns whether `tlvs` were built from these names and policy.
fn current(tlvs: &[PayloadTlv], tenant: &str, service: &str, router: &str, encrypt: bool) -> bool {
    match tlvs {
        [PayloadTlv::Tenant(t), PayloadTlv::Service(s), PayloadTlv::SourceRouter(r), rest @ ..] => {
            t == tenant && s == service && r == router && rest.len() == usize::from(encrypt)
        }
        _ => false,
    }
}
