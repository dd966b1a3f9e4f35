//! Two svrd routers in classic mode (`enhanced-security-key-management false`) in network
//! namespaces. With one shared security policy, traffic crosses as soon as BFD is up. With
//! policies whose keys differ, it is dropped and counted. A policy without keys stops svrd
//! at start-up with an error naming it, and a reload with new keys installs them. The same
//! topology checks that a WAN `mtu` of 1400 bytes is used for SVR fragments and ICMP
//! errors, and that a LAN host missing from the kernel's neighbour table gets resolved.
#![allow(clippy::expect_used, clippy::panic, reason = "a harness step that fails ends the test")]

use std::fs;
use std::process::Command;
use std::time::{Duration, Instant};

use svr_tests::authority::{Authority, ClassicPolicy, Port, Route, Router, Service};
use svr_tests::harness::{
    Namespaces, PMTUDISC_DONT, Svrd, TempDir, is_root, ping, tcp_transfer, udp_datagram_crosses,
};

/// Time allowed for BFD to bring the peer path up.
const BFD_UP: Duration = Duration::from_secs(20);

const ENCRYPTION_KEY: &str = "3f0c6d2a9b8e7f6051423324150607f8e9dacbbcad9e8f70615243342516a7b8";
const HMAC_KEY: &str = "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90";

fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} creates network namespaces and needs root: run it as root on Debian 12 \
         with the packages of scripts/install-deps"
    );
}

fn policy(hmac_key: &str) -> ClassicPolicy {
    ClassicPolicy {
        name: "wan-keys".into(),
        encryption_key: ENCRYPTION_KEY.into(),
        hmac_key: hmac_key.into(),
    }
}

/// host1 - r1 = wan = r2 - host5 in classic mode with `policy`. LAN 1 is 10.246.1.0/24,
/// LAN 5 is 10.246.5.0/24 and the WAN is 10.246.10.0/24.
fn authority(policy: ClassicPolicy) -> Authority {
    authority_with_mtu(policy, None)
}

/// Returns [`authority`] with `mtu` configured on both WAN network interfaces.
fn authority_with_mtu(policy: ClassicPolicy, mtu: Option<u32>) -> Authority {
    let wan = |address: &str, peer_address: &str, peer: &str| Port {
        mtu,
        ..Port::wan("wan", address, &[(peer_address, peer)])
    };
    Authority {
        classic: Some(policy),
        tenants: vec!["corp".into()],
        services: vec![
            Service::new("to-host5", &["corp"], &["10.246.5.0/24"]),
            Service::new("to-host1", &["corp"], &["10.246.1.0/24"]),
        ],
        routers: vec![
            Router {
                name: "r1".into(),
                ports: vec![
                    Port::lan("lan", "corp", &["10.246.1.1/24"]),
                    wan("10.246.10.1/24", "10.246.10.2", "r2"),
                ],
                routes: vec![Route::peer("to-host5", "r2"), Route::local("to-host1", "lan", None)],
            },
            Router {
                name: "r2".into(),
                ports: vec![
                    Port::lan("lan", "corp", &["10.246.5.1/24"]),
                    wan("10.246.10.2/24", "10.246.10.1", "r1"),
                ],
                routes: vec![Route::peer("to-host1", "r1"), Route::local("to-host5", "lan", None)],
            },
        ],
    }
}

/// The namespaces and both routers. Fields drop in order: the routers stop before their
/// namespaces go.
struct Lab {
    r1: Svrd,
    r2: Svrd,
    dir: TempDir,
    ns: Namespaces,
}

