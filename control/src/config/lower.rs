//! Turns the generic tree into the typed model: resolves list keys, applies defaults and
//! checks what one block can check alone (key leaves, duplicate entries, address families,
//! key lengths, device bindings).

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::Duration;

use svr_dataplane::shard::MAX_WORKERS;

use super::dataplane::{
    MAX_IFNAME_BYTES, check_eal_arguments, full_pci_address, is_linux_ifname, is_pci_address,
    is_vdev, vdev_interface, vdev_name,
};
use super::error::{ConfigError, ConfigErrorKind as K, ConfigWarning, ConfigWarningKind, Span};
use super::model::*;
use super::tree::{NodeId, Tree};
use super::value::Value;

/// Lowers the tree; `None` when there is no `authority` block at all.
pub fn lower(
    tree: &Tree,
    errors: &mut Vec<ConfigError>,
    warnings: &mut Vec<ConfigWarning>,
) -> Option<Authority> {
    let mut lower = Lower { tree, errors, warnings };
    let authority = lower.tree.children_named(Tree::ROOT, "authority").next().map(|(id, _)| id);
    let Some(id) = authority else {
        lower.error(
            Span::new(1, 1),
            K::MissingLeaf { block: "config".into(), keyword: "authority" },
        );
        return None;
    };
    Some(lower.authority(id))
}

/// The devices bound by the device-interfaces of one node so far, keyed by the kind and
/// name of the device (the Linux interface, the `vdev` device name, the full PCI address),
/// with what bound each first.
#[derive(Default)]
struct BoundDevices {
    first: HashMap<(DeviceKind, String), Binding>,
}

/// A kind of device that a device-interface binds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
enum DeviceKind {
    /// Named by `interface-name`, or by the `iface=` of a `vdev`.
    LinuxInterface,
    /// The device name of a `vdev`.
    Vdev,
    Pci,
}

/// The first binding of a device: the device-interface, its keyword and the keyword's line.
struct Binding {
    device_interface: String,
    keyword: &'static str,
    span: Span,
}

struct Lower<'a> {
    tree: &'a Tree,
    errors: &'a mut Vec<ConfigError>,
    warnings: &'a mut Vec<ConfigWarning>,
}

/// A list entry with its keys resolved.
struct Entry {
    id: NodeId,
    keys: Vec<Value>,
    span: Span,
}

impl Entry {
    fn key_str(&self, i: usize) -> String {
        match self.keys.get(i) {
            Some(Value::Str(s)) => s.clone(),
            Some(Value::Ip(ip)) => ip.to_string(),
            Some(Value::Uint(n)) => n.to_string(),
            Some(Value::Word(w)) => (*w).to_owned(),
            _ => String::new(),
        }
    }
}

impl<'a> Lower<'a> {
    fn error(&mut self, span: Span, kind: K) {
        self.errors.push(ConfigError { span, kind });
    }

    fn warn(&mut self, span: Span, kind: ConfigWarningKind) {
        self.warnings.push(ConfigWarning { span, kind });
    }

    // ---- tree access -------------------------------------------------------------------

    fn leaf(&self, id: NodeId, keyword: &str) -> Option<(&'a Value, Span)> {
        let tree: &'a Tree = self.tree;
        tree.children_named(id, keyword)
            .find_map(|(_, n)| n.value.as_ref().map(|(_, v)| (v, n.span)))
    }

    fn leaf_values(&self, id: NodeId, keyword: &str) -> Vec<(Value, Span)> {
        self.tree
            .children_named(id, keyword)
            .filter_map(|(_, n)| n.value.as_ref().map(|(_, v)| (v.clone(), n.span)))
            .collect()
    }

    fn string(&self, id: NodeId, keyword: &str) -> Option<String> {
        match self.leaf(id, keyword) {
            Some((Value::Str(s), _)) => Some(s.clone()),
            _ => None,
        }
    }

    fn reference(&self, id: NodeId, keyword: &str) -> Option<Ref> {
        match self.leaf(id, keyword) {
            Some((Value::Str(s), span)) => Some(Ref { name: s.clone(), span }),
            _ => None,
        }
    }

    fn boolean(&self, id: NodeId, keyword: &str, default: bool) -> bool {
        match self.leaf(id, keyword) {
            Some((Value::Bool(b), _)) => *b,
            _ => default,
        }
    }

