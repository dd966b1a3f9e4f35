//! Generated peers and adjacencies, warnings, router selection and key exchange precedence.

#![allow(clippy::unwrap_used, clippy::panic, reason = "test helpers fail the test on bad fixtures")]

use std::net::IpAddr;

use svr_control::config::*;

fn parse(text: &str) -> Config {
    match parse_authority(text) {
        Ok(c) => c,
        Err(e) => panic!("{text}\n{e}"),
    }
}

fn ip(s: &str) -> IpAddr {
    s.parse().unwrap()
}

/// Builds a router with one WAN interface at `address` in neighborhood `hood` with `topology`;
/// `extra` goes at router level before the node.
fn router(name: &str, address: &str, hood: &str, topology: &str, extra: &str) -> String {
    format!(
        "router {name}\n{extra}\nnode {name}-n\ndevice-interface wan\ninterface-name {name}-wan\n\
         network-interface wan-net\naddress {address}\nprefix-length 24\nexit\n\
         neighborhood {hood}\ntopology {topology}\nexit\nexit\nexit\nexit\nexit\n"
    )
}

fn authority(routers: &[String]) -> String {
    format!("config\nauthority\nname lab\n{}", routers.concat())
}

fn peer_names(c: &Config, router: &str) -> Vec<String> {
    let mut names: Vec<String> =
        c.router(router).unwrap().peers.iter().map(|p| p.name.clone()).collect();
    names.sort();
    names
}

fn path_ips(c: &Config, router: &str) -> Vec<IpAddr> {
    c.router(router).unwrap().peer_paths().map(|p| p.adjacency.ip_address).collect()
}

#[test]
fn mesh_peers_with_everyone() {
    let c = parse(&authority(&[
        router("a", "10.220.0.1", "core", "mesh", ""),
        router("b", "10.220.0.2", "core", "mesh", ""),
        router("c", "10.220.0.3", "core", "mesh", ""),
    ]));
    assert_eq!(peer_names(&c, "a"), vec!["b", "c"]);
    assert_eq!(peer_names(&c, "b"), vec!["a", "c"]);
    assert_eq!(path_ips(&c, "c"), vec![ip("10.220.0.1"), ip("10.220.0.2")]);
    let peer = c.router("a").unwrap().peer("b").unwrap();
    assert!(peer.generated);
    assert_eq!(peer.router_name.as_deref(), Some("b"));
    assert_eq!(peer.authority_name.as_deref(), Some("lab"));
    let path = c.router("a").unwrap().peer_paths().next().unwrap();
    assert!(path.adjacency.generated);
    assert_eq!(path.adjacency.neighborhood.as_deref(), Some("core"));
}

#[test]
fn hubs_and_spokes_do_not_peer_among_themselves() {
    let c = parse(&authority(&[
        router("h1", "10.221.0.1", "n", "hub", ""),
        router("h2", "10.221.0.2", "n", "hub", ""),
        router("s1", "10.221.0.11", "n", "spoke", ""),
        router("s2", "10.221.0.12", "n", "spoke", ""),
        router("m", "10.221.0.20", "n", "mesh", ""),
    ]));
    assert_eq!(peer_names(&c, "h1"), vec!["m", "s1", "s2"]);
    assert_eq!(peer_names(&c, "s1"), vec!["h1", "h2", "m"]);
    assert_eq!(peer_names(&c, "m"), vec!["h1", "h2", "s1", "s2"]);
}

#[test]
fn different_neighborhoods_do_not_peer() {
    let c = parse(&authority(&[
        router("a", "10.222.0.1", "x", "mesh", ""),
        router("b", "10.222.0.2", "y", "mesh", ""),
    ]));
    assert!(c.router("a").unwrap().peers.is_empty());
    assert!(path_ips(&c, "b").is_empty());
}

