//! Resolving a router's setup from the authority configuration: ports, peers, paths,
//! services and routes as the daemon runs them.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::net::IpAddr;

use svr_control::config::parse_authority;
use svr_control::daemon::{Plan, PlanError, RoutePlan};

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
fn route_to_peer_resolves() {
    let r1 = plan(&sample(), "r1").unwrap();
    assert!(
        r1.routes.iter().any(|r| matches!(r, RoutePlan::Peer { service, .. } if service == "web"))
    );
}

#[test]
fn dpdk_driver_is_refused_with_reason() {
    // r2 of the sample runs DPDK ports, which the daemon does not open yet.
    let error = plan(&sample(), "r2").unwrap_err();
    assert_eq!(error, PlanError::DriverNotSupported { driver: "dpdk" });
    assert!(error.to_string().starts_with("dataplane driver dpdk: "), "{error}");
}