    fn word(&self, id: NodeId, keyword: &str) -> Option<&'static str> {
        match self.leaf(id, keyword) {
            Some((Value::Word(w), _)) => Some(w),
            _ => None,
        }
    }

    fn uint(&self, id: NodeId, keyword: &str) -> Option<u64> {
        match self.leaf(id, keyword) {
            Some((Value::Uint(n), _)) => Some(*n),
            _ => None,
        }
    }

    fn ip(&self, id: NodeId, keyword: &str) -> Option<IpAddr> {
        match self.leaf(id, keyword) {
            Some((Value::Ip(ip), _)) => Some(*ip),
            _ => None,
        }
    }

    fn seconds(&self, id: NodeId, keyword: &str) -> Option<Duration> {
        self.uint(id, keyword).map(Duration::from_secs)
    }

    fn millis(&self, id: NodeId, keyword: &str) -> Option<Duration> {
        self.uint(id, keyword).map(Duration::from_millis)
    }

    fn small(&self, id: NodeId, keyword: &str) -> Option<u8> {
        self.uint(id, keyword).and_then(|n| u8::try_from(n).ok())
    }

    /// Tells whether `keyword` is written under `id`, even with a value that failed its
    /// check (already reported), so that it is not reported missing as well.
    fn present(&self, id: NodeId, keyword: &str) -> bool {
        self.tree.children_named(id, keyword).next().is_some()
    }

    fn block(&self, id: NodeId, keyword: &str) -> Option<NodeId> {
        self.tree.children_named(id, keyword).next().map(|(c, _)| c)
    }

    /// Collects the entries of list `keyword` under `id` with their keys resolved, and reports
    /// duplicates.
    fn entries(&mut self, id: NodeId, keyword: &str) -> Vec<Entry> {
        let mut out: Vec<Entry> = Vec::new();
        // The first entry's span for each key, so a duplicate is found in constant time.
        let mut seen: HashMap<Vec<Value>, Span> = HashMap::new();
        let ids: Vec<NodeId> = self.tree.children_named(id, keyword).map(|(c, _)| c).collect();
        for entry_id in ids {
            let Some(entry) = self.resolve_keys(entry_id) else { continue };
            if let Some(&first) = seen.get(&entry.keys) {
                let key =
                    (0..entry.keys.len()).map(|i| entry.key_str(i)).collect::<Vec<_>>().join(" ");
                self.error(entry.span, K::DuplicateEntry { list: keyword.to_owned(), key, first });
                continue;
            }
            seen.insert(entry.keys.clone(), entry.span);
            out.push(entry);
        }
        out
    }

    fn resolve_keys(&mut self, id: NodeId) -> Option<Entry> {
        let tree: &'a Tree = self.tree;
        let node = tree.node(id);
        if !node.valid {
            return None;
        }
        let super::schema::Kind::List { keys: names, .. } = node.schema.kind else { return None };
        let mut keys = Vec::new();
        let mut complete = true;
        for (i, name) in names.iter().enumerate() {
            let outside = node.keys.get(i);
            let inside = self.leaf(id, name);
            match (outside, inside) {
                (Some((token, o)), Some((v, span))) => {
                    if o != v {
                        let inside_text = self.leaf_text(id, name);
                        self.error(
                            span,
                            K::KeyMismatch {
                                list: node.schema.name.to_owned(),
                                key: name,
                                inside: inside_text,
                                outside: token.text.clone(),
                            },
                        );
                    }
                    keys.push(o.clone());
                }
                (Some((_, o)), None) => keys.push(o.clone()),
                (None, Some((v, _))) => keys.push(v.clone()),
                (None, None) => {
                    complete = false;
                    if !self.present(id, name) {
                        self.error(node.span, K::MissingKey { list: node.describe(), key: name });
                    }
                }
            }
        }
        complete.then_some(Entry { id, keys, span: node.span })
    }

    // ---- authority ---------------------------------------------------------------------

    fn authority(&mut self, id: NodeId) -> Authority {
        let mut a = Authority {
            name: self.string(id, "name"),
            enhanced_security_key_management: self.boolean(
                id,
                "enhanced-security-key-management",
                false,
            ),
            ..Authority::default()
        };
        if let Some(skm) = self.block(id, "security-key-management") {
            a.security_key_management = self.security_key_management(skm);
        }
        for e in self.entries(id, "trusted-ca-certificate") {
            if let Some(c) = self.certificate(&e, "trusted-ca-certificate") {
                a.trusted_ca_certificates.push(c);
            }
        }
        for e in self.entries(id, "client-certificate") {
            if let Some(c) = self.certificate(&e, "client-certificate") {
                a.client_certificates.push(c);
            }
        }
        for e in self.entries(id, "certificate-revocation-list") {
            a.certificate_revocation_lists.push(CertificateRevocationList {
                url: e.key_str(0),
                polling_interval: self.uint(e.id, "polling-interval").map_or(hours(24), hours),
                backoff_interval: self
                    .seconds(e.id, "backoff-interval")
                    .unwrap_or(Duration::from_secs(60)),
                span: e.span,
            });
        }
        for e in self.entries(id, "security") {
            a.security_policies.push(self.security_policy(&e));
        }
        for e in self.entries(id, "tenant") {
            a.tenants.push(Tenant {
                name: e.key_str(0),
                description: self.string(e.id, "description"),
                security: self.reference(e.id, "security"),
                span: e.span,
            });
        }
        for e in self.entries(id, "service") {
            a.services.push(self.service(&e));
        }
        for e in self.entries(id, "router") {
            a.routers.push(self.router(&e));
        }

        if a.enhanced_security_key_management {
            let eskm_span = self
                .leaf(id, "enhanced-security-key-management")
                .map_or(Span::default(), |(_, s)| s);
            if a.trusted_ca_certificates.is_empty() {
                self.warn(eskm_span, ConfigWarningKind::SelfSigned);
            }
            for router in a.routers.iter().filter(|r| r.peering_common_name.is_none()) {
                let router_name = router.name.clone();
                self.warn(
                    router.span,
                    ConfigWarningKind::MissingPeeringCommonName { router: router_name },
                );
            }
        }
        a
    }

    fn security_key_management(&mut self, id: NodeId) -> SecurityKeyManagement {
        let d = SecurityKeyManagement::default();
        let rekey = |l: &Self, kw| match l.leaf(id, kw) {
            Some((Value::Word("never"), _)) => Some(RekeyInterval::Never),
            Some((Value::Uint(h), _)) => Some(RekeyInterval::Every(hours(*h))),
            _ => None,
        };
        SecurityKeyManagement {
            payload_key_rekey_interval: rekey(self, "payload-key-rekey-interval")
                .unwrap_or(d.payload_key_rekey_interval),
            peer_key_rekey_interval: rekey(self, "peer-key-rekey-interval")
                .unwrap_or(d.peer_key_rekey_interval),
            peer_key_retransmit_interval: self
                .seconds(id, "peer-key-retransmit-interval")
                .unwrap_or(d.peer_key_retransmit_interval),
            peer_key_timeout: self.seconds(id, "peer-key-timeout").unwrap_or(d.peer_key_timeout),
            invalid_certificate_behavior: match self.word(id, "invalid-certificate-behavior") {
                Some("fail-hard") => InvalidCertificateBehavior::FailHard,
                _ => InvalidCertificateBehavior::FailSoft,
            },
            key_exchange_algorithm: self
                .block(id, "key-exchange-algorithm")
                .map(|c| self.key_exchange(c, "key-exchange-algorithm"))
                .unwrap_or_default(),
        }
    }

    /// Reads a key-exchange choice block; the first case written wins (a second one is an
    /// error reported by the parser).
    fn key_exchange(&mut self, id: NodeId, keyword: &'static str) -> KeyExchangeAlgorithm {
        let Some(&case) = self.tree.node(id).children.first() else {
            return KeyExchangeAlgorithm::default();
        };
        let dh = match self.word(case, "dh-key-size") {
            Some("1024") => DhKeySize::Bits1024,
            Some("4096") => DhKeySize::Bits4096,
            _ => DhKeySize::Bits2048,
        };
        let ml_kem = match self.word(case, "ml-kem-key-size") {
            Some("512") => MlKemKeySize::MlKem512,
            Some("1024") => MlKemKeySize::MlKem1024,
            _ => MlKemKeySize::MlKem768,
        };
        let node = self.tree.node(case);
        match node.keyword() {
            "ml-kem" => {
                let span = node.span;
                self.warn(span, ConfigWarningKind::MlKemNotFips { keyword });
                KeyExchangeAlgorithm::MlKem { ml_kem }
            }
            "diffie-hellman-ml-kem" => KeyExchangeAlgorithm::DiffieHellmanMlKem { dh, ml_kem },
            _ => KeyExchangeAlgorithm::DiffieHellman { dh },
        }
    }

    fn certificate(&mut self, e: &Entry, list: &str) -> Option<Certificate> {
        let content = self.string(e.id, "content");
        let file = self.string(e.id, "file");
        let source = match (content, file) {
            (Some(_), Some(_)) => {
                let span = self.leaf(e.id, "file").map_or(e.span, |(_, s)| s);
                self.error(span, K::Conflict { keyword: "file".into(), other: "content" });
                return None;
            }
            (Some(c), None) => CertificateSource::Content(c),
            (None, Some(f)) => CertificateSource::File(f),
            (None, None) => {
                let block = format!("{list} {}", e.key_str(0));
                self.error(e.span, K::MissingOneOf { block, one_of: &["content", "file"] });
                return None;
            }
        };
        let validation_mode = match self.word(e.id, "validation-mode") {
            Some("warn") => ValidationMode::Warn,
            _ => ValidationMode::Strict,
        };
        Some(Certificate { name: e.key_str(0), source, validation_mode, span: e.span })
    }

    fn security_policy(&mut self, e: &Entry) -> SecurityPolicy {
        let encryption_cipher = match self.word(e.id, "encryption-cipher") {
            Some("aes-cbc-256") => EncryptionCipher::AesCbc256,
            _ => EncryptionCipher::AesCbc128,
        };
        let key_len = encryption_cipher.key_len();
        let cipher_name = self.word(e.id, "encryption-cipher").unwrap_or("aes-cbc-128");
        SecurityPolicy {
            name: e.key_str(0),
            description: self.string(e.id, "description"),
            encrypt: self.boolean(e.id, "encrypt", true),
            encryption_cipher,
            encryption_key: self.secret(e.id, "encryption-key", Some((key_len, cipher_name))),
            encryption_iv: self.secret(e.id, "encryption-iv", Some((16, "an AES block"))),
            hmac: self.boolean(e.id, "hmac", true),
            hmac_cipher: match self.word(e.id, "hmac-cipher") {
                Some("sha1") => HmacCipher::Sha1,
                Some("sha256-128") => HmacCipher::Sha256_128,
                Some("sha384") => HmacCipher::Sha384,
                Some("sha512") => HmacCipher::Sha512,
                _ => HmacCipher::Sha256,
            },
            hmac_key: self.secret(e.id, "hmac-key", None),
            hmac_mode: match self.word(e.id, "hmac-mode") {
                Some("disabled") => HmacMode::Disabled,
                Some("regular") => HmacMode::Regular,
                _ => HmacMode::TimeBased,
            },
            adaptive_encryption: self.boolean(e.id, "adaptive-encryption", true),
            span: e.span,
        }
    }

    /// Decodes a hex key leaf; `length` is the required byte count and what it is for.
    // NOTE: only the decoded bytes are wiped on drop; the hex text stays in the caller's
    // input and in the parse tree until their memory is reused.
    fn secret(
        &mut self,
        id: NodeId,
        keyword: &'static str,
        length: Option<(usize, &str)>,
    ) -> Option<SecretBytes> {
        let (Value::Str(text), span) = self.leaf(id, keyword)? else { return None };
        let bytes = decode_hex(text);
        let allowed = match (&bytes, length) {
            (Some(b), Some((n, _))) if b.len() == n => return bytes.map(SecretBytes::new),
            (Some(b), None) if !b.is_empty() => return bytes.map(SecretBytes::new),
            (_, Some((n, what))) => format!("{} hex digits for {what}", n * 2),
            (_, None) => "an even number of hex digits, at least 2".to_owned(),
        };
        self.error(span, K::InvalidSecret { keyword, allowed });
        None
    }

    fn service(&mut self, e: &Entry) -> Service {
        let addresses = self
            .leaf_values(e.id, "address")
            .into_iter()
            .filter_map(|(v, _)| match v {
                Value::Prefix(p) => Some(p),
                _ => None,
            })
            .collect();
        let mut transports = Vec::new();
        for t in self.entries(e.id, "transport") {
            let protocol = match t.keys.first() {
                Some(Value::Word("udp")) => Protocol::Udp,
                Some(Value::Word("icmp")) => Protocol::Icmp,
                _ => Protocol::Tcp,
            };
            let port_ranges = self.port_ranges(t.id);
            if protocol == Protocol::Icmp && !port_ranges.is_empty() {
                self.error(
                    t.span,
                    K::Inconsistent {
                        keyword: "transport".into(),
                        value: "icmp".into(),
                        reason: "icmp has no ports, so it takes no port-range".into(),
                    },
                );
            }
            transports.push(Transport { protocol, port_ranges });
        }
        let mut access_policies = Vec::new();
        for p in self.entries(e.id, "access-policy") {
            let source_span = self.tree.node(p.id).keys.first().map_or(p.span, |(t, _)| t.span);
            access_policies.push(AccessPolicy {
                source: Ref { name: p.key_str(0), span: source_span },
                permission: match self.word(p.id, "permission") {
                    Some("deny") => Permission::Deny,
                    _ => Permission::Allow,
                },
            });
        }
        Service {
            name: e.key_str(0),
            description: self.string(e.id, "description"),
            addresses,
            transports,
            access_policies,
            security: self.reference(e.id, "security"),
            span: e.span,
        }
    }

    fn port_ranges(&mut self, id: NodeId) -> Vec<PortRange> {
        let mut out = Vec::new();
        for r in self.entries(id, "port-range") {
            let start = match r.keys.first() {
                Some(Value::Uint(n)) => u16::try_from(*n).unwrap_or(u16::MAX),
                _ => continue,
            };
            let end =
                self.uint(r.id, "end-port").map_or(start, |n| u16::try_from(n).unwrap_or(u16::MAX));
            if end < start {
                let span = self.leaf(r.id, "end-port").map_or(r.span, |(_, s)| s);
                self.error(
                    span,
                    K::Inconsistent {
                        keyword: "end-port".into(),
                        value: end.to_string(),
                        reason: format!("must not be below start-port {start}"),
                    },
                );
                continue;
            }
            out.push(PortRange { start, end });
        }
        out
    }

    // ---- routers -----------------------------------------------------------------------

    fn router(&mut self, e: &Entry) -> Router {
        let id = e.id;
        let mut router = Router {
            name: e.key_str(0),
            description: self.string(id, "description"),
            location: self.string(id, "location"),
            inter_node_security: self.reference(id, "inter-node-security"),
            peering_common_name: self.string(id, "peering-common-name"),
            ml_kem_keygen_priority: self.small(id, "ml-kem-keygen-priority"),
            key_exchange_algorithm_override: self
                .block(id, "key-exchange-algorithm-override")
                .map(|c| self.key_exchange(c, "key-exchange-algorithm-override")),
            bfd: self.bfd(id),
            service_routes: Vec::new(),
            peers: Vec::new(),
            nodes: Vec::new(),
            span: e.span,
        };
        for s in self.entries(id, "service-route") {
            if let Some(route) = self.service_route(&s) {
                router.service_routes.push(route);
            }
        }
        for p in self.entries(id, "peer") {
            router.peers.push(Peer {
                name: p.key_str(0),
                authority_name: self.string(p.id, "authority-name"),
                router_name: self.string(p.id, "router-name"),
                description: self.string(p.id, "description"),
                peering_common_name: self.string(p.id, "peering-common-name"),
                ml_kem_keygen_priority: self.small(p.id, "ml-kem-keygen-priority"),
                key_exchange_algorithm_override: self
                    .block(p.id, "key-exchange-algorithm-override")
                    .map(|c| self.key_exchange(c, "key-exchange-algorithm-override")),
                generated: self.boolean(p.id, "generated", false),
                bfd: self.bfd(p.id),
                span: p.span,
            });
        }
        for n in self.entries(id, "node") {
            router.nodes.push(self.node(&n));
        }
        router
    }

    fn service_route(&mut self, e: &Entry) -> Option<ServiceRoute> {
        let block = format!("service-route {}", e.key_str(0));
        let Some(service_name) = self.reference(e.id, "service-name") else {
            if !self.present(e.id, "service-name") {
                self.error(e.span, K::MissingLeaf { block, keyword: "service-name" });
            }
            return None;
        };
        let peer = self.reference(e.id, "peer");
        let mut next_hops = Vec::new();
        for h in self.entries(e.id, "next-hop") {
            let node = self.tree.node(h.id);
            let key_span = |i: usize| node.keys.get(i).map_or(h.span, |(t, _)| t.span);
            let (node_span, interface_span) = (key_span(0), key_span(1));
            next_hops.push(NextHop {
                node_name: Ref { name: h.key_str(0), span: node_span },
                interface: Ref { name: h.key_str(1), span: interface_span },
                gateway_ip: self.ip(h.id, "gateway-ip"),
            });
        }
        let target = match (peer, next_hops.is_empty()) {
            (Some(p), true) => ServiceRouteTarget::Peer(p),
            (None, false) => ServiceRouteTarget::NextHops(next_hops),
            (Some(p), false) => {
                self.error(p.span, K::Conflict { keyword: "peer".into(), other: "next-hop" });
                return None;
            }
            (None, true) => {
                if !self.present(e.id, "next-hop") {
                    self.error(e.span, K::MissingOneOf { block, one_of: &["peer", "next-hop"] });
                }
                return None;
            }
        };
        Some(ServiceRoute { name: e.key_str(0), service_name, target, span: e.span })
    }

    fn bfd(&mut self, parent: NodeId) -> BfdOverrides {
        let Some(id) = self.block(parent, "bfd") else { return BfdOverrides::default() };
        let enabled = |w: Option<&'static str>| w.map(|w| w == "enabled");
        let o = BfdOverrides {
            state: enabled(self.word(id, "state")),
            desired_tx_interval: self.millis(id, "desired-tx-interval"),
            required_min_rx_interval: self.millis(id, "required-min-rx-interval"),
            required_min_echo_interval: self.millis(id, "required-min-echo-interval"),
            multiplier: self.small(id, "multiplier"),
            link_test_interval: self.seconds(id, "link-test-interval"),
            link_test_length: self.small(id, "link-test-length"),
            hold_down_time: self.seconds(id, "hold-down-time"),
            dynamic_damping: enabled(self.word(id, "dynamic-damping")),
            maximum_hold_down_time: self.seconds(id, "maximum-hold-down-time"),
            authentication_type: self.word(id, "authentication-type").map(|w| match w {
                "simple" => BfdAuthentication::Simple,
                _ => BfdAuthentication::Sha256,
            }),
        };
        if let (Some(hold), Some(max)) = (o.hold_down_time, o.maximum_hold_down_time)
            && max <= hold
        {
            let span = self.leaf(id, "maximum-hold-down-time").map_or(Span::default(), |(_, s)| s);
            self.error(
                span,
                K::Inconsistent {
                    keyword: "maximum-hold-down-time".into(),
                    value: max.as_secs().to_string(),
                    reason: format!("must be above hold-down-time {}", hold.as_secs()),
                },
            );
        }
        o
    }

    fn node(&mut self, e: &Entry) -> Node {
        let id = e.id;
        let dataplane = self.block(id, "dataplane").map(|d| self.dataplane(d)).unwrap_or_default();
        let mut device_interfaces = Vec::new();
        let mut network_interface_names: Vec<(String, Span)> = Vec::new();
        let mut bound = BoundDevices::default();
        for d in self.entries(id, "device-interface") {
            let device = self.device_interface(&d, dataplane.driver);
            self.bind_devices(&mut bound, d.id, &device);
            for ni in &device.network_interfaces {
                if let Some((_, first)) =
                    network_interface_names.iter().find(|(n, _)| *n == ni.name)
                {
                    let first = *first;
                    self.error(
                        ni.span,
                        K::DuplicateEntry {
                            list: "network-interface".into(),
                            key: ni.name.clone(),
                            first,
                        },
                    );
                }
                network_interface_names.push((ni.name.clone(), ni.span));
            }
            device_interfaces.push(device);
        }
        if let Some(dataplane_id) = self.block(id, "dataplane") {
            let pci_ports = device_interfaces.iter().any(|d| d.pci_address.is_some());
            self.check_eal(dataplane_id, pci_ports);
        }
        Node {
            name: e.key_str(0),
            description: self.string(id, "description"),
            role: match self.word(id, "role") {
                Some("control") => NodeRole::Control,
                Some("slice") => NodeRole::Slice,
                Some("conductor") => NodeRole::Conductor,
                _ => NodeRole::Combo,
            },
            dataplane,
            device_interfaces,
            span: e.span,
        }
    }

    fn dataplane(&mut self, id: NodeId) -> Dataplane {
        Dataplane {
            driver: match self.word(id, "driver") {
                Some("dpdk") => Driver::Dpdk,
                Some("af-xdp") => Driver::AfXdp,
                _ => Driver::Auto,
            },
            polling_mode: match self.word(id, "polling-mode") {
                Some("busy") => PollingMode::Busy,
                _ => PollingMode::Adaptive,
            },
            worker_cores: self.worker_cores(id),
            eal_arguments: self
                .leaf_values(id, "eal-argument")
                .into_iter()
                .filter_map(|(v, _)| match v {
                    Value::Str(s) => Some(s),
                    _ => None,
                })
                .collect(),
        }
    }

    /// Reads `worker-cores`, which may name at most one CPU per worker the dataplane can run.
    fn worker_cores(&mut self, id: NodeId) -> Vec<u16> {
        let Some((Value::Cpus(cores), span)) = self.leaf(id, "worker-cores") else {
            return Vec::new();
        };
        if cores.len() > MAX_WORKERS {
            let value = self.leaf_text(id, "worker-cores");
            self.error(
                span,
                K::InvalidValue {
                    keyword: "worker-cores".into(),
                    value,
                    allowed: format!(
                        "at most {MAX_WORKERS} CPUs, one per worker (this list names {})",
                        cores.len()
                    ),
                },
            );
        }
        cores.clone()
    }

    /// Reports every `eal-argument` of the dataplane block `id` that DPDK's EAL rejects or
    /// that would end svrd.
    fn check_eal(&mut self, id: NodeId, pci_ports: bool) {
        let arguments = self.leaf_values(id, "eal-argument");
        let texts: Vec<&str> = arguments
            .iter()
            .map(|(value, _)| match value {
                Value::Str(text) => text.as_str(),
                _ => "",
            })
            .collect();
        for problem in check_eal_arguments(&texts, pci_ports) {
            let (_, span) = arguments[problem.index];
            self.error(
                span,
                K::Inconsistent {
                    keyword: "eal-argument".into(),
                    value: texts[problem.index].to_owned(),
                    reason: problem.reason,
                },
            );
        }
    }

    /// Reports a device-interface whose Linux interface, `vdev` device or PCI address an
    /// earlier device-interface of the node already binds. A Linux interface is bound by
    /// `interface-name` and by the `iface=` of a `vdev`, which may name the same interface
    /// within one device-interface: DPDK opens it through the vdev, or AF_XDP as a fallback.
    fn bind_devices(&mut self, bound: &mut BoundDevices, id: NodeId, device: &DeviceInterface) {
        let vdev = device.vdev.as_deref();
        let vdev_iface = vdev.filter(|v| is_vdev(v)).and_then(vdev_interface);
        let bindings = [
            (DeviceKind::LinuxInterface, "interface-name", device.interface_name.clone()),
            (DeviceKind::Vdev, "vdev", vdev.map(|v| vdev_name(v).to_owned())),
            (DeviceKind::LinuxInterface, "vdev", vdev_iface.map(str::to_owned)),
            (DeviceKind::Pci, "pci-address", device.pci_address.as_deref().map(full_pci_address)),
        ];
        let mut own: Vec<(DeviceKind, String, Binding)> = Vec::new();
        let mut reported: Vec<&'static str> = Vec::new();
        for (kind, keyword, key) in bindings {
            let (Some(key), Some((_, span))) = (key, self.leaf(id, keyword)) else { continue };
            if own.iter().any(|(k, name, _)| *k == kind && *name == key) {
                continue;
            }
            let Some(first) = bound.first.get(&(kind, key.clone())) else {
                let binding = Binding { device_interface: device.name.clone(), keyword, span };
                own.push((kind, key, binding));
                continue;
            };
            // One conflict per leaf: a vdev bound twice by name also repeats its iface=.
            if reported.contains(&keyword) {
                continue;
            }
            reported.push(keyword);
            let device_kind = match kind {
                DeviceKind::LinuxInterface => "Linux interface",
                DeviceKind::Vdev | DeviceKind::Pci => "device",
            };
            self.error(
                span,
                K::DuplicateBinding {
                    keyword,
                    value: self.leaf_text(id, keyword),
                    device_kind,
                    device: key,
                    other: first.device_interface.clone(),
                    other_keyword: first.keyword,
                    first: first.span,
                },
            );
        }
        for (kind, key, binding) in own {
            bound.first.insert((kind, key), binding);
        }
    }

    /// The text of leaf `keyword` under `id` as written, quotes removed.
    fn leaf_text(&self, id: NodeId, keyword: &str) -> String {
        self.tree
            .children_named(id, keyword)
            .find_map(|(_, n)| n.value.as_ref().map(|(token, _)| token.text.clone()))
            .unwrap_or_default()
    }

    fn device_interface(&mut self, e: &Entry, driver: Driver) -> DeviceInterface {
        let id = e.id;
        let name = e.key_str(0);
        let pci_address = self.string(id, "pci-address");
        let vdev = self.string(id, "vdev");
        let interface_name = self.string(id, "interface-name");
        if let (Some(pci), Some((_, span))) = (&pci_address, self.leaf(id, "pci-address"))
            && !is_pci_address(pci)
        {
            self.error(
                span,
                K::InvalidValue {
                    keyword: "pci-address".into(),
                    value: pci.clone(),
                    allowed: "a PCI address DDDD:BB:DD.F or BB:DD.F in hexadecimal, such as \
                              0000:03:00.0"
                        .into(),
                },
            );
        }
        if let (Some(vdev), Some((_, span))) = (&vdev, self.leaf(id, "vdev"))
            && !is_vdev(vdev)
        {
            self.error(
                span,
                K::InvalidValue {
                    keyword: "vdev".into(),
                    value: vdev.clone(),
                    allowed: "a DPDK virtual device net_NAME[,key=value...] without blanks, \
                              such as net_af_packet0,iface=veth0"
                        .into(),
                },
            );
        }
        if let (Some(ifname), Some((_, span))) = (&interface_name, self.leaf(id, "interface-name"))
            && !is_linux_ifname(ifname)
        {
            let mut allowed = format!(
                "a Linux interface name of 1-{MAX_IFNAME_BYTES} bytes without /, : or blanks"
            );
            if ifname.len() > MAX_IFNAME_BYTES {
                allowed.push_str(&format!(" (this one has {} bytes)", ifname.len()));
            }
            self.error(
                span,
                K::InvalidValue {
                    keyword: "interface-name".into(),
                    value: ifname.clone(),
                    allowed,
                },
            );
        }
        if pci_address.is_some() && vdev.is_some() {
            let span = self.leaf(id, "vdev").map_or(e.span, |(_, s)| s);
            self.error(span, K::Conflict { keyword: "vdev".into(), other: "pci-address" });
        }
        let dpdk = pci_address.is_some() || vdev.is_some();
        let missing = match driver {
            Driver::AfXdp if interface_name.is_none() => Some(("af-xdp", "interface-name")),
            Driver::Dpdk if !dpdk => Some(("dpdk", "pci-address or vdev")),
            Driver::Auto if !dpdk && interface_name.is_none() => {
                Some(("auto", "pci-address, vdev or interface-name"))
            }
            _ => None,
        };
        if let Some((driver, needs)) = missing {
            self.error(e.span, K::MissingBinding { device_interface: name.clone(), driver, needs });
        }

        let mut network_interfaces = Vec::new();
        for n in self.entries(id, "network-interface") {
            network_interfaces.push(self.network_interface(&n));
        }
        DeviceInterface {
            name,
            description: self.string(id, "description"),
            interface_type: match self.word(id, "type") {
                Some("host") => DeviceInterfaceType::Host,
                _ => DeviceInterfaceType::Ethernet,
            },
            pci_address,
            vdev,
            interface_name,
            network_interfaces,
            span: e.span,
        }
    }

    fn network_interface(&mut self, e: &Entry) -> NetworkInterface {
        let id = e.id;
        let mut addresses = Vec::new();
        for a in self.entries(id, "address") {
            if let Some(address) = self.interface_address(&a) {
                addresses.push(address);
            }
        }
        let mut neighborhoods = Vec::new();
        for n in self.entries(id, "neighborhood") {
            neighborhoods.push(Neighborhood {
                name: n.key_str(0),
                bfd: self.bfd(n.id),
                topology: match self.word(n.id, "topology") {
                    Some("hub") => Topology::Hub,
                    Some("spoke") => Topology::Spoke,
                    _ => Topology::Mesh,
                },
                peer_connectivity: match self.word(n.id, "peer-connectivity") {
                    Some("outbound-only") => PeerConnectivity::OutboundOnly,
                    _ => PeerConnectivity::Bidirectional,
                },
                udp_transform: match self
                    .block(n.id, "udp-transform")
                    .and_then(|u| self.word(u, "mode"))
                {
                    Some("always-transform") => UdpTransformMode::AlwaysTransform,
                    _ => UdpTransformMode::AutoDetect,
                },
                payload_encryption_override: self.payload_override(n.id),
                span: n.span,
            });
        }
        let only_neighborhood = match neighborhoods.as_slice() {
            [one] => Some(one.name.clone()),
            _ => None,
        };
        let mut adjacencies = Vec::new();
        for a in self.entries(id, "adjacency") {
            let Some(Value::Ip(ip_address)) = a.keys.first().cloned() else { continue };
            let peer_span = self.tree.node(a.id).keys.get(1).map_or(a.span, |(t, _)| t.span);
            adjacencies.push(Adjacency {
                ip_address,
                peer: Ref { name: a.key_str(1), span: peer_span },
                bfd: self.bfd(a.id),
                cost: self.uint(a.id, "cost").and_then(|c| u32::try_from(c).ok()).unwrap_or(0),
                generated: self.boolean(a.id, "generated", false),
                inter_router_security: self.reference(a.id, "inter-router-security"),
                payload_encryption_override: self.payload_override(a.id),
                port_ranges: self.port_ranges(a.id),
                neighborhood: only_neighborhood.clone(),
                span: a.span,
            });
        }
        NetworkInterface {
            name: e.key_str(0),
            description: self.string(id, "description"),
            tenant: self.reference(id, "tenant"),
            addresses,
            mtu: self.uint(id, "mtu").and_then(|m| u32::try_from(m).ok()).unwrap_or(1500),
            enforced_mss: match self.leaf(id, "enforced-mss") {
                Some((Value::Word("automatic"), _)) => EnforcedMss::Automatic,
                Some((Value::Uint(n), _)) => {
                    EnforcedMss::Fixed(u16::try_from(*n).unwrap_or(u16::MAX))
                }
                _ => EnforcedMss::Disabled,
            },
            inter_router_security: self.reference(id, "inter-router-security"),
            neighborhoods,
            adjacencies,
            span: e.span,
        }
    }

    fn payload_override(&self, id: NodeId) -> Option<PayloadEncryptionOverride> {
        self.word(id, "payload-encryption-override").map(|w| match w {
            "enable-encryption" => PayloadEncryptionOverride::EnableEncryption,
            _ => PayloadEncryptionOverride::DisabledOverride,
        })
    }

    fn interface_address(&mut self, e: &Entry) -> Option<InterfaceAddress> {
        let Some(Value::Ip(ip_address)) = e.keys.first().cloned() else { return None };
        let (family, max) = if ip_address.is_ipv4() { ("IPv4", 32) } else { ("IPv6", 128) };
        let Some((prefix, span)) = self.leaf(e.id, "prefix-length").map(|(v, s)| (v.clone(), s))
        else {
            if !self.present(e.id, "prefix-length") {
                let block = format!("address {ip_address}");
                self.error(e.span, K::MissingLeaf { block, keyword: "prefix-length" });
            }
            return None;
        };
        let Value::Uint(prefix) = prefix else { return None };
        if prefix > max {
            self.error(
                span,
                K::InvalidValue {
                    keyword: "prefix-length".into(),
                    value: prefix.to_string(),
                    allowed: format!("0-{max} for an {family} address"),
                },
            );
            return None;
        }
        let gateway = self.ip(e.id, "gateway");
        if let Some(g) = gateway
            && g.is_ipv4() != ip_address.is_ipv4()
        {
            let span = self.leaf(e.id, "gateway").map_or(e.span, |(_, s)| s);
            self.error(
                span,
                K::FamilyMismatch {
                    keyword: "gateway".into(),
                    value: g.to_string(),
                    expected: family,
                },
            );
            return None;
        }
        Some(InterfaceAddress { ip_address, prefix_length: prefix as u8, gateway })
    }
}

