//! The sample configurations under `tests/configs/` parse into the expected model.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test on bad fixtures"
)]

use std::net::IpAddr;
use std::time::Duration;

use svr_control::config::*;

fn sample(name: &str) -> Config {
    let path = format!("{}/tests/configs/{name}", env!("CARGO_MANIFEST_DIR"));
    let text = std::fs::read_to_string(&path).unwrap();
    match parse_authority(&text) {
        Ok(c) => c,
        Err(e) => panic!("{name}:\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

fn interface<'a>(router: &'a Router, node: &str, name: &str) -> &'a NetworkInterface {
    router
        .node(node)
        .unwrap()
        .device_interfaces
        .iter()
        .flat_map(|d| &d.network_interfaces)
        .find(|n| n.name == name)
        .unwrap()
}

#[test]
fn eskm_authority_settings() {
    let c = sample("eskm-two-router.cfg");
    let a = &c.authority;
    assert_eq!(a.name.as_deref(), Some("lab"));
    assert!(a.enhanced_security_key_management);
    let skm = &a.security_key_management;
    assert_eq!(
        skm.payload_key_rekey_interval,
        RekeyInterval::Every(Duration::from_secs(12 * 3600))
    );
    assert_eq!(skm.peer_key_rekey_interval, RekeyInterval::Never);
    assert_eq!(skm.peer_key_retransmit_interval, Duration::from_secs(45));
    assert_eq!(skm.peer_key_timeout, Duration::from_secs(1800));
    assert_eq!(skm.invalid_certificate_behavior, InvalidCertificateBehavior::FailHard);
    assert_eq!(
        skm.key_exchange_algorithm,
        KeyExchangeAlgorithm::DiffieHellmanMlKem {
            dh: DhKeySize::Bits2048,
            ml_kem: MlKemKeySize::MlKem768
        }
    );
    assert!(c.warnings().is_empty(), "{:?}", c.warnings());
}

#[test]
fn eskm_certificates() {
    let c = sample("eskm-two-router.cfg");
    let a = &c.authority;
    let ca = &a.trusted_ca_certificates[0];
    assert_eq!(ca.name, "lab-root");
    assert_eq!(ca.validation_mode, ValidationMode::Warn);
    let CertificateSource::Content(pem) = &ca.source else { panic!("{:?}", ca.source) };
    assert!(pem.starts_with("-----BEGIN CERTIFICATE-----\nMIIB"));
    assert!(pem.ends_with("-----END CERTIFICATE-----\n"));
    assert_eq!(pem.lines().count(), 4);

    let client = &a.client_certificates[0];
    assert_eq!(client.source, CertificateSource::File("svr-peering".into()));
    assert_eq!(client.validation_mode, ValidationMode::Strict);

    let crl = &a.certificate_revocation_lists[0];
    assert_eq!(crl.url, "http://crl.lab.example/root.crl");
    assert_eq!(crl.polling_interval, Duration::from_secs(6 * 3600));
    assert_eq!(crl.backoff_interval, Duration::from_secs(120));
}

#[test]
fn eskm_security_policies() {
    let c = sample("eskm-two-router.cfg");
    let p = c.authority.security_policy("payload-aes").unwrap();
    assert_eq!(p.description.as_deref(), Some("payload encryption for services"));
    assert!(p.encrypt);
    assert_eq!(p.encryption_cipher, EncryptionCipher::AesCbc256);
    assert_eq!(p.encryption_key.as_ref().unwrap().expose(), (0u8..32).collect::<Vec<_>>());
    assert_eq!(p.encryption_iv.as_ref().unwrap().expose().len(), 16);
    assert_eq!(p.hmac_cipher, HmacCipher::Sha384);
    assert_eq!(p.hmac_key.as_ref().unwrap().expose()[0], 0x0f);
    assert_eq!(p.hmac_mode, HmacMode::Regular);
    assert!(!p.adaptive_encryption);
    assert!(!format!("{p:?}").contains("0f0e0d"), "key bytes must not print");

    let internal = c.authority.security_policy("internal").unwrap();
    assert!(!internal.encrypt);
    assert_eq!(internal.hmac_mode, HmacMode::TimeBased);
    assert_eq!(internal.encryption_cipher, EncryptionCipher::AesCbc128);
    assert!(internal.encryption_key.is_none());
}

#[test]
fn eskm_tenants_and_services() {
    let c = sample("eskm-two-router.cfg");
    let a = &c.authority;
    let eng = a.tenant("engineering").unwrap();
    assert_eq!(eng.security.as_ref().unwrap().as_str(), "payload-aes");
    assert_eq!(a.tenants.len(), 2);

    let web = a.service("web").unwrap();
    assert_eq!(web.addresses.len(), 2);
    assert_eq!(web.addresses[0].to_string(), "10.205.0.0/24");
    assert_eq!(web.addresses[1].to_string(), "2001:db8:205::/48");
    assert!(web.addresses[0].contains(ip("10.205.0.9")));
    assert_eq!(web.transports.len(), 2);
    assert_eq!(web.transports[0].protocol, Protocol::Tcp);
    assert_eq!(
        web.transports[0].port_ranges,
        vec![PortRange { start: 80, end: 80 }, PortRange { start: 8000, end: 8080 }]
    );
    assert_eq!(web.transports[1].protocol, Protocol::Icmp);
    assert!(web.transports[1].port_ranges.is_empty());
    assert_eq!(web.access_policies[0].source.as_str(), "engineering");
    assert_eq!(web.access_policies[0].permission, Permission::Allow);

    let backup = a.service("backup").unwrap();
    assert_eq!(backup.transports[0].port_ranges, vec![PortRange { start: 5000, end: 5000 }]);
    assert_eq!(backup.access_policies[0].permission, Permission::Deny);
    assert!(backup.security.is_none());
}

#[test]
fn eskm_router_r1() {
    let c = sample("eskm-two-router.cfg");
    let r1 = c.router("r1").unwrap();
    assert_eq!(r1.description.as_deref(), Some("router 1"));
    assert_eq!(r1.location.as_deref(), Some("Newton, MA"));
    assert_eq!(r1.inter_node_security.as_ref().unwrap().as_str(), "internal");
    assert_eq!(r1.peering_common_name.as_deref(), Some("r1-alias"));
    assert_eq!(r1.ml_kem_keygen_priority, Some(20));
    assert_eq!(r1.key_exchange_algorithm_override, None);
    assert_eq!(r1.bfd.multiplier, Some(4));
    assert_eq!(r1.bfd.dynamic_damping, Some(true));

    let peer = r1.peer("r2").unwrap();
    assert!(!peer.generated);
    assert_eq!(peer.authority_name.as_deref(), Some("lab"));
    assert_eq!(peer.description.as_deref(), Some("peer router 2"));
    assert_eq!(peer.peering_common_name.as_deref(), Some("r2-alias"));
    assert_eq!(peer.ml_kem_keygen_priority, Some(10));
    assert_eq!(r1.peers.len(), 1, "the hand-written peer replaces the generated one");

    let route = &r1.service_routes[0];
    assert_eq!(route.service_name.as_str(), "web");
    assert!(matches!(&route.target, ServiceRouteTarget::Peer(p) if p.as_str() == "r2"));

    let node = r1.node("r1-node").unwrap();
    assert_eq!(node.role, NodeRole::Combo);
    assert_eq!(node.description.as_deref(), Some("single combo node"));
    assert_eq!(node.device_interfaces[0].description.as_deref(), Some("LAN port"));
    assert_eq!(
        node.device_interfaces[0].network_interfaces[0].description.as_deref(),
        Some("lab hosts")
    );
    assert_eq!(node.dataplane.driver, Driver::AfXdp);
    assert_eq!(node.dataplane.polling_mode, PollingMode::Adaptive);
    assert_eq!(node.dataplane.worker_cores, vec![1]);
    assert_eq!(node.device_interfaces[0].interface_name.as_deref(), Some("r1-lan"));
    assert_eq!(node.device_interfaces[0].interface_type, DeviceInterfaceType::Ethernet);
}

#[test]
fn eskm_interfaces_r1() {
    let c = sample("eskm-two-router.cfg");
    let r1 = c.router("r1").unwrap();
    let lan = interface(r1, "r1-node", "lan-net");
    assert_eq!(lan.tenant.as_ref().unwrap().as_str(), "engineering");
    assert_eq!(lan.addresses[0].prefix_length, 24);

    let wan_a = interface(r1, "r1-node", "wan-a-net");
    assert_eq!(wan_a.mtu, 1400);
    assert_eq!(wan_a.enforced_mss, EnforcedMss::Automatic);
    assert_eq!(wan_a.addresses[0].gateway, Some(ip("10.202.0.2")));
    let hood = &wan_a.neighborhoods[0];
    assert_eq!(hood.topology, Topology::Mesh);
    assert_eq!(hood.peer_connectivity, PeerConnectivity::Bidirectional);
    assert_eq!(hood.udp_transform, UdpTransformMode::AutoDetect);
    assert_eq!(hood.payload_encryption_override, Some(PayloadEncryptionOverride::EnableEncryption));
    assert_eq!(wan_a.adjacencies.len(), 1);
    let adj = &wan_a.adjacencies[0];
    assert_eq!(adj.ip_address, ip("10.202.0.2"));
    assert_eq!(adj.peer.as_str(), "r2");
    assert_eq!(adj.cost, 10);
    assert!(!adj.generated);
    assert_eq!(adj.payload_encryption_override, Some(PayloadEncryptionOverride::DisabledOverride));
    assert_eq!(adj.port_ranges, vec![PortRange { start: 16384, end: 16511 }]);
    assert_eq!(adj.neighborhood.as_deref(), Some("wan-a"));

    let wan_b = interface(r1, "r1-node", "wan-b-net");
    assert_eq!(wan_b.enforced_mss, EnforcedMss::Fixed(1360));
    assert_eq!(wan_b.adjacencies.len(), 1);
    let generated = &wan_b.adjacencies[0];
    assert!(generated.generated);
    assert_eq!(generated.ip_address, ip("10.203.0.2"));
    assert_eq!(generated.peer.as_str(), "r2");
}

#[test]
fn eskm_router_r2() {
    let c = sample("eskm-two-router.cfg");
    let r2 = c.router("r2").unwrap();
    let node = r2.node("r2-node").unwrap();
    assert_eq!(node.dataplane.driver, Driver::Dpdk);
    assert_eq!(node.dataplane.polling_mode, PollingMode::Busy);
    assert_eq!(node.dataplane.worker_cores, vec![0, 1]);
    assert_eq!(node.dataplane.eal_arguments, vec!["--no-huge", "--no-pci"]);
    assert_eq!(node.device_interfaces[0].vdev.as_deref(), Some("net_af_packet0,iface=r2-lan"));
    assert_eq!(node.device_interfaces[1].pci_address.as_deref(), Some("0000:03:00.0"));

    let ServiceRouteTarget::NextHops(hops) = &r2.service_routes[0].target else { panic!() };
    assert_eq!(hops[0].node_name.as_str(), "r2-node");
    assert_eq!(hops[0].interface.as_str(), "lan-net");
    assert_eq!(hops[0].gateway_ip, Some(ip("10.205.0.10")));

    // r2 lists no peers: r1 comes from the shared neighborhoods, with both paths.
    let peer = r2.peer("r1").unwrap();
    assert!(peer.generated);
    assert_eq!(peer.peering_common_name.as_deref(), Some("r1-alias"));
    assert_eq!(peer.ml_kem_keygen_priority, Some(20));
    assert_eq!(peer.authority_name.as_deref(), Some("lab"));
    let paths: Vec<_> = r2
        .peer_paths()
        .map(|p| (p.network_interface.name.as_str(), p.adjacency.ip_address))
        .collect();
    assert_eq!(paths, vec![("wan-a-net", ip("10.202.0.1")), ("wan-b-net", ip("10.203.0.1"))]);
}

#[test]
fn eskm_bfd_merge_on_path() {
    let c = sample("eskm-two-router.cfg");
    let r1 = c.router("r1").unwrap();
    let path = r1.peer_paths().find(|p| p.network_interface.name == "wan-a-net").unwrap();
    let bfd = c.bfd_settings(r1, path.network_interface, path.adjacency);
    assert_eq!(bfd.multiplier, 5, "peer over router");
    assert_eq!(bfd.desired_tx_interval, Duration::from_millis(3000), "neighborhood over router");
    assert_eq!(bfd.link_test_length, 15, "neighborhood");
    assert_eq!(bfd.link_test_interval, Duration::from_secs(30), "adjacency over router");
    assert_eq!(bfd.required_min_rx_interval, Duration::from_millis(800), "router");
    assert_eq!(bfd.required_min_echo_interval, Duration::from_millis(1500));
    assert_eq!(bfd.hold_down_time, Duration::from_secs(7));
    assert_eq!(bfd.maximum_hold_down_time, Duration::from_secs(600));
    assert!(bfd.dynamic_damping);
    assert!(bfd.enabled);
    assert_eq!(bfd.authentication_type, BfdAuthentication::Sha256);

    let other = r1.peer_paths().find(|p| p.network_interface.name == "wan-b-net").unwrap();
    let bfd = c.bfd_settings(r1, other.network_interface, other.adjacency);
    assert_eq!(
        bfd.desired_tx_interval,
        Duration::from_millis(2000),
        "router value, wan-b has none"
    );
    assert_eq!(bfd.multiplier, 5);
}

#[test]
fn eskm_key_exchange_from_authority() {
    let c = sample("eskm-two-router.cfg");
    let r1 = c.router("r1").unwrap();
    let kex = c.key_exchange_algorithm(r1, r1.peer("r2").unwrap());
    assert_eq!(kex.keyword(), "diffie-hellman-ml-kem");
    assert_eq!(kex.dh_key_size().map(DhKeySize::bits), Some(2048));
    assert_eq!(kex.ml_kem_key_size().map(MlKemKeySize::parameter_set), Some(768));
}

#[test]
fn hub_and_spoke_generation() {
    let c = sample("hub-and-spoke.cfg");
    let hub = c.router("hub").unwrap();
    let mut hub_peers: Vec<&str> = hub.peers.iter().map(|p| p.name.as_str()).collect();
    hub_peers.sort();
    assert_eq!(hub_peers, vec!["spoke1", "spoke2"]);
    assert!(hub.peers.iter().all(|p| p.generated));
    let hub_paths: Vec<IpAddr> = hub.peer_paths().map(|p| p.adjacency.ip_address).collect();
    assert_eq!(hub_paths, vec![ip("10.210.0.11"), ip("10.210.0.12")]);

    for name in ["spoke1", "spoke2"] {
        let spoke = c.router(name).unwrap();
        let peers: Vec<&str> = spoke.peers.iter().map(|p| p.name.as_str()).collect();
        assert_eq!(peers, vec!["hub"], "{name} peers only with the hub");
        let path = spoke.peer_paths().next().unwrap();
        assert_eq!(path.adjacency.ip_address, ip("10.210.0.1"));
        assert_eq!(spoke.peer("hub").unwrap().peering_common_name.as_deref(), Some("hub-alias"));
    }

    let spoke1 = c.router("spoke1").unwrap();
    let hood = &spoke1.nodes[0].device_interfaces[0].network_interfaces[0].neighborhoods[0];
    assert_eq!(hood.peer_connectivity, PeerConnectivity::OutboundOnly);
    assert_eq!(hood.topology, Topology::Spoke);
    assert!(
        matches!(&spoke1.service_routes[0].target, ServiceRouteTarget::Peer(p) if p.as_str() == "hub")
    );

    // The hub's neighborhood BFD reaches the hub's generated paths.
    let path = hub.peer_paths().next().unwrap();
    let bfd = c.bfd_settings(hub, path.network_interface, path.adjacency);
    assert_eq!(bfd.desired_tx_interval, Duration::from_millis(5000));

    assert_eq!(
        c.authority.security_key_management.key_exchange_algorithm.dh_key_size(),
        Some(DhKeySize::Bits2048)
    );
    let service = c.authority.service("anything").unwrap();
    assert_eq!(service.addresses[0].length, 0);
}

#[test]
fn hub_and_spoke_self_signed_warning() {
    let c = sample("hub-and-spoke.cfg");
    assert_eq!(c.warnings().len(), 1);
    assert_eq!(c.warnings()[0].kind, ConfigWarningKind::SelfSigned);
    assert_eq!(c.warnings()[0].span, Span::new(6, 1));
}

#[test]
fn overrides_precedence() {
    let c = sample("overrides.cfg");
    let east = c.router("east").unwrap();
    let authority = c.authority.security_key_management.key_exchange_algorithm;
    assert_eq!(authority, KeyExchangeAlgorithm::DiffieHellman { dh: DhKeySize::Bits4096 });

    // Peer override first.
    let west = east.peer("west").unwrap();
    assert_eq!(
        c.key_exchange_algorithm(east, west),
        KeyExchangeAlgorithm::DiffieHellmanMlKem {
            dh: DhKeySize::Bits1024,
            ml_kem: MlKemKeySize::MlKem512
        }
    );
    // Then the local router's override.
    let north = east.peer("north").unwrap();
    assert_eq!(
        c.key_exchange_algorithm(east, north),
        KeyExchangeAlgorithm::MlKem { ml_kem: MlKemKeySize::MlKem1024 }
    );
    // An empty override block selects the default case.
    let north_router = c.router("north").unwrap();
    assert_eq!(north_router.key_exchange_algorithm_override, Some(KeyExchangeAlgorithm::default()));
    assert_eq!(west.ml_kem_keygen_priority, Some(5));
    assert_eq!(east.ml_kem_keygen_priority, Some(10));

    // west has no override and no peers by hand: the authority applies.
    let west_router = c.router("west").unwrap();
    assert!(west_router.peers.is_empty());
    assert_eq!(west_router.key_exchange_algorithm_override, None);
}

#[test]
fn overrides_ml_kem_warning() {
    let c = sample("overrides.cfg");
    let kinds: Vec<_> = c.warnings().iter().map(|w| &w.kind).collect();
    assert_eq!(
        kinds,
        vec![&ConfigWarningKind::MlKemNotFips { keyword: "key-exchange-algorithm-override" }]
    );
    assert_eq!(c.warnings()[0].span, Span::new(20, 13));
}

#[test]
fn flat_form() {
    let c = sample("flat.cfg");
    let a = &c.authority;
    assert_eq!(a.name.as_deref(), Some("flat lab"));
    assert!(!a.enhanced_security_key_management);
    assert_eq!(a.security_key_management.peer_key_timeout, Duration::from_secs(7200));
    assert_eq!(
        a.tenant("blue team").unwrap().description.as_deref(),
        Some("tenant with spaces in its name")
    );
    let dns = a.service("dns").unwrap();
    assert_eq!(dns.transports[0].protocol, Protocol::Udp);
    assert_eq!(dns.transports[0].port_ranges, vec![PortRange { start: 53, end: 53 }]);
    assert_eq!(dns.access_policies[0].source.as_str(), "blue team");

    let edge = c.router("edge").unwrap();
    assert_eq!(edge.description.as_deref(), Some("edge router \"one\""));
    assert_eq!(edge.location.as_deref(), Some("Building 2\tFloor 3"));
    assert_eq!(edge.nodes.len(), 1);
    let lan = interface(edge, "edge-1", "lan-net");
    assert_eq!(lan.tenant.as_ref().unwrap().as_str(), "blue team");
    assert_eq!(lan.addresses.len(), 1);
    assert_eq!(lan.addresses[0].prefix_length, 64);
    assert_eq!(lan.addresses[0].gateway, Some(ip("2001:db8:1::fe")));
    let ServiceRouteTarget::NextHops(hops) = &edge.service_routes[0].target else { panic!() };
    assert_eq!(hops.len(), 1);
    assert_eq!(hops[0].gateway_ip, Some(ip("2001:db8:1::fe")));
}

#[test]
fn select_router_rules() {
    let two = sample("eskm-two-router.cfg");
    assert_eq!(two.select_router(Some("r2"), "anything").unwrap().name, "r2");
    assert_eq!(two.select_router(None, "r1-node").unwrap().name, "r1");
    assert_eq!(
        two.select_router(Some("r3"), "h").unwrap_err().to_string(),
        "router r3 not found in the authority (routers: r1, r2)"
    );
    assert_eq!(
        two.select_router(None, "elsewhere").unwrap_err().to_string(),
        "no router has a node named elsewhere and several routers could run here (r1, r2): \
         choose one with --router"
    );

    let flat = sample("flat.cfg");
    assert_eq!(flat.select_router(None, "other-host").unwrap().name, "edge");

    // Only one of three routers has a node.
    let overrides = sample("overrides.cfg");
    assert_eq!(overrides.select_router(None, "h").unwrap_err(), SelectRouterError::NoRouter);
}