#[test]
fn hand_peer_with_other_name_is_used() {
    let c = parse(&authority(&[
        router(
            "a",
            "10.223.0.1",
            "n",
            "mesh",
            "peer far\nrouter-name b\nexit\nservice-route x\nservice-name s\npeer far\nexit",
        ),
        router("b", "10.223.0.2", "n", "mesh", ""),
        "service s\naddress 10.0.0.0/8\n".to_owned(),
    ]));
    assert_eq!(peer_names(&c, "a"), vec!["far"]);
    let path = c.router("a").unwrap().peer_paths().next().unwrap();
    assert_eq!(path.adjacency.peer.as_str(), "far");
    assert!(path.adjacency.generated);
}

#[test]
fn hand_adjacency_wins() {
    let wan = "router a\nnode an\ndevice-interface wan\ninterface-name a-wan\nnetwork-interface wan-net\n\
               address 10.224.0.1\nprefix-length 24\nexit\nneighborhood n\nexit\n\
               adjacency 10.224.0.2 b\ncost 7\nexit\nexit\nexit\nexit\nexit\n";
    let c = parse(&authority(&[wan.to_owned(), router("b", "10.224.0.2", "n", "mesh", "")]));
    let paths: Vec<_> = c
        .router("a")
        .unwrap()
        .peer_paths()
        .map(|p| (p.adjacency.cost, p.adjacency.generated))
        .collect();
    assert_eq!(paths, vec![(7, false)]);
    // The hand adjacency names peer b, which is generated.
    assert!(c.router("a").unwrap().peer("b").unwrap().generated);
}

#[test]
fn generated_peer_copies_remote_settings() {
    let extra = "peering-common-name b-alias\nml-kem-keygen-priority 42\nkey-exchange-algorithm-override\nml-kem\nexit\nexit";
    let c = parse(&authority(&[
        router("a", "10.225.0.1", "n", "mesh", ""),
        router("b", "10.225.0.2", "n", "mesh", extra),
    ]));
    let a = c.router("a").unwrap();
    let peer = a.peer("b").unwrap();
    assert_eq!(peer.peering_common_name.as_deref(), Some("b-alias"));
    assert_eq!(peer.ml_kem_keygen_priority, Some(42));
    assert_eq!(
        peer.key_exchange_algorithm_override,
        Some(KeyExchangeAlgorithm::MlKem { ml_kem: MlKemKeySize::MlKem768 })
    );
    // a has no override of its own, so the peer's copy of b's decides, as on b itself.
    assert_eq!(c.key_exchange_algorithm(a, peer).keyword(), "ml-kem");
    let b = c.router("b").unwrap();
    assert_eq!(c.key_exchange_algorithm(b, b.peer("a").unwrap()).keyword(), "ml-kem");
}

#[test]
fn warning_no_address_for_adjacency() {
    let no_address = "router b\nnode bn\ndevice-interface wan\ninterface-name b-wan\nnetwork-interface wan-net\n\
                      neighborhood n\nexit\nexit\nexit\nexit\nexit\n";
    let c = parse(&authority(&[router("a", "10.226.0.1", "n", "mesh", ""), no_address.to_owned()]));
    let messages: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 13, column 1: warning: neighborhood n: no adjacency generated from router a to b: \
             its network-interface wan-net has no address"
        ]
    );
    assert_eq!(peer_names(&c, "a"), vec!["b"]);
    assert!(path_ips(&c, "a").is_empty());
    assert_eq!(path_ips(&c, "b"), vec![ip("10.226.0.1")]);
}

#[test]
fn warning_both_outbound_only() {
    let a = router("a", "10.227.0.1", "n", "mesh", "")
        .replace("topology mesh", "peer-connectivity outbound-only");
    let b = router("b", "10.227.0.2", "n", "mesh", "")
        .replace("topology mesh", "peer-connectivity outbound-only");
    let c = parse(&authority(&[a, b]));
    assert_eq!(c.warnings().len(), 2);
    assert!(
        c.warnings()[0]
            .to_string()
            .ends_with("both sides are outbound-only, so neither can reach the other"),
        "{}",
        c.warnings()[0]
    );
    assert!(path_ips(&c, "a").is_empty());
}

