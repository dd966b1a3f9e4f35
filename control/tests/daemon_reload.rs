//! Configuration reload: comparing a router's new setup with the running one, keeping peer
//! and path indices, and rejecting what only a restart can apply.
#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::collections::BTreeSet;
use std::path::PathBuf;

use svr_control::config::parse_authority;
use svr_control::daemon::{Plan, Reload, ReloadError, prepare_reload, read_plan};
use svr_control::kex::{KexAlgorithm, MlKemLevel};

/// The settings the tests vary, with the values of a two-peer hub `hub`.
#[derive(Clone)]
struct Setup {
    /// Peers of the hub: name and the adjacency address on the hub's WAN.
    peers: Vec<(&'static str, &'static str)>,
    /// Extra services, each reached through the first peer.
    services: Vec<&'static str>,
    /// `key-exchange-algorithm` block of the authority.
    algorithm: &'static str,
    /// BFD desired-tx-interval of the hub.
    bfd_tx: u32,
    /// peer-key-retransmit-interval in seconds.
    retransmit: u32,
    /// The LAN's interface-name.
    lan_interface: &'static str,
    /// Extra text in the hub's node block.
    node_extra: &'static str,
    /// peering-common-name of the second peer.
    second_name: &'static str,
    /// Locations of the authority's certificate revocation lists.
    crls: Vec<&'static str>,
}

impl Default for Setup {
    fn default() -> Setup {
        Setup {
            peers: vec![("spoke1", "10.241.0.2"), ("spoke2", "10.241.0.3")],
            services: Vec::new(),
            algorithm: "diffie-hellman\n                dh-key-size 2048\n            exit",
            bfd_tx: 1000,
            retransmit: 30,
            lan_interface: "lan",
            node_extra: "",
            second_name: "",
            crls: Vec::new(),
        }
    }
}

fn text(setup: &Setup) -> String {
    let mut services = String::new();
    let mut routes = String::new();
    for name in &setup.services {
        services.push_str(&format!(
            "        service {name}\n            address 10.242.9.0/24\n            \
             access-policy corp\n                permission allow\n            exit\n        \
             exit\n"
        ));
        routes.push_str(&format!(
            "            service-route {name}-route\n                service-name {name}\n    \
                         peer {}\n            exit\n",
            setup.peers[0].0
        ));
    }
    let mut crls = String::new();
    for location in &setup.crls {
        crls.push_str(&format!(
            "        certificate-revocation-list \"{location}\"\n            polling-interval 1\n        \
             exit\n"
        ));
    }
    let mut peers = String::new();
    let mut adjacencies = String::new();
    let mut others = String::new();
    for (index, (name, address)) in setup.peers.iter().enumerate() {
        let common = if index == 1 && !setup.second_name.is_empty() {
            format!("                peering-common-name {}\n", setup.second_name)
        } else {
            String::new()
        };
        peers.push_str(&format!(
            "            peer {name}\n                router-name {name}\n{common}            \
             exit\n"
        ));
        others.push_str(&format!("        router {name}\n        exit\n"));
        adjacencies.push_str(&format!(
            "                        adjacency {address} {name}\n                        \
             exit\n"
        ));
    }
    format!(
        "config
    authority
        name lab
        enhanced-security-key-management true
        security-key-management
            peer-key-retransmit-interval {retransmit}
            key-exchange-algorithm
            {algorithm}
            exit
        exit
{crls}        tenant corp
        exit
        service to-lan
            address 10.242.1.0/24
            access-policy corp
                permission allow
            exit
        exit
{services}        router hub
            bfd
                desired-tx-interval {bfd_tx}
            exit
{peers}            service-route to-lan-local
                service-name to-lan
                next-hop hub-node lan-net
                exit
            exit
{routes}            node hub-node
                dataplane
                    driver af-xdp
                    polling-mode adaptive
{node_extra}                exit
                device-interface lan
                    interface-name {lan_interface}
                    network-interface lan-net
                        tenant corp
                        address 10.242.1.1
                            prefix-length 24
                        exit
                    exit
                exit
                device-interface wan
                    interface-name wan
                    network-interface wan-net
                        address 10.241.0.1
                            prefix-length 24
                        exit
                        neighborhood wan
                        exit
{adjacencies}                    exit
                exit
            exit
        exit
{others}    exit
exit
",
        retransmit = setup.retransmit,
        algorithm = setup.algorithm,
        bfd_tx = setup.bfd_tx,
        node_extra = setup.node_extra,
        lan_interface = setup.lan_interface,
    )
}

fn plan(setup: &Setup) -> Plan {
    let config = parse_authority(&text(setup)).unwrap();
    Plan::resolve(&config, config.router("hub").unwrap()).unwrap()
}

fn levels() -> BTreeSet<MlKemLevel> {
    BTreeSet::new()
}

fn reload(running: &Setup, new: &Setup) -> Reload {
    prepare_reload(&plan(running), plan(new), &levels()).unwrap()
}

fn reload_errors(running: &Setup, new: &Setup) -> Vec<ReloadError> {
    prepare_reload(&plan(running), plan(new), &levels()).unwrap_err()
}

