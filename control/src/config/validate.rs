//! Checks across the whole model: references between elements, names that must be unique
//! across routers, and the warnings the product guide gives for ESKM set-ups.

use super::error::{
    ConfigError, ConfigErrorKind as K, ConfigWarning, ConfigWarningKind as W, Span,
};
use super::model::{Authority, Ref, ServiceRouteTarget};
use super::tree::Tree;

/// The kinds of element a reference names, each with the list that defines them.
const REFERENCED_LISTS: &[(&str, &str)] = &[
    ("security policy", "security"),
    ("tenant", "tenant"),
    ("service", "service"),
    ("peer", "peer"),
    ("router", "router"),
    ("node", "node"),
    ("network-interface", "network-interface"),
];

/// Names of the elements that the text defines but that were not lowered, because their
/// block keyword was misspelt (or a key was invalid), by the kind of element. An error was
/// reported for each already, so a reference to one of them is not reported again.
// NOTE: the names are not scoped, so a peer left out of one router also silences an
// undefined reference to a peer of that name in another router.
pub struct Unlowered {
    names: Vec<(&'static str, String)>,
}

impl Unlowered {
    /// Collects the names of the entries of `tree` that are left out of the model.
    pub fn from_tree(tree: &Tree) -> Unlowered {
        let names = REFERENCED_LISTS
            .iter()
            .flat_map(|&(kind, list)| {
                tree.unlowered_names(list).into_iter().map(move |n| (kind, n))
            })
            .collect();
        Unlowered { names }
    }

    fn contains(&self, kind: &str, name: &str) -> bool {
        self.names.iter().any(|(k, n)| *k == kind && n == name)
    }
}

/// Validates `authority` after generation, so references to generated peers resolve.
/// References to the `unlowered` elements are not reported.
pub fn validate(
    authority: &Authority,
    unlowered: &Unlowered,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) {
    let mut v = Validator { errors, warnings, unlowered };
    let security: Vec<String> =
        authority.security_policies.iter().map(|s| s.name.clone()).collect();
    let tenants: Vec<String> = authority.tenants.iter().map(|t| t.name.clone()).collect();
    let services: Vec<String> = authority.services.iter().map(|s| s.name.clone()).collect();
    let routers: Vec<String> = authority.routers.iter().map(|r| r.name.clone()).collect();

    for t in &authority.tenants {
        v.check(t.security.as_ref(), "security", "security policy", &security);
    }
    for s in &authority.services {
        v.check(s.security.as_ref(), "security", "security policy", &security);
        for p in &s.access_policies {
            v.check(Some(&p.source), "access-policy", "tenant", &tenants);
        }
    }

    for router in &authority.routers {
        let peers: Vec<String> = router.peers.iter().map(|p| p.name.clone()).collect();
        let nodes: Vec<String> = router.nodes.iter().map(|n| n.name.clone()).collect();
        v.check(
            router.inter_node_security.as_ref(),
            "inter-node-security",
            "security policy",
            &security,
        );

        for route in &router.service_routes {
            v.check(Some(&route.service_name), "service-name", "service", &services);
            match &route.target {
                ServiceRouteTarget::Peer(p) => v.check(Some(p), "peer", "peer", &peers),
                ServiceRouteTarget::NextHops(hops) => {
                    for hop in hops {
                        v.check(Some(&hop.node_name), "next-hop", "node", &nodes);
                        let Some(node) = router.nodes.iter().find(|n| n.name == hop.node_name.name)
                        else {
                            continue;
                        };
                        let interfaces: Vec<String> = node
                            .device_interfaces
                            .iter()
                            .flat_map(|d| d.network_interfaces.iter().map(|n| n.name.clone()))
                            .collect();
                        v.check(Some(&hop.interface), "next-hop", "network-interface", &interfaces);
                    }
                }
            }
        }

        for peer in router.peers.iter().filter(|p| !p.generated) {
            let local =
                peer.authority_name.as_ref().is_none_or(|a| Some(a) == authority.name.as_ref());
            if !local {
                continue;
            }
            let remote = Ref { name: peer.remote_router().to_owned(), span: peer.span };
            v.check(Some(&remote), "peer", "router", &routers);
            let remote_router = authority.routers.iter().find(|r| r.name == remote.name);
            if let (Some(configured), Some(Some(actual))) =
                (&peer.peering_common_name, remote_router.map(|r| &r.peering_common_name))
                && configured != actual
            {
                v.warn(
                    peer.span,
                    W::PeerCommonNameMismatch {
                        peer: peer.name.clone(),
                        configured: configured.clone(),
                        remote: actual.clone(),
                    },
                );
            }
        }

        for node in &router.nodes {
            for interface in node.device_interfaces.iter().flat_map(|d| &d.network_interfaces) {
                v.check(interface.tenant.as_ref(), "tenant", "tenant", &tenants);
                v.check(
                    interface.inter_router_security.as_ref(),
                    "inter-router-security",
                    "security policy",
                    &security,
                );
                for adjacency in &interface.adjacencies {
                    v.check(Some(&adjacency.peer), "adjacency", "peer", &peers);
                    v.check(
                        adjacency.inter_router_security.as_ref(),
                        "inter-router-security",
                        "security policy",
                        &security,
                    );
                }
            }
        }
    }

    // Each router's peering-common-name identifies it in certificates, so it must be unique.
    for (i, router) in authority.routers.iter().enumerate() {
        let Some(name) = &router.peering_common_name else { continue };
        let earlier =
            authority.routers[..i].iter().find(|r| r.peering_common_name.as_ref() == Some(name));
        if let Some(other) = earlier {
            v.error(
                router.span,
                K::DuplicatePeeringCommonName {
                    name: name.clone(),
                    router: router.name.clone(),
                    other_router: other.name.clone(),
                },
            );
        }
    }
}

struct Validator<'a> {
    errors: &'a mut Vec<ConfigError>,
    warnings: &'a mut Vec<ConfigWarning>,
    unlowered: &'a Unlowered,
}

