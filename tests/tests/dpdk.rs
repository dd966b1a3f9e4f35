//! An svrd router on DPDK ports in a network namespace, carrying traffic to an svrd router
//! on AF_XDP. r1's ports are DPDK `net_af_packet` devices on veth interfaces that have no
//! address in r1's kernel, so everything r1 does on them is svrd's own: BFD and the key
//! exchange through its workers, ARP and IPv6 neighbour discovery for host1 and r2, and
//! the forwarding.
#![cfg(feature = "dpdk")]
#![allow(clippy::expect_used, clippy::panic, reason = "a harness step that fails ends the test")]

use std::fs;
use std::time::Duration;

use svr_tests::authority::{Authority, Port, Route, Router, Service};
use svr_tests::harness::{Namespaces, Svrd, TempDir, is_root, ping, tcp_transfer};

/// Time allowed for the key exchange of the peer path.
const KEYS: Duration = Duration::from_secs(30);

const HOST1_V4: &str = "10.247.1.10";
const HOST5_V4: &str = "10.247.5.10";
const HOST5_V6: &str = "fd47:5::10";
const R1_LAN_V4: &str = "10.247.1.1";
const R1_LAN_V6: &str = "fd47:1::1";
const R1_WAN: &str = "10.247.10.1";
const R2_WAN: &str = "10.247.10.2";

/// host1 - r1 (DPDK) = wan = r2 (AF_XDP) - host5.
fn authority() -> Authority {
    let dpdk = |port: Port, device: &str| Port {
        vdev: Some(format!("{device},iface={}", port.name)),
        ..port
    };
    Authority {
        classic: None,
        tenants: vec!["corp".into()],
        services: vec![
            Service::new("to-host5", &["corp"], &["10.247.5.0/24", "fd47:5::/64"]),
            Service::new("to-host1", &["corp"], &["10.247.1.0/24", "fd47:1::/64"]),
        ],
        routers: vec![
            Router {
                name: "r1".into(),
                ports: vec![
                    dpdk(
                        Port::lan("lan", "corp", &["10.247.1.1/24", "fd47:1::1/64"]),
                        "net_af_packet0",
                    ),
                    dpdk(Port::wan("wan", "10.247.10.1/24", &[(R2_WAN, "r2")]), "net_af_packet1"),
                ],
                routes: vec![Route::peer("to-host5", "r2"), Route::local("to-host1", "lan", None)],
            },
            Router {
                name: "r2".into(),
                ports: vec![
                    Port::lan("lan", "corp", &["10.247.5.1/24", "fd47:5::1/64"]),
                    Port::wan("wan", "10.247.10.2/24", &[(R1_WAN, "r1")]),
                ],
                routes: vec![Route::peer("to-host1", "r1"), Route::local("to-host5", "lan", None)],
            },
        ],
    }
}

struct Lab {
    // Fields drop in order: the routers stop before their namespaces go.
    r1: Svrd,
    r2: Svrd,
    dir: TempDir,
    ns: Namespaces,
}

impl Lab {
    fn start() -> Lab {
        let mut ns = Namespaces::new("dp");
        let dir = TempDir::new("dpdk").expect("temporary directory");
        for (name, router) in [("host1", false), ("r1", true), ("r2", true), ("host5", false)] {
            ns.add(name, router).expect("add namespace");
        }
        ns.link("host1", "lan", "r1", "lan").expect("link host1-r1");
        ns.link("r1", "wan", "r2", "wan").expect("link r1-r2");
        ns.link("r2", "lan", "host5", "lan").expect("link r2-host5");
        // r1's interfaces stay without addresses: its kernel answers nothing on them.
        for (host, interface, cidr) in [
            ("host1", "lan", "10.247.1.10/24"),
            ("host1", "lan", "fd47:1::10/64"),
            ("r2", "wan", "10.247.10.2/24"),
            ("r2", "lan", "10.247.5.1/24"),
            ("r2", "lan", "fd47:5::1/64"),
            ("host5", "lan", "10.247.5.10/24"),
            ("host5", "lan", "fd47:5::10/64"),
        ] {
            ns.addr(host, interface, cidr).expect("add address");
        }
        for (host, gateway) in [
            ("host1", R1_LAN_V4),
            ("host1", R1_LAN_V6),
            ("host5", "10.247.5.1"),
            ("host5", "fd47:5::1"),
        ] {
            ns.default_route(host, gateway).expect("default route");
        }
        // Only r2's side is warmed: nothing on r1's side can be reached before svrd runs.
        ns.warm("host5", "10.247.5.1").expect("host5 warm-up");
        ns.warm("host5", "fd47:5::1").expect("host5 warm-up");

        svr_tests::harness::svrd_binary().expect("build svrd");
        let config = dir.join("authority.cfg");
        fs::write(&config, authority().render()).expect("write config");
        let r1 = Svrd::start(&ns, "r1", "r1", &config, &dir.0).expect("start svrd r1");
        let r2 = Svrd::start(&ns, "r2", "r2", &config, &dir.0).expect("start svrd r2");
        Lab { r1, r2, dir, ns }
    }

    fn logs(&self) -> String {
        format!(
            "--- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.r1.log_tail(30),
            self.r2.log_tail(30)
        )
    }