fn decode_hex(text: &str) -> Option<Vec<u8>> {
    if !text.len().is_multiple_of(2) || !text.bytes().all(|b| b.is_ascii_hexdigit()) {
        return None;
    }
    (0..text.len()).step_by(2).map(|i| u8::from_str_radix(text.get(i..i + 2)?, 16).ok()).collect()
}

#[cfg(test)]
mod tests {
    use super::super::error_messages;

    /// Returns a configuration with one node whose device-interfaces d1 and d2 contain the
    /// `first` and `second` lines, which start on lines 6 and 9.
    fn two_devices(first: &str, second: &str) -> String {
        format!(
            "config\nauthority\nrouter r1\nnode n1\ndevice-interface d1\n{first}\nexit\n\
             device-interface d2\n{second}\nexit\n"
        )
    }

    #[test]
    fn interface_name_length_in_bytes() {
        // Eight characters, but sixteen bytes in UTF-8.
        let text = two_devices(
            "interface-name \u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}\u{e9}",
            "vdev net_null0",
        );
        let errors = error_messages(&text);
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(
            errors[0].contains("must be a Linux interface name of 1-15 bytes"),
            "{}",
            errors[0]
        );
        assert!(errors[0].ends_with("(this one has 16 bytes)"), "{}", errors[0]);
    }

