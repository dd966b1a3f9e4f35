//! The table of every keyword svrd accepts: which keywords open blocks, which lists take
//! which keys, and the value type of every leaf.
//!
//! Ranges the product guide does not state are chosen here and listed in
//! `docs/configuration.md`: `peer-key-timeout` 60-86400 s, `ml-kem-keygen-priority` 0-255,
//! BFD `required-min-rx-interval` and `required-min-echo-interval` 50-600000 ms,
//! `maximum-hold-down-time` 1-86400 s, `backoff-interval` 1-86400 s, `mtu` 576-9216.
//!
//! `node > dataplane` and the `interface-name`, `vdev` and `pci-address` leaves of
//! `device-interface` are svrd's own: they bind the product's model to packet I/O.

/// The kind of a keyword: a block that opens, or a leaf that takes a value.
#[derive(Debug)]
pub enum Kind {
    /// A block opened by the keyword alone; `choice` blocks hold at most one child block.
    Container { children: &'static [Schema], choice: bool },
    /// A block opened by the keyword and its keys; each key is also a leaf among `children`.
    List { keys: &'static [&'static str], children: &'static [Schema] },
    /// `keyword value`, once per block.
    Leaf(Type),
    /// `keyword value`, any number of times per block.
    LeafList(Type),
}

/// A keyword in a block.
#[derive(Debug)]
pub struct Schema {
    pub name: &'static str,
    pub kind: Kind,
    /// The keyword this one is another spelling of; the tree records the canonical name.
    pub alias_of: Option<&'static str>,
}

/// The value type of a leaf.
#[derive(Debug, Clone, Copy)]
pub enum Type {
    String,
    Bool,
    /// One of these words, matched without regard to case.
    Enum(&'static [&'static str]),
    /// An unsigned number in `min..=max`, or one of `words`.
    Uint {
        min: u64,
        max: u64,
        unit: &'static str,
        words: &'static [&'static str],
    },
    /// An IPv4 or IPv6 address.
    Ip,
    /// An IPv4 or IPv6 prefix `address/length` with no host bits set; a bare address is a
    /// host prefix.
    Prefix,
    /// A Linux CPU list such as `1,3-5`.
    CpuList,
}

impl Schema {
    pub fn children(&self) -> &'static [Schema] {
        match self.kind {
            Kind::Container { children, .. } | Kind::List { children, .. } => children,
            Kind::Leaf(_) | Kind::LeafList(_) => &[],
        }
    }

    pub fn is_block(&self) -> bool {
        matches!(self.kind, Kind::Container { .. } | Kind::List { .. })
    }

    pub fn child(&self, keyword: &str) -> Option<&'static Schema> {
        find(self.children(), keyword)
    }

    pub fn canonical(&self) -> &'static str {
        self.alias_of.unwrap_or(self.name)
    }
}

/// Finds `keyword` among `children`.
pub fn find(children: &'static [Schema], keyword: &str) -> Option<&'static Schema> {
    children.iter().find(|s| s.name == keyword)
}

/// The block above `authority`.
pub static ROOT: Schema = container("config", ROOT_CHILDREN);

const fn leaf(name: &'static str, ty: Type) -> Schema {
    Schema { name, kind: Kind::Leaf(ty), alias_of: None }
}

const fn leaf_list(name: &'static str, ty: Type) -> Schema {
    Schema { name, kind: Kind::LeafList(ty), alias_of: None }
}

const fn alias(name: &'static str, of: &'static str, ty: Type) -> Schema {
    Schema { name, kind: Kind::Leaf(ty), alias_of: Some(of) }
}

const fn container(name: &'static str, children: &'static [Schema]) -> Schema {
    Schema { name, kind: Kind::Container { children, choice: false }, alias_of: None }
}

const fn choice(name: &'static str, children: &'static [Schema]) -> Schema {
    Schema { name, kind: Kind::Container { children, choice: true }, alias_of: None }
}

const fn list(
    name: &'static str,
    keys: &'static [&'static str],
    children: &'static [Schema],
) -> Schema {
    Schema { name, kind: Kind::List { keys, children }, alias_of: None }
}

const fn uint(min: u64, max: u64, unit: &'static str) -> Type {
    Type::Uint { min, max, unit, words: &[] }
}

const STR: Type = Type::String;
const BOOL: Type = Type::Bool;
const PORT: Type = uint(1, 65535, "");
const ENABLED: Type = Type::Enum(&["enabled", "disabled"]);
const PAYLOAD_OVERRIDE: Type =
    Type::Enum(&["enable-encryption", "disabled-override", "disable-override"]);