/// A configuration file in the temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &str) -> TempFile {
        let path = std::env::temp_dir()
            .join(format!("svr-control-reload-{}-{name}.cfg", std::process::id()));
        std::fs::write(&path, contents).unwrap();
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

#[test]
fn reload_same_file_changes_nothing() {
    let outcome = reload(&Setup::default(), &Setup::default());
    assert!(outcome.is_empty(), "{:?}", outcome.changes);
    assert!(outcome.restart_needed.is_empty(), "{:?}", outcome.restart_needed);
    assert!(!outcome.paths_changed);
    assert!(!outcome.forwarding_changed);
}

#[test]
fn reload_service_added() {
    let new = Setup { services: vec!["to-extra"], ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert!(outcome.forwarding_changed);
    assert!(!outcome.paths_changed);
    assert!(outcome.plan.services.iter().any(|s| s.name == "to-extra"));
    assert!(outcome.changes.iter().any(|c| c.contains("to-extra")), "{:?}", outcome.changes);
    assert_eq!(outcome.plan.routes.len(), 2);
}

#[test]
fn reload_peer_removed_keeps_indices() {
    let new = Setup { peers: vec![("spoke2", "10.241.0.3")], ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    let names: Vec<&str> = outcome.plan.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["spoke1", "spoke2"]);
    assert!(outcome.plan.peers[0].retired);
    assert!(!outcome.plan.peers[1].retired);
    assert_eq!(outcome.peers_removed, [0]);
    assert!(outcome.paths_changed);
    let retired: Vec<bool> = outcome.plan.paths.iter().map(|p| p.retired).collect();
    assert_eq!(retired, [true, false]);
    assert_eq!(outcome.plan.paths[1].peer, 1);
}

#[test]
fn reload_peer_added_appended() {
    let mut new = Setup::default();
    new.peers.insert(0, ("spoke3", "10.241.0.4"));
    let outcome = reload(&Setup::default(), &new);
    let names: Vec<&str> = outcome.plan.peers.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["spoke1", "spoke2", "spoke3"]);
    assert_eq!(outcome.peers_added, [2]);
    assert!(outcome.peers_removed.is_empty());
    assert!(outcome.paths_changed);
    let spoke3 = outcome.plan.paths.iter().find(|p| p.remote.to_string() == "10.241.0.4");
    assert_eq!(spoke3.unwrap().peer, 2);
    assert_eq!(outcome.plan.paths.len(), 3);
}

#[test]
fn reload_peer_added_back_reuses_slot() {
    let without = Setup { peers: vec![("spoke2", "10.241.0.3")], ..Setup::default() };
    let removed = reload(&Setup::default(), &without);
    let added = prepare_reload(&removed.plan, plan(&Setup::default()), &levels()).unwrap();
    assert_eq!(added.peers_added, [0]);
    assert_eq!(added.plan.peers.len(), 2);
    assert!(added.plan.peers.iter().all(|p| !p.retired));
    assert!(added.plan.paths.iter().all(|p| !p.retired));
    assert_eq!(added.plan.paths.len(), 2);
}

