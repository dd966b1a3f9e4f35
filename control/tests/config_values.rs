//! Defaults of every setting and the boundaries of every numeric range.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test on bad fixtures")]

use std::time::Duration;

use svr_control::config::*;

fn parse(text: &str) -> Config {
    match parse_authority(text) {
        Ok(c) => c,
        Err(e) => panic!("{text}\n{e}"),
    }
}

/// A router with one node, one interface and one hand-written adjacency, every optional
/// block present and empty.
const MINIMAL: &str = "config
authority
security-key-management
exit
trusted-ca-certificate ca
file ca
exit
client-certificate me
content \"pem\"
exit
certificate-revocation-list http://crl.example/a.crl
exit
security s
exit
tenant t
exit
service svc
address 10.0.0.0/8
transport tcp
port-range 443
exit
exit
access-policy t
exit
exit
router r1
bfd
exit
peer p1
authority-name elsewhere
exit
node n1
dataplane
exit
device-interface d1
interface-name eth1
network-interface ni
address 10.1.0.1
prefix-length 24
exit
neighborhood hood
exit
adjacency 10.1.0.2 p1
exit
";

#[test]
fn defaults_authority() {
    let c = parse(MINIMAL);
    let a = &c.authority;
    assert_eq!(a.name, None);
    assert!(!a.enhanced_security_key_management);
    let skm = &a.security_key_management;
    assert_eq!(
        skm.payload_key_rekey_interval,
        RekeyInterval::Every(Duration::from_secs(24 * 3600))
    );
    assert_eq!(skm.peer_key_rekey_interval, RekeyInterval::Every(Duration::from_secs(24 * 3600)));
    assert_eq!(skm.peer_key_retransmit_interval, Duration::from_secs(30));
    assert_eq!(skm.peer_key_timeout, Duration::from_secs(3600));
    assert_eq!(skm.invalid_certificate_behavior, InvalidCertificateBehavior::FailSoft);
    assert_eq!(
        skm.key_exchange_algorithm,
        KeyExchangeAlgorithm::DiffieHellman { dh: DhKeySize::Bits2048 }
    );
    assert_eq!(*skm, SecurityKeyManagement::default());
    // Without the block at all, the same defaults.
    let bare = parse("config\nauthority\n");
    assert_eq!(bare.authority.security_key_management, SecurityKeyManagement::default());
}

#[test]
fn defaults_certificates() {
    let c = parse(MINIMAL);
    let a = &c.authority;
    assert_eq!(a.trusted_ca_certificates[0].validation_mode, ValidationMode::Strict);
    assert_eq!(a.trusted_ca_certificates[0].source, CertificateSource::File("ca".into()));
    assert_eq!(a.client_certificates[0].source, CertificateSource::Content("pem".into()));
    assert_eq!(a.client_certificates[0].validation_mode, ValidationMode::Strict);
    let crl = &a.certificate_revocation_lists[0];
    assert_eq!(crl.polling_interval, Duration::from_secs(24 * 3600));
    assert_eq!(crl.backoff_interval, Duration::from_secs(60));
}

#[test]
fn defaults_security_policy() {
    let c = parse(MINIMAL);
    let s = c.authority.security_policy("s").unwrap();
    assert!(s.encrypt);
    assert_eq!(s.encryption_cipher, EncryptionCipher::AesCbc128);
    assert!(s.encryption_key.is_none());
    assert!(s.encryption_iv.is_none());
    assert!(s.hmac);
    assert_eq!(s.hmac_cipher, HmacCipher::Sha256);
    assert!(s.hmac_key.is_none());
    assert_eq!(s.hmac_mode, HmacMode::TimeBased);
    assert!(s.adaptive_encryption);
}

#[test]
fn defaults_service() {
    let c = parse(MINIMAL);
    let svc = c.authority.service("svc").unwrap();
    assert_eq!(svc.transports[0].port_ranges, vec![PortRange { start: 443, end: 443 }]);
    assert_eq!(svc.access_policies[0].permission, Permission::Allow);
    assert!(svc.security.is_none());
}