    #[test]
    fn vdev_iface_and_interface_name_conflict() {
        let expected = "expected a device that no other device-interface of the node uses";
        let vdev = "vdev net_af_packet0,iface=wan0";
        assert_eq!(
            error_messages(&two_devices("interface-name wan0", vdev)),
            [format!(
                "line 9, column 1: vdev net_af_packet0,iface=wan0: Linux interface wan0 already \
                 bound by device-interface d1 through its interface-name at line 6; {expected}"
            )]
        );
        assert_eq!(
            error_messages(&two_devices(vdev, "interface-name wan0")),
            [format!(
                "line 9, column 1: interface-name wan0: already bound by device-interface d1 \
                 through its vdev at line 6; {expected}"
            )]
        );
        assert_eq!(
            error_messages(&two_devices(vdev, "vdev net_af_xdp0,iface=wan0")),
            [format!(
                "line 9, column 1: vdev net_af_xdp0,iface=wan0: Linux interface wan0 already \
                 bound by device-interface d1 at line 6; {expected}"
            )]
        );
    }

    #[test]
    fn vdev_iface_same_device_interface_accepted() {
        let text =
            two_devices("vdev net_af_packet0,iface=wan0\ninterface-name wan0", "vdev net_null0");
        assert_eq!(error_messages(&text), Vec::<String>::new());
        let text = two_devices("interface-name wan0", "vdev net_af_packet0,iface=wan1");
        assert_eq!(error_messages(&text), Vec::<String>::new());
    }

    #[test]
    fn vdev_bound_twice_one_error() {
        let vdev = "vdev net_af_packet0,iface=wan0";
        let errors = error_messages(&two_devices(vdev, vdev));
        assert_eq!(errors.len(), 1, "{errors:#?}");
        assert!(errors[0].contains("device net_af_packet0 already bound"), "{}", errors[0]);
    }
}