/// Builds the namespaces of [`authority`] under `tag`, with their addresses, routes and
/// neighbour entries, and the WAN link's MTU set to `wan_mtu` when one is given.
fn topology(tag: &str, wan_mtu: Option<u32>) -> (Namespaces, TempDir) {
    let mut ns = Namespaces::new(tag);
    let dir = TempDir::new(&format!("classic-{tag}")).expect("temporary directory");
    for (name, router) in [("host1", false), ("r1", true), ("r2", true), ("host5", false)] {
        ns.add(name, router).expect("add namespace");
    }
    ns.link("host1", "lan", "r1", "lan").expect("link host1-r1");
    ns.link("r1", "wan", "r2", "wan").expect("link r1-r2");
    ns.link("r2", "lan", "host5", "lan").expect("link r2-host5");

    if let Some(mtu) = wan_mtu {
        for router in ["r1", "r2"] {
            ns.exec(router, &["ip", "link", "set", "wan", "mtu", &mtu.to_string()])
                .expect("set the WAN MTU");
        }
    }
    for (host, interface, cidr) in [
        ("host1", "lan", "10.246.1.10/24"),
        ("r1", "lan", "10.246.1.1/24"),
        ("r1", "wan", "10.246.10.1/24"),
        ("r2", "wan", "10.246.10.2/24"),
        ("r2", "lan", "10.246.5.1/24"),
        ("host5", "lan", "10.246.5.10/24"),
    ] {
        ns.addr(host, interface, cidr).expect("add address");
    }

    ns.default_route("host1", "10.246.1.1").expect("host1 default route");
    ns.default_route("host5", "10.246.5.1").expect("host5 default route");
    // svrd reads next hops from the kernels' neighbour tables, so fill them first.
    for (from, to) in [("host1", "10.246.1.1"), ("host5", "10.246.5.1"), ("r1", "10.246.10.2")] {
        ns.warm(from, to).expect("neighbour warm-up ping");
    }
    (ns, dir)
}

impl Lab {
    /// Starts r1 with the configuration of `r1_policy` and r2 with that of `r2_policy`,
    /// each from its own file.
    fn start(tag: &str, r1_policy: ClassicPolicy, r2_policy: ClassicPolicy) -> Lab {
        Lab::start_with_mtu(tag, r1_policy, r2_policy, None)
    }

    /// Starts as [`Lab::start`] does, with `wan_mtu` on the WAN link and in both
    /// configurations.
    fn start_with_mtu(
        tag: &str,
        r1_policy: ClassicPolicy,
        r2_policy: ClassicPolicy,
        wan_mtu: Option<u32>,
    ) -> Lab {
        let (ns, dir) = topology(tag, wan_mtu);
        svr_tests::harness::svrd_binary().expect("build svrd");
        let r1_config = dir.join("r1.cfg");
        let r2_config = dir.join("r2.cfg");
        let r1_text = authority_with_mtu(r1_policy, wan_mtu).render();
        let r2_text = authority_with_mtu(r2_policy, wan_mtu).render();
        fs::write(&r1_config, r1_text).expect("write r1 config");
        fs::write(&r2_config, r2_text).expect("write r2 config");
        let r1 = Svrd::start(&ns, "r1", "r1", &r1_config, &dir.0).expect("start svrd r1");
        let r2 = Svrd::start(&ns, "r2", "r2", &r2_config, &dir.0).expect("start svrd r2");
        Lab { r1, r2, dir, ns }
    }

    fn logs(&self) -> String {
        format!(
            "--- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.r1.log_tail(25),
            self.r2.log_tail(25)
        )
    }
}

/// Returns the rows of `show peers security`, or none while the socket is not open yet.
fn try_peer_rows(router: &Svrd) -> Vec<serde_json::Value> {
    let reply = router.request(&["show", "peers", "security"]);
    reply.ok().and_then(|reply| reply.data.as_array().cloned()).unwrap_or_default()
}

/// Returns the rows of `show peers security`.
fn peer_rows(router: &Svrd) -> Vec<serde_json::Value> {
    let reply = router.request(&["show", "peers", "security"]).expect("show peers security");
    reply.data.as_array().cloned().unwrap_or_default()
}