#[test]
fn warning_peer_common_name_mismatch() {
    let c = parse(&authority(&[
        router("a", "10.228.0.1", "x", "mesh", "peer b\npeering-common-name wrong\nexit"),
        router("b", "10.228.0.2", "y", "mesh", "peering-common-name right"),
    ]));
    let messages: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 5, column 1: warning: peer b: peering-common-name wrong differs from the remote \
             router's right, so its certificate check will fail"
        ]
    );
}

#[test]
fn warning_eskm_without_common_name() {
    let c = parse(
        "config\nauthority\nenhanced-security-key-management true\ntrusted-ca-certificate ca\nfile ca\nexit\nrouter r1\n",
    );
    let messages: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 7, column 1: warning: router r1: enhanced-security-key-management is on but the \
             router has no peering-common-name, so its router name is sent in clear in BFD"
        ]
    );
}

#[test]
fn warning_self_signed_and_ml_kem() {
    let c = parse(
        "config\nauthority\nenhanced-security-key-management true\nsecurity-key-management\n\
         key-exchange-algorithm\nml-kem\n",
    );
    let messages: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 3, column 1: warning: enhanced-security-key-management true: no \
             trusted-ca-certificate is configured, so routers use self-signed certificates that \
             no CA vouches for",
            "line 6, column 1: warning: key-exchange-algorithm ml-kem: ml-kem alone is not FIPS \
             140-3 certified; use diffie-hellman or diffie-hellman-ml-kem where FIPS 140-3 is \
             required",
        ]
    );
}

#[test]
fn no_warnings_without_eskm() {
    let c = parse("config\nauthority\nrouter r1\n");
    assert!(c.warnings().is_empty());
}

#[test]
fn errors_keep_warnings() {
    let err = parse_authority("config\nauthority\nenhanced-security-key-management true\nname\n")
        .unwrap_err();
    assert_eq!(err.errors.len(), 1);
    assert_eq!(err.warnings.len(), 1);
    assert_eq!(err.warnings[0].kind, ConfigWarningKind::SelfSigned);
}

#[test]
fn hand_adjacency_neighborhood_only_when_unique() {
    let text = "config\nauthority\nrouter r1\npeer p\nauthority-name x\nexit\nnode n\ndevice-interface d\n\
                interface-name e\nnetwork-interface w\nneighborhood one\nexit\nneighborhood two\nexit\n\
                adjacency 10.229.0.2 p\n";
    let c = parse(text);
    let path = c.router("r1").unwrap().peer_paths().next().unwrap();
    assert_eq!(path.adjacency.neighborhood, None);
}

#[test]
fn duplicate_adjacency() {
    let text = "config\nauthority\nrouter r1\npeer p\nauthority-name x\nexit\nnode n\ndevice-interface d\n\
                interface-name e\nnetwork-interface w\nadjacency 10.229.0.2 p\nexit\nadjacency 10.229.0.2 p\n";
    let messages: Vec<String> =
        parse_authority(text).unwrap_err().errors.iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 13, column 1: adjacency 10.229.0.2 p: duplicate entry, first defined at line 11"
        ]
    );
}

#[test]
fn select_router_prefers_hostname_then_node() {
    let c = parse(&authority(&[
        router("a", "10.230.0.1", "x", "mesh", ""),
        router("b", "10.230.0.2", "y", "mesh", ""),
        "router conductor\n".to_owned(),
    ]));
    assert_eq!(c.select_router(None, "b-n").unwrap().name, "b");
    assert!(matches!(c.select_router(None, "zzz"), Err(SelectRouterError::Ambiguous { .. })));

    let c = parse(&authority(&[
        router("a", "10.230.0.1", "x", "mesh", ""),
        "router conductor\n".to_owned(),
    ]));
    assert_eq!(c.select_router(None, "zzz").unwrap().name, "a", "the only router with a node");
    assert_eq!(c.select_router(Some("conductor"), "zzz").unwrap().name, "conductor");
}