    /// Returns r1's counter `section`/`name` from `show stats`.
    fn r1_stat(&self, section: &str, name: &str) -> u64 {
        let reply = self.r1.request(&["show", "stats"]).expect("show stats");
        reply.data[section][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter {section}/{name} in {}", reply.data))
    }
}

/// Returns the neighbour entry of `address` in namespace `ns`, as `ip neigh` prints it.
fn neighbour_entry(lab: &Lab, ns: &str, address: &str) -> String {
    let output = lab.ns.exec(ns, &["ip", "neigh", "show", address]).expect("ip neigh");
    String::from_utf8_lossy(&output.stdout).trim().to_string()
}

#[test]
fn netns_dpdk_router_forwards() {
    assert!(
        is_root(),
        "netns_dpdk_router_forwards creates network namespaces and needs root: run it as root \
         on Debian 12 with the packages of scripts/install-deps"
    );
    let mut lab = Lab::start();
    lab.r1.wait_complete(1, KEYS).unwrap_or_else(|e| panic!("r1 keys: {e}\n{}", lab.logs()));
    lab.r2.wait_complete(1, KEYS).unwrap_or_else(|e| panic!("r2 keys: {e}\n{}", lab.logs()));
    let r1_log = lab.r1.log_text();
    assert!(r1_log.contains("port open (dpdk) port=lan"), "r1's LAN is a DPDK port\n{r1_log}");
    assert!(r1_log.contains("port open (dpdk) port=wan"), "r1's WAN is a DPDK port\n{r1_log}");

    // r2's kernel knows r1's waypoint, from svrd's ARP.
    let waypoint = neighbour_entry(&lab, "r2", R1_WAN);
    assert!(waypoint.contains("lladdr"), "r2 resolved {R1_WAN}: {waypoint:?}\n{}", lab.logs());

    // host1 reaches its gateway, r1's LAN address, through svrd's ARP and neighbour
    // discovery, and host5 beyond it.
    assert_eq!(ping(&lab.ns, "host1", HOST5_V4, 5), 5, "ping host5\n{}", lab.logs());
    assert_eq!(ping(&lab.ns, "host1", HOST5_V6, 3), 3, "ping6 host5\n{}", lab.logs());
    let gateway = neighbour_entry(&lab, "host1", R1_LAN_V4);
    assert!(gateway.contains("lladdr"), "host1 resolved {R1_LAN_V4}: {gateway:?}\n{}", lab.logs());
    let gateway_v6 = neighbour_entry(&lab, "host1", R1_LAN_V6);
    assert!(gateway_v6.contains("lladdr"), "host1 resolved {R1_LAN_V6}: {gateway_v6:?}");

    let transfer = tcp_transfer(&lab.ns, &lab.dir, "host5", "host1", HOST5_V4, 7301, 2 << 20)
        .unwrap_or_else(|e| panic!("TCP transfer failed: {e}\n{}", lab.logs()));
    assert_eq!(transfer.bytes, 2 << 20, "bytes received\n{}", lab.logs());
    assert_eq!(transfer.received, transfer.sent, "SHA-256 of the transfer");
    let reverse = tcp_transfer(&lab.ns, &lab.dir, "host1", "host5", HOST1_V4, 7302, 1 << 20)
        .unwrap_or_else(|e| panic!("TCP transfer towards host1 failed: {e}\n{}", lab.logs()));
    assert_eq!(reverse.received, reverse.sent, "SHA-256 of the transfer towards host1");

    // svrd asked for r2's waypoint (from which r2's kernel learned r1 in turn), answered
    // host1's ARP request and neighbour solicitation, and learned host1 in both families
    // and r2.
    let stats = lab.r1.request(&["show", "stats"]).expect("show stats");
    let neighbours = &stats.data["neighbours"];
    assert!(lab.r1_stat("neighbours", "requests_sent") >= 1, "{neighbours}");
    assert!(lab.r1_stat("neighbours", "replies_sent") >= 2, "{neighbours}");
    assert!(lab.r1_stat("neighbours", "learned") >= 3, "{neighbours}");
    assert_eq!(lab.r1_stat("neighbours", "malformed"), 0, "{neighbours}");
    for reason in ["bad_tag", "replay", "no_key", "unknown_key_id", "malformed"] {
        assert_eq!(lab.r1_stat("drops", reason), 0, "r1 drops for {reason}\n{}", lab.logs());
    }
}

#[test]
fn netns_dpdk_router_stops_cleanly() {
    assert!(is_root(), "netns_dpdk_router_stops_cleanly creates network namespaces and needs root");
    let mut lab = Lab::start();
    lab.r1.wait_complete(1, KEYS).unwrap_or_else(|e| panic!("r1 keys: {e}\n{}", lab.logs()));
    lab.r2.wait_complete(1, KEYS).unwrap_or_else(|e| panic!("r2 keys: {e}\n{}", lab.logs()));

    // A stopped DPDK router tells its peer at once with AdminDown through its workers,
    // so the peer's path goes down within a second, before the detection time of at
    // least 1.5 s (three times the 500 ms receive interval) could pass.
    let status = lab.r1.stop().expect("r1 was running");
    assert!(status.success(), "r1 exits cleanly: {status}\n{}", lab.logs());
    // EAL's runtime directory for r1's file prefix goes with it, telemetry socket included.
    let runtime = std::path::Path::new("/var/run/dpdk/svrd-r1");
    assert!(!runtime.exists(), "{} left after a clean stop\n{}", runtime.display(), lab.logs());
    let deadline = std::time::Instant::now() + Duration::from_secs(1);
    let mut down = false;
    while std::time::Instant::now() < deadline {
        let reply = lab.r2.request(&["show", "peers", "security"]).expect("show peers");
        if reply.data[0]["status"] == "down" {
            down = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(down, "r2 saw r1's path go down after r1 stopped\n{}", lab.logs());
}