/// Waits until the router's only peer path is up.
fn wait_path_up(router: &mut Svrd) -> bool {
    let deadline = Instant::now() + BFD_UP;
    while Instant::now() < deadline {
        if !router.is_running() {
            return false;
        }
        let rows = try_peer_rows(router);
        if rows.len() == 1 && rows[0]["status"] == "up" {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    false
}

/// Returns a counter of `svrctl --json show stats` at `section`/`name`.
fn stat(router: &Svrd, section: &str, name: &str) -> u64 {
    let reply = router.request(&["show", "stats"]).expect("show stats");
    reply.data[section][name]
        .as_u64()
        .unwrap_or_else(|| panic!("no counter {section}/{name} in {}", reply.data))
}

#[test]
fn netns_classic_two_routers() {
    require_root("netns_classic_two_routers");
    let mut lab = Lab::start("cl", policy(HMAC_KEY), policy(HMAC_KEY));
    assert!(wait_path_up(&mut lab.r1), "r1's peer path comes up\n{}", lab.logs());
    assert!(wait_path_up(&mut lab.r2), "r2's peer path comes up\n{}", lab.logs());

    assert_eq!(ping(&lab.ns, "host1", "10.246.5.10", 5), 5, "ping host5\n{}", lab.logs());
    let transfer = tcp_transfer(&lab.ns, &lab.dir, "host5", "host1", "10.246.5.10", 7201, 2 << 20)
        .unwrap_or_else(|e| panic!("TCP transfer failed: {e}\n{}", lab.logs()));
    assert_eq!(transfer.bytes, 2 << 20, "bytes received\n{}", lab.logs());
    assert_eq!(transfer.received, transfer.sent, "SHA-256 of the transfer");

    // Both routers report classic mode, and each seals towards the other with the key
    // the other opens with.
    let r1_row = &peer_rows(&lab.r1)[0];
    let r2_row = &peer_rows(&lab.r2)[0];
    for row in [r1_row, r2_row] {
        assert_eq!(row["security_status"], "ESKM_DISABLED", "{row}");
        assert_eq!(row["key_received"], false, "no key exchange runs: {row}");
        assert_eq!(row["cert_received"], false, "no certificate exchange runs: {row}");
    }
    let r1_key = r1_row["key_index"].as_u64().expect("r1 key index");
    assert_ne!(r1_key & 0x8000_0000, 0, "classic security ids have the top bit set: {r1_row}");
    assert_eq!(r2_row["peer_key_index"], r1_key, "r2 seals towards r1 with r1's key");
    assert_eq!(r1_row["peer_key_index"], r2_row["key_index"], "r1 seals towards r2 with r2's key");

    let status = lab.r1.request(&["show", "security", "key-status"]).expect("key status");
    assert_eq!(status.data[0]["metadata_key_manager_state"], "Inactive", "{}", status.data);
    assert_eq!(status.data[0]["metadata_next_rekey_secs"], serde_json::Value::Null);
    let rotate = lab.r1.request(&["rotate", "security", "metadata-key"]).expect("rotate");
    assert!(!rotate.ok, "rotation is rejected: {}", rotate.text);
    assert!(rotate.text.contains("security policies"), "{}", rotate.text);
    assert!(!lab.r1.log_text().contains("key-exchange message"), "no exchange\n{}", lab.logs());
}

#[test]
fn netns_classic_policies_differ() {
    require_root("netns_classic_policies_differ");
    let other_hmac_key = HMAC_KEY.replace('a', "b");
    let mut lab = Lab::start("cd", policy(HMAC_KEY), policy(&other_hmac_key));
    // BFD accepts packets under a key it does not hold until one has been verified, so
    // the path comes up, and the mismatch shows in the dataplane.
    assert!(wait_path_up(&mut lab.r1), "r1's peer path comes up\n{}", lab.logs());
    assert!(wait_path_up(&mut lab.r2), "r2's peer path comes up\n{}", lab.logs());

    let drops_before = stat(&lab.r2, "drops", "unknown_key_id");
    assert_eq!(ping(&lab.ns, "host1", "10.246.5.10", 5), 0, "no ping crosses\n{}", lab.logs());
    let dropped = stat(&lab.r2, "drops", "unknown_key_id") - drops_before;
    let stats = lab.r2.request(&["show", "stats"]).expect("show stats").data;
    assert!(dropped >= 5, "r2 drops each ping under an unknown security id: {stats}");
    assert_eq!(stat(&lab.r2, "forwarding", "sessions_created"), 0, "no session at r2: {stats}");
}

#[test]
fn netns_classic_policy_without_key() {
    require_root("netns_classic_policy_without_key");
    let (ns, dir) = topology("ck", None);
    let binary = svr_tests::harness::svrd_binary().expect("build svrd");
    let text = authority(policy(HMAC_KEY)).render().replace(&format!("hmac-key {HMAC_KEY}"), "");
    let config = dir.join("no-key.cfg");
    fs::write(&config, text).expect("write config");
    let output = Command::new("ip")
        .args(["netns", "exec", &ns.name("r1")])
        .arg(&binary)
        .arg("--config")
        .arg(&config)
        .args(["--router", "r1", "--socket"])
        .arg(dir.join("r1.sock"))
        .arg("--state-dir")
        .arg(dir.join("r1-state"))
        .output()
        .expect("run svrd");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "svrd starts without an hmac-key:\n{stderr}");
    assert!(
        stderr.contains("security policy wan-keys has no hmac-key"),
        "the error names the policy and the missing key:\n{stderr}"
    );
}

/// Returns the MTU an ICMP error names for an encrypted ICMP session over IPv4 waypoints
/// with a WAN MTU of `wan_mtu`. The room left after the outer IPv4 and UDP headers, the
/// 8-byte sequence field and the 48-byte HMAC-SHA-384 tag is rounded down to whole
/// 16-byte blocks less one byte of padding. The original's 20-byte IPv4 header is added.
fn icmp_error_mtu(wan_mtu: usize) -> usize {
    let room = wan_mtu - 20 - 8 - 8 - 48;
    room / 16 * 16 - 1 + 20
}

/// Returns the MTU that ping printed from an ICMP error ("mtu = N" or "mtu=N").
fn reported_mtu(text: &str) -> Option<usize> {
    let text = text.replace("mtu = ", "mtu=");
    let at = text.find("mtu=")? + 4;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sends a UDP datagram with a `len`-byte payload from host1 to host5 without DF and
/// returns whether host5 received it byte for byte.
fn udp_crosses(lab: &Lab, len: usize) -> bool {
    let (host1, host5) = (lab.ns.name("host1"), lab.ns.name("host5"));
    udp_datagram_crosses(&host1, &host5, "10.246.5.10", len, PMTUDISC_DONT)
        .expect("udp datagram check")
}

#[test]
fn netns_wan_mtu_configured() {
    require_root("netns_wan_mtu_configured");
    let wan_mtu = 1400;
    let mut lab =
        Lab::start_with_mtu("cm", policy(HMAC_KEY), policy(HMAC_KEY), Some(wan_mtu as u32));
    assert!(wait_path_up(&mut lab.r1), "r1's peer path comes up\n{}", lab.logs());
    assert!(wait_path_up(&mut lab.r2), "r2's peer path comes up\n{}", lab.logs());
    assert!(lab.r1.log_text().contains("wan_mtu=1400"), "r1 runs with the configured MTU");
    assert_eq!(ping(&lab.ns, "host1", "10.246.5.10", 3), 3, "ping host5\n{}", lab.logs());

    // 1500 bytes of IP do not fit a 1400-byte WAN, so they cross as SVR fragments.
    assert!(udp_crosses(&lab, 1472), "a 1472-byte udp payload crosses whole\n{}", lab.logs());

    let host1 = lab.ns.name("host1");
    let ping = Command::new("ip")
        .args(["netns", "exec", &host1, "ping", "-c", "2", "-i", "0.3", "-W", "2"])
        .args(["-s", "1472", "-M", "do", "10.246.5.10"])
        .output()
        .expect("run ping");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&ping.stdout),
        String::from_utf8_lossy(&ping.stderr)
    );
    let mtu = reported_mtu(&text).unwrap_or_else(|| panic!("no mtu in:\n{text}"));
    assert_eq!(mtu, icmp_error_mtu(wan_mtu), "ping -s 1472 -M do:\n{text}");

    // The MTU named is exact: a DF ping of that size crosses.
    let size = (mtu - 28).to_string();
    let ping = Command::new("ip")
        .args(["netns", "exec", &host1, "ping", "-c", "3", "-i", "0.3", "-W", "2"])
        .args(["-s", &size, "-M", "do", "10.246.5.10"])
        .output()
        .expect("run ping");
    let replies = String::from_utf8_lossy(&ping.stdout).matches(" icmp_seq=").count();
    assert_eq!(replies, 3, "ping -s {size} -M do\n{}", lab.logs());
}