#[test]
fn comments_and_indentation_ignored() {
    let c = parse(
        "# leading comment\nconfig   # trailing comment\n      authority\n name \"a # not a comment\"\n\
         \x20       router r1 # the only router\n   description x#y\n",
    );
    assert_eq!(c.authority.name.as_deref(), Some("a # not a comment"));
    assert_eq!(c.router("r1").unwrap().description.as_deref(), Some("x#y"));
}

#[test]
fn configure_keyword_and_full_exits() {
    let c = parse("configure\nauthority\nrouter r1\nexit\nrouter r2\nexit\nexit\nexit\n");
    assert_eq!(c.authority.routers.len(), 2);
}

#[test]
fn reopened_config_after_final_exit() {
    // A later `config` line starts from the root again.
    let c = parse("config\nauthority\nname a\nexit\nexit\nconfig authority router r1\n");
    assert_eq!(c.authority.name.as_deref(), Some("a"));
    assert!(c.router("r1").is_some());
}

#[test]
fn peer_paths_iterate_all_nodes() {
    let c = parse(&authority(&[
        router("a", "10.231.0.1", "n", "mesh", ""),
        router("b", "10.231.0.2", "n", "mesh", ""),
    ]));
    let a = c.router("a").unwrap();
    let paths: Vec<_> =
        a.peer_paths().map(|p| (p.node.name.as_str(), p.device_interface.name.as_str())).collect();
    assert_eq!(paths, vec![("a-n", "wan")]);
}

#[test]
fn warning_peer_name_taken() {
    let c = parse(&authority(&[
        router("a", "10.232.0.1", "n", "mesh", "peer b\nrouter-name c\nexit"),
        router("b", "10.232.0.2", "n", "mesh", ""),
        router("c", "10.232.0.3", "x", "mesh", ""),
    ]));
    assert_eq!(peer_names(&c, "a"), vec!["b"]);
    assert_eq!(c.router("a").unwrap().peer("b").unwrap().remote_router(), "c");
    assert!(path_ips(&c, "a").is_empty());
    let messages: Vec<String> = c.warnings().iter().map(ToString::to_string).collect();
    assert_eq!(
        messages,
        vec![
            "line 15, column 1: warning: neighborhood n: no adjacency generated from router a to \
             b: peer b is already defined for router c"
        ]
    );
}

/// Checks `count` tenants, or as many device-interfaces under one node, and returns how long
/// parsing took.
fn time_many_entries(count: usize, devices: bool) -> std::time::Duration {
    let mut text = String::from("config\n authority\n");
    if devices {
        text.push_str("  router r1\n   node n1\n");
        for i in 0..count {
            text.push_str(&format!(
                "    device-interface d{i}\n     interface-name e{}\n    exit\n",
                i % 1000
            ));
        }
        text.push_str("   exit\n  exit\n");
    } else {
        for i in 0..count {
            text.push_str(&format!("  tenant t{i}\n   description \"tenant {i}\"\n  exit\n"));
        }
    }
    text.push_str(" exit\nexit\n");
    let began = std::time::Instant::now();
    let _ = parse_authority(&text);
    began.elapsed()
}

// The bound is generous so a loaded machine does not fail the test; a check quadratic in
// the number of entries takes well over a minute for 50,000.
#[test]
fn many_tenants_check_fast() {
    let elapsed = time_many_entries(50_000, false);
    assert!(elapsed < std::time::Duration::from_secs(10), "50,000 tenants took {elapsed:?}");
}

#[test]
fn many_device_interfaces_check_fast() {
    let elapsed = time_many_entries(50_000, true);
    assert!(elapsed < std::time::Duration::from_secs(10), "50,000 interfaces took {elapsed:?}");
}

#[test]
fn duplicate_entry_still_reported() {
    let text = "config\n authority\n  tenant a\n  exit\n  tenant b\n  exit\n  tenant a\n  exit\n \
                exit\nexit\n";
    let errors = parse_authority(text).unwrap_err();
    assert!(errors.to_string().contains("duplicate"), "{errors}");
}
