//! Resolving a router's setup from the authority configuration: ports, peers, paths,
//! services and routes as the daemon runs them.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::net::IpAddr;

use svr_control::config::parse_authority;
use svr_control::daemon::{DpdkDevice, Plan, PlanError, PortBinding, RoutePlan};

// A device interface without interface-name under af-xdp is already a configuration error,
// so `PlanError::NoInterfaceName` is not reachable from a parsed file with that driver.
use svr_control::kex::{DhGroup, KexAlgorithm, MlKemLevel};

fn sample() -> String {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/configs/eskm-two-router.cfg");
    std::fs::read_to_string(path).unwrap()
}

fn plan(text: &str, router: &str) -> Result<Plan, PlanError> {
    let config = parse_authority(text).unwrap();
    let router = config.router(router).unwrap();
    Plan::resolve(&config, router)
}

#[test]
fn r1_ports_peers_and_paths() {
    let plan = plan(&sample(), "r1").unwrap();
    assert_eq!(plan.router, "r1");
    assert_eq!(plan.peering_common_name, "r1-alias");
    let names: Vec<&str> = plan.ports.iter().map(|p| p.linux_name.as_str()).collect();
    assert_eq!(names, ["r1-lan", "r1-wan-a", "r1-wan-b"]);
    assert_eq!(plan.ports[0].tenant.as_deref(), Some("engineering"));
    assert_eq!(plan.ports[1].tenant, None);

    let r2 = plan.peers.iter().position(|p| p.name == "r2").unwrap();
    assert_eq!(plan.peers[r2].peering_common_name, "r2-alias");
    assert_eq!(
        plan.peers[r2].algorithm,
        KexAlgorithm::Hybrid(DhGroup::Modp2048, MlKemLevel::MlKem768)
    );
    let to_r2: Vec<_> = plan.paths.iter().filter(|p| p.peer == r2).collect();
    assert!(!to_r2.is_empty());
    let remote: IpAddr = "10.202.0.2".parse().unwrap();
    assert!(to_r2.iter().any(|p| p.remote == remote && p.port == 1), "{to_r2:?}");
    assert!(to_r2.iter().all(|p| p.local.is_ipv4() == p.remote.is_ipv4()));
}

#[test]
fn wan_mtu_smallest_wan_port() {
    let plan = plan(&sample(), "r1").unwrap();
    let mtus: Vec<u16> = plan.ports.iter().map(|p| p.mtu).collect();
    assert_eq!(mtus, [1500, 1400, 1500], "lan, wan-a (mtu 1400), wan-b (default)");
    assert_eq!(plan.wan_mtu(), 1400);

    // A LAN port's MTU does not lower the WAN MTU.
    let text = sample().replacen("mtu     1500", "mtu     1200", 1);
    assert_eq!(plan_of(&text).ports[0].mtu, 1200);
    assert_eq!(plan_of(&text).wan_mtu(), 1400);
}

fn plan_of(text: &str) -> Plan {
    plan(text, "r1").unwrap()
}

#[test]
fn route_to_peer_resolves() {
    let r1 = plan(&sample(), "r1").unwrap();
    assert!(
        r1.routes.iter().any(|r| matches!(r, RoutePlan::Peer { service, .. } if service == "web"))
    );
}

#[test]
fn dpdk_ports_bound_by_device() {
    // r2 of the sample runs DPDK: a virtual device on its LAN, NICs by PCI address on its WAN.
    let plan = plan(&sample(), "r2").unwrap();
    let bindings: Vec<&PortBinding> = plan.ports.iter().map(|p| &p.binding).collect();
    assert_eq!(
        bindings,
        [
            &PortBinding::Dpdk {
                device: DpdkDevice::Vdev("net_af_packet0,iface=r2-lan".into()),
                fallback: false
            },
            &PortBinding::Dpdk { device: DpdkDevice::Pci("0000:03:00.0".into()), fallback: false },
            &PortBinding::Dpdk { device: DpdkDevice::Pci("03:00.1".into()), fallback: false },
        ]
    );
    assert!(plan.ports.iter().all(|p| p.is_dpdk()));
    assert_eq!(plan.eal_arguments, ["--no-huge", "--no-pci"]);
    assert_eq!(
        DpdkDevice::Vdev("net_af_packet0,iface=r2-lan".into()).port_name(),
        "net_af_packet0"
    );
    assert_eq!(DpdkDevice::Pci("0000:03:00.0".into()).port_name(), "0000:03:00.0");
}