#[test]
fn netns_unknown_lan_neighbour_resolved() {
    require_root("netns_unknown_lan_neighbour_resolved");
    let mut lab = Lab::start("cn", policy(HMAC_KEY), policy(HMAC_KEY));
    assert!(wait_path_up(&mut lab.r1), "r1's peer path comes up\n{}", lab.logs());
    assert!(wait_path_up(&mut lab.r2), "r2's peer path comes up\n{}", lab.logs());

    // Flush host5's entry on r2. svrd's next read of the table (every second) drops it too.
    lab.ns.exec("r2", &["ip", "neigh", "flush", "dev", "lan"]).expect("flush r2's neighbours");
    std::thread::sleep(Duration::from_millis(1500));
    let entries = lab.ns.exec("r2", &["ip", "neigh", "show", "10.246.5.10"]).expect("ip neigh");
    let listed = String::from_utf8_lossy(&entries.stdout).to_string();
    assert!(!listed.contains("lladdr"), "host5's entry is gone: {listed}");
    let drops_before = stat(&lab.r2, "drops", "no_neighbour");

    // Each try is one ping with a 2-second timeout, so the bound is 5 tries in 10 s.
    let mut tries = 0;
    let reached = (0..5).any(|_| {
        tries += 1;
        ping(&lab.ns, "host1", "10.246.5.10", 1) == 1
    });
    assert!(reached, "host5 reachable within 5 tries\n{}", lab.logs());
    assert!(tries >= 2, "the first ping finds no neighbour entry, try {tries} succeeded");
    let dropped = stat(&lab.r2, "drops", "no_neighbour") - drops_before;
    assert!(dropped >= 1, "r2 counts the packets it could not deliver as no-neighbour");
    let entries = lab.ns.exec("r2", &["ip", "neigh", "show", "10.246.5.10"]).expect("ip neigh");
    let listed = String::from_utf8_lossy(&entries.stdout).to_string();
    assert!(listed.contains("lladdr"), "the kernel resolved host5: {listed}");
}