impl Validator<'_> {
    fn error(&mut self, span: Span, kind: K) {
        self.errors.push(ConfigError { span, kind });
    }

    fn warn(&mut self, span: Span, kind: W) {
        self.warnings.push(ConfigWarning { span, kind });
    }

    fn check(
        &mut self,
        reference: Option<&Ref>,
        keyword: &str,
        kind: &'static str,
        defined: &[String],
    ) {
        let Some(r) = reference else { return };
        if defined.contains(&r.name) || self.unlowered.contains(kind, &r.name) {
            return;
        }
        self.error(
            r.span,
            K::UndefinedReference {
                keyword: keyword.to_owned(),
                kind,
                name: r.name.clone(),
                defined: defined.to_vec(),
            },
        );
    }
}

#[cfg(test)]
mod tests {
    use super::super::error_messages;

    /// Returns a configuration whose security policy s1 opens with `security` and whose
    /// router r1 opens with `router` (line 8), each as given. Tenant t1 and router r2
    /// refer to them.
    fn policy_and_router(security: &str, router: &str) -> String {
        format!(
            "config\nauthority\n{security}\nexit\ntenant t1\nsecurity s1\nexit\n{router}\n\
             exit\nrouter r2\npeer r1\nrouter-name r1\nexit\nnode n2\n\
             device-interface d2\ninterface-name eth2\nnetwork-interface w\n\
             adjacency 10.0.0.1 r1\n"
        )
    }

    #[test]
    fn misspelt_router_keyword_one_error() {
        let errors = error_messages(&policy_and_router("security s1", "routr r1"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("line 8, column 1: unknown keyword routr"), "{}", errors[0]);
    }

    #[test]
    fn misspelt_router_named_inside_one_error() {
        let errors = error_messages(&policy_and_router("security s1", "routr\nname r1"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("line 8, column 1: unknown keyword routr"), "{}", errors[0]);
    }

    #[test]
    fn misspelt_policy_keyword_one_error() {
        let errors = error_messages(&policy_and_router("securty s1", "router r1"));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].starts_with("line 3, column 1: unknown keyword securty"),
            "{}",
            errors[0]
        );
    }

    #[test]
    fn misspelt_peer_keyword_one_error() {
        let text = policy_and_router("security s1", "router r1").replace("peer r1\n", "per r1\n");
        let errors = error_messages(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].starts_with("line 11, column 1: unknown keyword per"), "{}", errors[0]);
    }

    #[test]
    fn undefined_router_still_reported() {
        let errors = error_messages(&policy_and_router("security s1", "router r3"));
        assert_eq!(
            errors,
            ["line 11, column 1: peer r1: no router r1 is defined (defined: r3, r2)"]
        );
    }
}