#[test]
fn reload_peer_common_name_replaces_peer() {
    let new = Setup { second_name: "spoke2-renamed", ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert_eq!(outcome.peers_replaced, [1]);
    assert_eq!(outcome.plan.peers[1].peering_common_name, "spoke2-renamed");
    assert!(!outcome.paths_changed);
}

#[test]
fn reload_algorithm_changed() {
    let new = Setup {
        algorithm: "diffie-hellman\n                dh-key-size 4096\n            exit",
        ..Setup::default()
    };
    let outcome = reload(&Setup::default(), &new);
    assert_eq!(outcome.peers_algorithm, [0, 1]);
    assert!(matches!(outcome.plan.peers[0].algorithm, KexAlgorithm::DiffieHellman(_)));
    assert!(outcome.peers_replaced.is_empty());
}

#[test]
fn reload_bfd_timers_changed() {
    let new = Setup { bfd_tx: 300, ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert_eq!(outcome.bfd_changed, [0, 1]);
    assert!(!outcome.paths_changed);
    assert_ne!(outcome.plan.paths[0].bfd, plan(&Setup::default()).paths[0].bfd);
}

#[test]
fn reload_kex_timers_changed() {
    let new = Setup { retransmit: 10, ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert!(outcome.timers_changed);
    assert_eq!(outcome.plan.timers.retransmit_interval.as_secs(), 10);
}

#[test]
fn reload_port_change_needs_restart() {
    let new = Setup { lan_interface: "lan2", ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert_eq!(outcome.restart_needed, ["device-interface lan changed"]);
    assert_eq!(outcome.plan.ports[0].linux_name, "lan", "the running port stays");
    assert!(outcome.is_empty(), "{:?}", outcome.changes);
}

#[test]
fn reload_worker_cores_need_restart() {
    let new = Setup { node_extra: "                    worker-cores 1\n", ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert_eq!(outcome.restart_needed.len(), 1, "{:?}", outcome.restart_needed);
    assert!(outcome.restart_needed[0].contains("worker-cores"));
    assert!(outcome.plan.worker_cores.is_empty());
}

#[test]
fn reload_ml_kem_level_needs_restart() {
    let new = Setup {
        algorithm: "ml-kem\n                ml-kem-key-size 1024\n            exit",
        ..Setup::default()
    };
    let errors = reload_errors(&Setup::default(), &new);
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        matches!(&errors[0], ReloadError::NeedsRestart { change } if change.contains("spoke1"))
    );
    assert!(errors[0].to_string().ends_with("this needs a restart of svrd"), "{}", errors[0]);
}

#[test]
fn reload_route_on_new_port_rejected() {
    let running = plan(&Setup::default());
    let mut new = plan(&Setup::default());
    new.ports[0].name = "lan-new".into();
    let errors = prepare_reload(&running, new, &levels()).unwrap_err();
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].to_string().contains("device-interface lan-new, which is not running"));
}

#[test]
fn reload_duplicate_common_name_rejected() {
    let new = Setup { second_name: "spoke1", ..Setup::default() };
    let errors = reload_errors(&Setup::default(), &new);
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(
        matches!(&errors[0], ReloadError::DuplicateCommonName { name } if name == "spoke1"),
        "{errors:?}"
    );
}

#[test]
fn read_plan_lists_every_error() {
    let broken = text(&Setup::default())
        .replace("desired-tx-interval 1000", "desired-tx-interval fast")
        .replace("peer-key-retransmit-interval 30", "peer-key-retransmit-interval 1");
    let file = TempFile::new("broken", &broken);
    let errors = read_plan(&file.0, "hub").unwrap_err();
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(errors.iter().all(|e| matches!(e, ReloadError::Invalid { .. })), "{errors:?}");
    let first = errors[0].to_string();
    assert!(first.starts_with(&file.0.display().to_string()), "{first}");
}

#[test]
fn read_plan_missing_file() {
    let errors = read_plan(std::path::Path::new("/nonexistent/svrd.cfg"), "hub").unwrap_err();
    assert!(matches!(errors[..], [ReloadError::Read(_)]), "{errors:?}");
    assert!(errors[0].to_string().contains("/nonexistent/svrd.cfg"));
}

#[test]
fn read_plan_router_missing() {
    let file = TempFile::new("router", &text(&Setup::default()));
    let errors = read_plan(&file.0, "spoke9").unwrap_err();
    assert!(
        matches!(&errors[..], [ReloadError::RouterMissing { router }] if router == "spoke9"),
        "{errors:?}"
    );
}

#[test]
fn read_plan_dpdk_driver_resolves() {
    let text = text(&Setup::default())
        .replace("driver af-xdp", "driver dpdk")
        .replace("interface-name lan\n", "vdev \"net_af_packet0,iface=lan\"\n")
        .replace("interface-name wan\n", "vdev \"net_af_packet1,iface=wan\"\n");
    let file = TempFile::new("dpdk", &text);
    let dpdk = read_plan(&file.0, "hub").unwrap();
    assert!(dpdk.ports.iter().all(|port| port.is_dpdk()), "{:?}", dpdk.ports);

    // A running AF_XDP router cannot switch its ports to DPDK on reload.
    let outcome = prepare_reload(&plan(&Setup::default()), dpdk, &levels()).unwrap();
    assert!(outcome.restart_needed.iter().any(|line| line.contains("device-interface")));
}

#[test]
fn reload_crl_added() {
    let new = Setup { crls: vec!["/var/lib/svrd-test/root.crl"], ..Setup::default() };
    let outcome = reload(&Setup::default(), &new);
    assert!(outcome.crls_changed);
    assert_eq!(outcome.changes, ["certificate revocation lists: /var/lib/svrd-test/root.crl"]);
    assert_eq!(outcome.plan.crls.len(), 1);
    assert_eq!(outcome.plan.crls[0].location, "/var/lib/svrd-test/root.crl");
}

#[test]
fn reload_crl_removed() {
    let running = Setup { crls: vec!["http://127.0.0.1:8080/a.crl"], ..Setup::default() };
    let outcome = reload(&running, &Setup::default());
    assert!(outcome.crls_changed);
    assert_eq!(outcome.changes, ["certificate revocation lists: none"]);
    assert!(outcome.plan.crls.is_empty());
}

#[test]
fn reload_crl_unchanged_is_no_change() {
    let running = Setup { crls: vec!["http://127.0.0.1:8080/a.crl"], ..Setup::default() };
    let outcome = reload(&running, &running);
    assert!(!outcome.crls_changed);
    assert!(outcome.is_empty(), "{:?}", outcome.changes);
}

#[test]
fn reload_crl_bad_location_rejected() {
    let new = Setup { crls: vec!["ftp://127.0.0.1/a.crl"], ..Setup::default() };
    let errors = reload_errors(&Setup::default(), &new);
    assert_eq!(errors.len(), 1, "{errors:?}");
    let message = errors[0].to_string();
    assert!(message.contains("ftp://127.0.0.1/a.crl"), "{message}");
}