#[test]
fn defaults_router_tree() {
    let c = parse(MINIMAL);
    let r = c.router("r1").unwrap();
    assert_eq!(r.bfd, BfdOverrides::default());
    assert_eq!(r.peering_common_name, None);
    assert_eq!(r.ml_kem_keygen_priority, None);
    assert_eq!(r.key_exchange_algorithm_override, None);
    let p = r.peer("p1").unwrap();
    assert!(!p.generated);
    assert_eq!(p.key_exchange_algorithm_override, None);
    assert_eq!(p.remote_router(), "p1");

    let n = r.node("n1").unwrap();
    assert_eq!(n.role, NodeRole::Combo);
    assert_eq!(n.dataplane, Dataplane::default());
    assert_eq!(n.dataplane.driver, Driver::Auto);
    assert_eq!(n.dataplane.polling_mode, PollingMode::Adaptive);
    assert!(n.dataplane.worker_cores.is_empty());
    let d = &n.device_interfaces[0];
    assert_eq!(d.interface_type, DeviceInterfaceType::Ethernet);
    let ni = &d.network_interfaces[0];
    assert_eq!(ni.mtu, 1500);
    assert_eq!(ni.enforced_mss, EnforcedMss::Disabled);
    assert_eq!(ni.addresses[0].gateway, None);
    let hood = &ni.neighborhoods[0];
    assert_eq!(hood.topology, Topology::Mesh);
    assert_eq!(hood.peer_connectivity, PeerConnectivity::Bidirectional);
    assert_eq!(hood.udp_transform, UdpTransformMode::AutoDetect);
    assert_eq!(hood.payload_encryption_override, None);
    let adj = &ni.adjacencies[0];
    assert_eq!(adj.cost, 0);
    assert!(!adj.generated);
    assert!(adj.port_ranges.is_empty());
    assert_eq!(adj.payload_encryption_override, None);
}

#[test]
fn defaults_bfd() {
    let c = parse(MINIMAL);
    let r = c.router("r1").unwrap();
    let path = r.peer_paths().next().unwrap();
    let bfd = c.bfd_settings(r, path.network_interface, path.adjacency);
    assert_eq!(bfd, BfdSettings::default());
    assert!(bfd.enabled);
    assert_eq!(bfd.desired_tx_interval, Duration::from_millis(1000));
    assert_eq!(bfd.required_min_rx_interval, Duration::from_millis(500));
    assert_eq!(bfd.required_min_echo_interval, Duration::from_millis(1000));
    assert_eq!(bfd.multiplier, 3);
    assert_eq!(bfd.link_test_interval, Duration::from_secs(10));
    assert_eq!(bfd.link_test_length, 10);
    assert_eq!(bfd.hold_down_time, Duration::from_secs(5));
    assert!(!bfd.dynamic_damping);
    assert_eq!(bfd.maximum_hold_down_time, Duration::from_secs(3600));
    assert_eq!(bfd.authentication_type, BfdAuthentication::Sha256);
}

#[test]
fn defaults_key_exchange_cases() {
    let kex = |case: &str| {
        let text =
            format!("config\nauthority\nsecurity-key-management\nkey-exchange-algorithm\n{case}\n");
        parse(&text).authority.security_key_management.key_exchange_algorithm
    };
    assert_eq!(kex(""), KeyExchangeAlgorithm::DiffieHellman { dh: DhKeySize::Bits2048 });
    assert_eq!(
        kex("diffie-hellman"),
        KeyExchangeAlgorithm::DiffieHellman { dh: DhKeySize::Bits2048 }
    );
    assert_eq!(kex("ml-kem"), KeyExchangeAlgorithm::MlKem { ml_kem: MlKemKeySize::MlKem768 });
    assert_eq!(
        kex("diffie-hellman-ml-kem"),
        KeyExchangeAlgorithm::DiffieHellmanMlKem {
            dh: DhKeySize::Bits2048,
            ml_kem: MlKemKeySize::MlKem768
        }
    );
    for (size, expected) in [
        ("1024", DhKeySize::Bits1024),
        ("2048", DhKeySize::Bits2048),
        ("4096", DhKeySize::Bits4096),
    ] {
        assert_eq!(
            kex(&format!("diffie-hellman\ndh-key-size {size}")).dh_key_size(),
            Some(expected)
        );
        assert_eq!(
            kex(&format!("diffie-hellman\ndiffie-hellman-key-size {size}")).dh_key_size(),
            Some(expected)
        );
    }
    for (size, expected) in [
        ("512", MlKemKeySize::MlKem512),
        ("768", MlKemKeySize::MlKem768),
        ("1024", MlKemKeySize::MlKem1024),
    ] {
        assert_eq!(
            kex(&format!("ml-kem\nml-kem-key-size {size}")).ml_kem_key_size(),
            Some(expected)
        );
    }
}