const VALIDATION_MODE: Type = Type::Enum(&["strict", "warn"]);
const DH_SIZE: Type = Type::Enum(&["1024", "2048", "4096"]);
const ML_KEM_SIZE: Type = Type::Enum(&["512", "768", "1024"]);
const REKEY_HOURS: Type = Type::Uint { min: 1, max: 720, unit: "hours", words: &["never"] };

const ROOT_CHILDREN: &[Schema] = &[container("authority", AUTHORITY)];

const AUTHORITY: &[Schema] = &[
    leaf("name", STR),
    leaf("enhanced-security-key-management", BOOL),
    container("security-key-management", SECURITY_KEY_MANAGEMENT),
    list("trusted-ca-certificate", &["name"], CERTIFICATE),
    list("client-certificate", &["name"], CERTIFICATE),
    list("certificate-revocation-list", &["url"], CRL),
    list("security", &["name"], SECURITY),
    list("tenant", &["name"], TENANT),
    list("service", &["name"], SERVICE),
    list("router", &["name"], ROUTER),
];

const SECURITY_KEY_MANAGEMENT: &[Schema] = &[
    leaf("payload-key-rekey-interval", REKEY_HOURS),
    leaf("peer-key-rekey-interval", REKEY_HOURS),
    leaf("peer-key-retransmit-interval", uint(5, 3600, "seconds")),
    leaf("peer-key-timeout", uint(60, 86400, "seconds")),
    leaf("invalid-certificate-behavior", Type::Enum(&["fail-soft", "fail-hard"])),
    choice("key-exchange-algorithm", KEY_EXCHANGE_CASES),
];

const KEY_EXCHANGE_CASES: &[Schema] = &[
    container("diffie-hellman", DH_CASE),
    container("ml-kem", ML_KEM_CASE),
    container("diffie-hellman-ml-kem", HYBRID_CASE),
];

const DH_CASE: &[Schema] =
    &[leaf("dh-key-size", DH_SIZE), alias("diffie-hellman-key-size", "dh-key-size", DH_SIZE)];

const ML_KEM_CASE: &[Schema] = &[leaf("ml-kem-key-size", ML_KEM_SIZE)];

const HYBRID_CASE: &[Schema] = &[
    leaf("dh-key-size", DH_SIZE),
    alias("diffie-hellman-key-size", "dh-key-size", DH_SIZE),
    leaf("ml-kem-key-size", ML_KEM_SIZE),
];

const CERTIFICATE: &[Schema] = &[
    leaf("name", STR),
    leaf("content", STR),
    leaf("file", STR),
    leaf("validation-mode", VALIDATION_MODE),
];

const CRL: &[Schema] = &[
    leaf("url", STR),
    leaf("polling-interval", uint(1, 168, "hours")),
    leaf("backoff-interval", uint(1, 86400, "seconds")),
];

const SECURITY: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf("encrypt", BOOL),
    leaf("encryption-cipher", Type::Enum(&["aes-cbc-128", "aes-cbc-256"])),
    leaf("encryption-key", STR),
    leaf("encryption-iv", STR),
    leaf("hmac", BOOL),
    leaf("hmac-cipher", Type::Enum(&["sha1", "sha256", "sha256-128", "sha384", "sha512"])),
    leaf("hmac-key", STR),
    leaf("hmac-mode", Type::Enum(&["disabled", "regular", "time-based"])),
    leaf("adaptive-encryption", BOOL),
];

const TENANT: &[Schema] = &[leaf("name", STR), leaf("description", STR), leaf("security", STR)];

const SERVICE: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf_list("address", Type::Prefix),
    list("transport", &["protocol"], TRANSPORT),
    list("access-policy", &["source"], ACCESS_POLICY),
    leaf("security", STR),
];

const TRANSPORT: &[Schema] = &[
    leaf("protocol", Type::Enum(&["tcp", "udp", "icmp"])),
    list("port-range", &["start-port"], PORT_RANGE),
];

const PORT_RANGE: &[Schema] = &[leaf("start-port", PORT), leaf("end-port", PORT)];

const ACCESS_POLICY: &[Schema] =
    &[leaf("source", STR), leaf("permission", Type::Enum(&["allow", "deny"]))];