#[test]
fn netns_classic_reload_new_keys() {
    require_root("netns_classic_reload_new_keys");
    let mut lab = Lab::start("cr", policy(HMAC_KEY), policy(HMAC_KEY));
    assert!(wait_path_up(&mut lab.r1), "r1's peer path comes up\n{}", lab.logs());
    assert!(wait_path_up(&mut lab.r2), "r2's peer path comes up\n{}", lab.logs());
    assert_eq!(ping(&lab.ns, "host1", "10.246.5.10", 3), 3, "ping host5\n{}", lab.logs());
    let old_key = peer_rows(&lab.r1)[0]["key_index"].clone();

    // New keys on both routers: each installs them on SIGHUP, and traffic crosses again.
    let new_policy = policy(&HMAC_KEY.replace('1', "7"));
    for (router, file) in [(&lab.r1, "r1.cfg"), (&lab.r2, "r2.cfg")] {
        let text = authority(new_policy.clone()).render();
        fs::write(lab.dir.join(file), text).expect("write the new configuration");
        router.signal("HUP").expect("SIGHUP");
    }
    let reloaded = svr_tests::harness::wait_for(Duration::from_secs(10), || {
        lab.r1.log_text().contains("configuration reloaded")
            && lab.r2.log_text().contains("configuration reloaded")
    });
    assert!(reloaded, "both routers reload\n{}", lab.logs());
    let new_key = peer_rows(&lab.r1)[0]["key_index"].clone();
    assert_ne!(new_key, old_key, "r1 uses the new policy's security id");
    assert_eq!(peer_rows(&lab.r2)[0]["peer_key_index"], new_key, "r2 seals with it");
    let status = lab.r1.request(&["show", "security", "key-status"]).expect("key status");
    assert_eq!(status.data[0]["config_key_change_count"], 1, "{}", status.data);
    let crossed = (0..5).any(|_| ping(&lab.ns, "host1", "10.246.5.10", 1) == 1);
    assert!(crossed, "ping host5 under the new keys\n{}", lab.logs());
}