#[test]
fn enum_values_ignore_case() {
    let c = parse(
        "config\nauthority\nenhanced-security-key-management TRUE\nrouter r1\nbfd\nstate Disabled\ndamping Enabled\n",
    );
    assert!(c.authority.enhanced_security_key_management);
    let bfd = c.router("r1").unwrap().bfd;
    assert_eq!(bfd.state, Some(false));
    assert_eq!(bfd.dynamic_damping, Some(true));
}

#[test]
fn payload_override_spellings() {
    for (word, expected) in [
        ("enable-encryption", PayloadEncryptionOverride::EnableEncryption),
        ("disabled-override", PayloadEncryptionOverride::DisabledOverride),
        ("disable-override", PayloadEncryptionOverride::DisabledOverride),
    ] {
        let text = format!(
            "config\nauthority\nrouter r1\nnode n\ndevice-interface d\ninterface-name e\n\
             network-interface w\nneighborhood h\npayload-encryption-override {word}\n"
        );
        let c = parse(&text);
        let hood = &c.router("r1").unwrap().nodes[0].device_interfaces[0].network_interfaces[0]
            .neighborhoods[0];
        assert_eq!(hood.payload_encryption_override, Some(expected), "{word}");
    }
}

/// One numeric setting: where it sits, its range, the message suffix and how to read it back.
struct Range {
    /// Text before the leaf, opening its blocks.
    prefix: &'static str,
    keyword: &'static str,
    low: u64,
    high: u64,
    allowed: &'static str,
    read: fn(&Config) -> u64,
}

fn router(c: &Config) -> &Router {
    c.router("r1").unwrap()
}

fn secs(d: Duration) -> u64 {
    d.as_secs()
}

fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap()
}

const SKM: &str = "config\nauthority\nsecurity-key-management\n";
const BFD: &str = "config\nauthority\nrouter r1\nbfd\n";
const NI: &str = "config\nauthority\nrouter r1\npeer p\nauthority-name x\nexit\nnode n\n\
                  device-interface d\ninterface-name e\nnetwork-interface w\n";

fn ni(c: &Config) -> &NetworkInterface {
    &router(c).nodes[0].device_interfaces[0].network_interfaces[0]
}

fn rekey(i: RekeyInterval) -> u64 {
    match i {
        RekeyInterval::Every(d) => d.as_secs() / 3600,
        RekeyInterval::Never => u64::MAX,
    }
}