const ROUTER: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf("location", STR),
    leaf("inter-node-security", STR),
    leaf("peering-common-name", STR),
    leaf("ml-kem-keygen-priority", uint(0, 255, "")),
    choice("key-exchange-algorithm-override", KEY_EXCHANGE_CASES),
    container("bfd", BFD),
    list("service-route", &["name"], SERVICE_ROUTE),
    list("peer", &["name"], PEER),
    list("node", &["name"], NODE),
];

const SERVICE_ROUTE: &[Schema] = &[
    leaf("name", STR),
    leaf("service-name", STR),
    leaf("peer", STR),
    list("next-hop", &["node-name", "interface"], NEXT_HOP),
];

const NEXT_HOP: &[Schema] =
    &[leaf("node-name", STR), leaf("interface", STR), leaf("gateway-ip", Type::Ip)];

const PEER: &[Schema] = &[
    leaf("name", STR),
    leaf("authority-name", STR),
    leaf("router-name", STR),
    leaf("description", STR),
    leaf("peering-common-name", STR),
    leaf("ml-kem-keygen-priority", uint(0, 255, "")),
    choice("key-exchange-algorithm-override", KEY_EXCHANGE_CASES),
    leaf("generated", BOOL),
    container("bfd", BFD),
];

const NODE: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf("role", Type::Enum(&["combo", "control", "slice", "conductor"])),
    container("dataplane", DATAPLANE),
    list("device-interface", &["name"], DEVICE_INTERFACE),
];

const DATAPLANE: &[Schema] = &[
    leaf("driver", Type::Enum(&["auto", "dpdk", "af-xdp"])),
    leaf("polling-mode", Type::Enum(&["adaptive", "busy"])),
    leaf("worker-cores", Type::CpuList),
    leaf_list("eal-argument", STR),
];

const DEVICE_INTERFACE: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf("type", Type::Enum(&["ethernet", "host"])),
    leaf("pci-address", STR),
    leaf("vdev", STR),
    leaf("interface-name", STR),
    list("network-interface", &["name"], NETWORK_INTERFACE),
];

const NETWORK_INTERFACE: &[Schema] = &[
    leaf("name", STR),
    leaf("description", STR),
    leaf("tenant", STR),
    list("address", &["ip-address"], ADDRESS),
    leaf("mtu", uint(576, 9216, "bytes")),
    leaf(
        "enforced-mss",
        Type::Uint { min: 64, max: 8960, unit: "", words: &["disabled", "automatic"] },
    ),
    leaf("inter-router-security", STR),
    list("neighborhood", &["name"], NEIGHBORHOOD),
    list("adjacency", &["ip-address", "peer"], ADJACENCY),
];

const ADDRESS: &[Schema] = &[
    leaf("ip-address", Type::Ip),
    leaf("prefix-length", uint(0, 128, "")),
    leaf("gateway", Type::Ip),
];

const NEIGHBORHOOD: &[Schema] = &[
    leaf("name", STR),
    container("bfd", BFD),
    leaf("topology", Type::Enum(&["mesh", "hub", "spoke"])),
    leaf("peer-connectivity", Type::Enum(&["bidirectional", "outbound-only"])),
    container("udp-transform", UDP_TRANSFORM),
    leaf("payload-encryption-override", PAYLOAD_OVERRIDE),
];

const UDP_TRANSFORM: &[Schema] = &[leaf("mode", Type::Enum(&["auto-detect", "always-transform"]))];

const ADJACENCY: &[Schema] = &[
    leaf("ip-address", Type::Ip),
    leaf("peer", STR),
    container("bfd", BFD),
    leaf("cost", uint(0, 4_294_967_295, "")),
    leaf("generated", BOOL),
    leaf("inter-router-security", STR),
    leaf("payload-encryption-override", PAYLOAD_OVERRIDE),
    list("port-range", &["start-port"], PORT_RANGE),
];

const BFD: &[Schema] = &[
    leaf("state", ENABLED),
    leaf("desired-tx-interval", uint(50, 600_000, "milliseconds")),
    leaf("required-min-rx-interval", uint(50, 600_000, "milliseconds")),
    leaf("required-min-echo-interval", uint(50, 600_000, "milliseconds")),
    leaf("multiplier", uint(3, 20, "")),
    leaf("link-test-interval", uint(1, 86400, "seconds")),
    leaf("link-test-length", uint(0, 255, "")),
    leaf("hold-down-time", uint(1, 300, "seconds")),
    leaf("dynamic-damping", ENABLED),
    alias("damping", "dynamic-damping", ENABLED),
    leaf("maximum-hold-down-time", uint(1, 86400, "seconds")),
    leaf("authentication-type", Type::Enum(&["simple", "sha256"])),
];