#[test]
fn auto_driver_falls_back_with_interface() {
    // Under driver auto a vdev with an interface-name may fall back to AF_XDP; one without
    // may not, and a port with only an interface-name is AF_XDP.
    let text = sample().replacen("driver        dpdk", "driver        auto", 1).replacen(
        "vdev  \"net_af_packet0,iface=r2-lan\"",
        "vdev  \"net_af_packet0,iface=r2-lan\"\n                    interface-name  r2-lan",
        1,
    );
    let plan = plan(&text, "r2").unwrap();
    assert!(matches!(plan.ports[0].binding, PortBinding::Dpdk { fallback: true, .. }));
    assert_eq!(plan.ports[0].linux_name, "r2-lan");
    assert!(matches!(plan.ports[1].binding, PortBinding::Dpdk { fallback: false, .. }));
    assert_eq!(plan.ports[1].linux_name, plan.ports[1].name, "no kernel interface to name");

    let r1 = plan_of(&sample().replacen("driver        af-xdp", "driver        auto", 1));
    assert!(r1.ports.iter().all(|p| p.binding == PortBinding::AfXdp));
}

/// Returns the sample with its one client-certificate replaced by `blocks`.
fn with_client_certificates(blocks: &str) -> String {
    let original = "        client-certificate  svr-peering\n            name  svr-peering\n            file  svr-peering\n        exit\n";
    let text = sample();
    assert!(text.contains(original), "the sample's client-certificate block changed");
    text.replacen(original, blocks, 1)
}

/// Line of `router r1` in the sample, which [`client_file`] blocks of four lines keep.
const ROUTER_R1_LINE: u32 = 113;

fn client_file(name: &str, file: &str) -> String {
    format!(
        "        client-certificate  {name}\n            name  {name}\n            file  {file}\n        exit\n"
    )
}

#[test]
fn certificate_only_unnamed_one_taken() {
    let plan = plan(&sample(), "r1").unwrap();
    let (pem, key) = plan.certificate.unwrap();
    assert_eq!(pem.to_str(), Some("svr-peering"));
    assert_eq!(key.to_str(), Some("svr-peering.key"));
}

#[test]
fn certificate_by_router_name() {
    let blocks = client_file("r2", "/pki/r2.pem") + &client_file("r1", "/pki/r1.pem");
    let plan = plan(&with_client_certificates(&blocks), "r1").unwrap();
    assert_eq!(plan.certificate.unwrap().0.to_str(), Some("/pki/r1.pem"));
}

#[test]
fn certificate_by_peering_common_name() {
    let blocks = client_file("r2-alias", "/pki/r2.pem") + &client_file("r1-alias", "/pki/r1.pem");
    let plan = plan(&with_client_certificates(&blocks), "r1").unwrap();
    assert_eq!(plan.certificate.unwrap().0.to_str(), Some("/pki/r1.pem"));
}

#[test]
fn certificate_of_other_router_not_taken() {
    let blocks = client_file("r2", "/pki/r2.pem");
    let error = plan(&with_client_certificates(&blocks), "r1").unwrap_err();
    assert_eq!(
        error,
        PlanError::NoOwnCertificate {
            router: "r1".into(),
            expected: vec!["r1".into(), "r1-alias".into()],
            found: vec!["r2".into()],
            line: ROUTER_R1_LINE,
        }
    );
    let text = error.to_string();
    assert!(text.starts_with(&format!("line {ROUTER_R1_LINE}: router r1: ")), "{text}");
    assert!(text.contains("no client-certificate is named r1 or r1-alias"), "{text}");
}

#[test]
fn certificate_two_unnamed_ambiguous() {
    let blocks = client_file("site-a", "/pki/a.pem") + &client_file("site-b", "/pki/b.pem");
    let error = plan(&with_client_certificates(&blocks), "r1").unwrap_err();
    assert!(matches!(error, PlanError::NoOwnCertificate { .. }), "{error:?}");
}

#[test]
fn certificate_content_rejected() {
    let block = "        client-certificate  r1\n            name  r1\n            content  \"-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n\"\n        exit\n";
    let error = plan(&with_client_certificates(block), "r1").unwrap_err();
    assert!(
        matches!(&error, PlanError::CertificateContent { certificate, .. } if certificate == "r1"),
        "{error:?}"
    );
    assert!(error.to_string().contains("give it as `file PATH`"), "{error}");
}