fn ranges() -> Vec<Range> {
    vec![
        Range {
            prefix: SKM,
            keyword: "payload-key-rekey-interval",
            low: 1,
            high: 720,
            allowed: "1-720 hours or never",
            read: |c| rekey(c.authority.security_key_management.payload_key_rekey_interval),
        },
        Range {
            prefix: SKM,
            keyword: "peer-key-rekey-interval",
            low: 1,
            high: 720,
            allowed: "1-720 hours or never",
            read: |c| rekey(c.authority.security_key_management.peer_key_rekey_interval),
        },
        Range {
            prefix: SKM,
            keyword: "peer-key-retransmit-interval",
            low: 5,
            high: 3600,
            allowed: "5-3600 seconds",
            read: |c| secs(c.authority.security_key_management.peer_key_retransmit_interval),
        },
        Range {
            prefix: SKM,
            keyword: "peer-key-timeout",
            low: 60,
            high: 86400,
            allowed: "60-86400 seconds",
            read: |c| secs(c.authority.security_key_management.peer_key_timeout),
        },
        Range {
            prefix: "config\nauthority\ncertificate-revocation-list u\n",
            keyword: "polling-interval",
            low: 1,
            high: 168,
            allowed: "1-168 hours",
            read: |c| secs(c.authority.certificate_revocation_lists[0].polling_interval) / 3600,
        },
        Range {
            prefix: "config\nauthority\ncertificate-revocation-list u\n",
            keyword: "backoff-interval",
            low: 1,
            high: 86400,
            allowed: "1-86400 seconds",
            read: |c| secs(c.authority.certificate_revocation_lists[0].backoff_interval),
        },
        Range {
            prefix: "config\nauthority\nrouter r1\n",
            keyword: "ml-kem-keygen-priority",
            low: 0,
            high: 255,
            allowed: "0-255",
            read: |c| u64::from(router(c).ml_kem_keygen_priority.unwrap()),
        },
        Range {
            prefix: "config\nauthority\nrouter r1\npeer p\nauthority-name x\n",
            keyword: "ml-kem-keygen-priority",
            low: 0,
            high: 255,
            allowed: "0-255",
            read: |c| u64::from(router(c).peers[0].ml_kem_keygen_priority.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "desired-tx-interval",
            low: 50,
            high: 600_000,
            allowed: "50-600000 milliseconds",
            read: |c| millis(router(c).bfd.desired_tx_interval.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "required-min-rx-interval",
            low: 50,
            high: 600_000,
            allowed: "50-600000 milliseconds",
            read: |c| millis(router(c).bfd.required_min_rx_interval.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "required-min-echo-interval",
            low: 50,
            high: 600_000,
            allowed: "50-600000 milliseconds",
            read: |c| millis(router(c).bfd.required_min_echo_interval.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "multiplier",
            low: 3,
            high: 20,
            allowed: "3-20",
            read: |c| u64::from(router(c).bfd.multiplier.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "link-test-interval",
            low: 1,
            high: 86400,
            allowed: "1-86400 seconds",
            read: |c| secs(router(c).bfd.link_test_interval.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "link-test-length",
            low: 0,
            high: 255,
            allowed: "0-255",
            read: |c| u64::from(router(c).bfd.link_test_length.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "hold-down-time",
            low: 1,
            high: 300,
            allowed: "1-300 seconds",
            read: |c| secs(router(c).bfd.hold_down_time.unwrap()),
        },
        Range {
            prefix: BFD,
            keyword: "maximum-hold-down-time",
            low: 1,
            high: 86400,
            allowed: "1-86400 seconds",
            read: |c| secs(router(c).bfd.maximum_hold_down_time.unwrap()),
        },
        Range {
            prefix: NI,
            keyword: "mtu",
            low: 576,
            high: 9216,
            allowed: "576-9216 bytes",
            read: |c| u64::from(ni(c).mtu),
        },
        Range {
            prefix: NI,
            keyword: "enforced-mss",
            low: 64,
            high: 8960,
            allowed: "64-8960, disabled or automatic",
            read: |c| match ni(c).enforced_mss {
                EnforcedMss::Fixed(n) => u64::from(n),
                other => panic!("{other:?}"),
            },
        },
        Range {
            prefix: "config\nauthority\nrouter r1\npeer p\nauthority-name x\nexit\nnode n\n\
                     device-interface d\ninterface-name e\nnetwork-interface w\nadjacency 10.0.0.2 p\n",
            keyword: "cost",
            low: 0,
            high: 4_294_967_295,
            allowed: "0-4294967295",
            read: |c| u64::from(ni(c).adjacencies[0].cost),
        },
        Range {
            prefix: "config\nauthority\nservice s\ntransport tcp\nport-range 1\n",
            keyword: "end-port",
            low: 1,
            high: 65535,
            allowed: "1-65535",
            read: |c| u64::from(c.authority.services[0].transports[0].port_ranges[0].end),
        },
    ]
}

fn value_errors(text: &str) -> Vec<String> {
    match parse_authority(text) {
        Ok(_) => Vec::new(),
        Err(e) => e.errors.iter().map(ToString::to_string).collect(),
    }
}

fn accepts(r: &Range, value: u64) -> Option<u64> {
    let text = format!("{}{} {value}\n", r.prefix, r.keyword);
    parse_authority(&text).ok().map(|c| (r.read)(&c))
}

#[test]
fn ranges_accept_both_ends() {
    for r in ranges() {
        assert_eq!(accepts(&r, r.low), Some(r.low), "{} low {}", r.keyword, r.low);
        assert_eq!(accepts(&r, r.high), Some(r.high), "{} high {}", r.keyword, r.high);
    }
}

#[test]
fn ranges_reject_outside() {
    for r in ranges() {
        let lines = r.prefix.lines().count() + 1;
        let leaf = r.keyword;
        let below = if r.low == 0 { "-1".to_owned() } else { (r.low - 1).to_string() };
        let above = (r.high + 1).to_string();
        for value in [below, above] {
            let text = format!("{}{} {value}\n", r.prefix, r.keyword);
            let expected = format!("line {lines}, column 1: {leaf} {value}: must be {}", r.allowed);
            assert_eq!(value_errors(&text), vec![expected], "{}", r.keyword);
        }
    }
}

#[test]
fn rekey_never() {
    let c =
        parse(&format!("{SKM}payload-key-rekey-interval never\npeer-key-rekey-interval NEVER\n"));
    let skm = &c.authority.security_key_management;
    assert_eq!(skm.payload_key_rekey_interval, RekeyInterval::Never);
    assert_eq!(skm.peer_key_rekey_interval, RekeyInterval::Never);
}

#[test]
fn prefix_length_ranges() {
    let text = |ip: &str, len: &str| format!("{NI}address {ip}\nprefix-length {len}\n");
    assert_eq!(ni(&parse(&text("10.0.0.0", "0"))).addresses[0].prefix_length, 0);
    assert_eq!(ni(&parse(&text("10.0.0.1", "32"))).addresses[0].prefix_length, 32);
    assert_eq!(ni(&parse(&text("2001:db8::1", "128"))).addresses[0].prefix_length, 128);
    assert_eq!(
        value_errors(&text("10.0.0.1", "33")),
        vec!["line 12, column 1: prefix-length 33: must be 0-32 for an IPv4 address"]
    );
    assert_eq!(
        value_errors(&text("2001:db8::1", "129")),
        vec!["line 12, column 1: prefix-length 129: must be 0-128 for an IPv6 address"]
    );
    assert_eq!(
        value_errors(&text("10.0.0.1", "-1")),
        vec!["line 12, column 1: prefix-length -1: must be 0-32 for an IPv4 address"]
    );
}

/// One enumeration leaf: where it sits and how to read the model value back as `Debug` text.
struct EnumLeaf {
    prefix: &'static str,
    keyword: &'static str,
    values: &'static [(&'static str, &'static str)],
    read: fn(&Config) -> String,
}

fn policy(c: &Config) -> &SecurityPolicy {
    &c.authority.security_policies[0]
}

fn enum_leaves() -> Vec<EnumLeaf> {
    const POLICY: &str = "config\nauthority\nsecurity s\n";
    const NODE: &str = "config\nauthority\nrouter r1\nnode n\n";
    const HOOD: &str = "config\nauthority\nrouter r1\nnode n\ndevice-interface d\ninterface-name e\n\
                        network-interface w\nneighborhood h\n";
    vec![
        EnumLeaf {
            prefix: SKM,
            keyword: "invalid-certificate-behavior",
            values: &[("fail-soft", "FailSoft"), ("fail-hard", "FailHard")],
            read: |c| {
                format!("{:?}", c.authority.security_key_management.invalid_certificate_behavior)
            },
        },
        EnumLeaf {
            prefix: "config\nauthority\ntrusted-ca-certificate ca\nfile ca\n",
            keyword: "validation-mode",
            values: &[("strict", "Strict"), ("warn", "Warn")],
            read: |c| format!("{:?}", c.authority.trusted_ca_certificates[0].validation_mode),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "encryption-cipher",
            values: &[("aes-cbc-128", "AesCbc128"), ("aes-cbc-256", "AesCbc256")],
            read: |c| format!("{:?}", policy(c).encryption_cipher),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "hmac-cipher",
            values: &[
                ("sha1", "Sha1"),
                ("sha256", "Sha256"),
                ("sha256-128", "Sha256_128"),
                ("sha384", "Sha384"),
                ("sha512", "Sha512"),
            ],
            read: |c| format!("{:?}", policy(c).hmac_cipher),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "hmac-mode",
            values: &[
                ("disabled", "Disabled"),
                ("regular", "Regular"),
                ("time-based", "TimeBased"),
            ],
            read: |c| format!("{:?}", policy(c).hmac_mode),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "encrypt",
            values: &[("true", "true"), ("false", "false")],
            read: |c| format!("{:?}", policy(c).encrypt),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "hmac",
            values: &[("true", "true"), ("false", "false")],
            read: |c| format!("{:?}", policy(c).hmac),
        },
        EnumLeaf {
            prefix: POLICY,
            keyword: "adaptive-encryption",
            values: &[("true", "true"), ("false", "false")],
            read: |c| format!("{:?}", policy(c).adaptive_encryption),
        },
        EnumLeaf {
            prefix: "config\nauthority\nservice s\n",
            keyword: "transport",
            values: &[("tcp", "Tcp"), ("udp", "Udp"), ("icmp", "Icmp")],
            read: |c| format!("{:?}", c.authority.services[0].transports[0].protocol),
        },
        EnumLeaf {
            prefix: "config\nauthority\ntenant t\nexit\nservice s\naccess-policy t\n",
            keyword: "permission",
            values: &[("allow", "Allow"), ("deny", "Deny")],
            read: |c| format!("{:?}", c.authority.services[0].access_policies[0].permission),
        },
        EnumLeaf {
            prefix: NODE,
            keyword: "role",
            values: &[
                ("combo", "Combo"),
                ("control", "Control"),
                ("slice", "Slice"),
                ("conductor", "Conductor"),
            ],
            read: |c| format!("{:?}", router(c).nodes[0].role),
        },
        EnumLeaf {
            prefix: "config\nauthority\nrouter r1\nnode n\ndataplane\n",
            keyword: "polling-mode",
            values: &[("adaptive", "Adaptive"), ("busy", "Busy")],
            read: |c| format!("{:?}", router(c).nodes[0].dataplane.polling_mode),
        },
        EnumLeaf {
            prefix: "config\nauthority\nrouter r1\nnode n\ndevice-interface d\ninterface-name e\n",
            keyword: "type",
            values: &[("ethernet", "Ethernet"), ("host", "Host")],
            read: |c| format!("{:?}", router(c).nodes[0].device_interfaces[0].interface_type),
        },
        EnumLeaf {
            prefix: HOOD,
            keyword: "topology",
            values: &[("mesh", "Mesh"), ("hub", "Hub"), ("spoke", "Spoke")],
            read: |c| format!("{:?}", ni(c).neighborhoods[0].topology),
        },
        EnumLeaf {
            prefix: HOOD,
            keyword: "peer-connectivity",
            values: &[("bidirectional", "Bidirectional"), ("outbound-only", "OutboundOnly")],
            read: |c| format!("{:?}", ni(c).neighborhoods[0].peer_connectivity),
        },
        EnumLeaf {
            prefix: "config\nauthority\nrouter r1\nnode n\ndevice-interface d\ninterface-name e\n\
                      network-interface w\nneighborhood h\nudp-transform\n",
            keyword: "mode",
            values: &[("auto-detect", "AutoDetect"), ("always-transform", "AlwaysTransform")],
            read: |c| format!("{:?}", ni(c).neighborhoods[0].udp_transform),
        },
        EnumLeaf {
            prefix: BFD,
            keyword: "state",
            values: &[("enabled", "Some(true)"), ("disabled", "Some(false)")],
            read: |c| format!("{:?}", router(c).bfd.state),
        },
        EnumLeaf {
            prefix: BFD,
            keyword: "dynamic-damping",
            values: &[("enabled", "Some(true)"), ("disabled", "Some(false)")],
            read: |c| format!("{:?}", router(c).bfd.dynamic_damping),
        },
        EnumLeaf {
            prefix: BFD,
            keyword: "authentication-type",
            values: &[("simple", "Some(Simple)"), ("sha256", "Some(Sha256)")],
            read: |c| format!("{:?}", router(c).bfd.authentication_type),
        },
        EnumLeaf {
            prefix: "config\nauthority\nrouter r1\npeer p\nauthority-name x\n",
            keyword: "generated",
            values: &[("true", "true"), ("false", "false")],
            read: |c| format!("{:?}", router(c).peers[0].generated),
        },
    ]
}

#[test]
fn enums_map_every_value() {
    for leaf in enum_leaves() {
        for (word, expected) in leaf.values {
            let text = format!("{}{} {word}\n", leaf.prefix, leaf.keyword);
            let config = parse(&text);
            assert_eq!((leaf.read)(&config), *expected, "{} {word}", leaf.keyword);
        }
        let text = format!("{}{} bogus\n", leaf.prefix, leaf.keyword);
        let errors = value_errors(&text);
        assert_eq!(errors.len(), 1, "{} bogus: {errors:?}", leaf.keyword);
        // List keys are named with their list: `transport protocol bogus`.
        assert!(errors[0].contains(leaf.keyword), "{}", errors[0]);
        assert!(errors[0].contains(" bogus: must be "), "{}", errors[0]);
    }
}

#[test]
fn dataplane_drivers() {
    for (driver, binding, expected) in [
        ("auto", "interface-name e", Driver::Auto),
        ("dpdk", "vdev net_ring0", Driver::Dpdk),
        ("af-xdp", "interface-name e", Driver::AfXdp),
    ] {
        let text = format!(
            "config\nauthority\nrouter r1\nnode n\ndataplane\ndriver {driver}\nexit\ndevice-interface d\n{binding}\n"
        );
        assert_eq!(router(&parse(&text)).nodes[0].dataplane.driver, expected, "{driver}");
    }
}
