//! A WAN path cut in the middle of a TCP transfer between two svrd routers joined by two
//! paths: the session moves to the other path and the transfer completes intact.
//!
//! host1 - r1 = wan-a / wan-b = r2 - host5. LAN 1 is 10.248.1.0/24, LAN 5 is
//! 10.248.5.0/24, wan-a is 10.248.10.0/24 and wan-b is 10.248.20.0/24.
#![allow(clippy::expect_used, clippy::panic, reason = "a harness step that fails ends the test")]

use std::fs;
use std::time::Duration;

use svr_tests::authority::{Authority, Port, Route, Router, Service};
use svr_tests::harness::{
    Namespaces, Svrd, TempDir, TransferEnds, is_root, tcp_transfer_paced, wait_for,
};

/// Time allowed for the key exchange of both peer paths.
const KEYS: Duration = Duration::from_secs(30);

/// The transfer: 12 MiB at 3 MiB/s, so about four seconds.
const SIZE: usize = 12 << 20;
const RATE: u64 = 3 << 20;

/// Time into the transfer at which the busier path is cut.
const CUT_AFTER: Duration = Duration::from_millis(1500);

fn authority() -> Authority {
    let router = |name: &str, lan: &str, last: u8, peer: &str, peer_last: u8| Router {
        name: name.into(),
        ports: vec![
            Port::lan("lan", "corp", &[lan]),
            Port::wan(
                "wan-a",
                &format!("10.248.10.{last}/24"),
                &[(&format!("10.248.10.{peer_last}"), peer)],
            ),
            Port::wan(
                "wan-b",
                &format!("10.248.20.{last}/24"),
                &[(&format!("10.248.20.{peer_last}"), peer)],
            ),
        ],
        routes: Vec::new(),
    };
    let mut r1 = router("r1", "10.248.1.1/24", 1, "r2", 2);
    r1.routes = vec![Route::peer("to-host5", "r2"), Route::local("to-host1", "lan", None)];
    let mut r2 = router("r2", "10.248.5.1/24", 2, "r1", 1);
    r2.routes = vec![Route::peer("to-host1", "r1"), Route::local("to-host5", "lan", None)];
    Authority {
        classic: None,
        tenants: vec!["corp".into()],
        services: vec![
            Service::new("to-host5", &["corp"], &["10.248.5.0/24"]),
            Service::new("to-host1", &["corp"], &["10.248.1.0/24"]),
        ],
        routers: vec![r1, r2],
    }
}

/// Returns the bytes r2 has sent so far on its interface `interface`: the transfer's data,
/// since host5 sends it.
fn sent_bytes(ns: &Namespaces, interface: &str) -> u64 {
    let path = format!("/sys/class/net/{interface}/statistics/tx_bytes");
    let output = ns.exec("r2", &["cat", &path]).expect("read tx_bytes");
    String::from_utf8_lossy(&output.stdout).trim().parse().expect("tx_bytes is a number")
}

#[test]
fn netns_path_cut_mid_transfer() {
    assert!(is_root(), "netns_path_cut_mid_transfer creates network namespaces and needs root");
    let mut ns = Namespaces::new("fo");
    let dir = TempDir::new("failover").expect("temporary directory");
    for (name, router) in [("host1", false), ("r1", true), ("r2", true), ("host5", false)] {
        ns.add(name, router).expect("add namespace");
    }
    ns.link("host1", "lan", "r1", "lan").expect("link host1-r1");
    ns.link("r1", "wan-a", "r2", "wan-a").expect("link wan-a");
    ns.link("r1", "wan-b", "r2", "wan-b").expect("link wan-b");
    ns.link("r2", "lan", "host5", "lan").expect("link r2-host5");
    for (host, interface, cidr) in [
        ("host1", "lan", "10.248.1.10/24"),
        ("r1", "lan", "10.248.1.1/24"),
        ("r1", "wan-a", "10.248.10.1/24"),
        ("r1", "wan-b", "10.248.20.1/24"),
        ("r2", "wan-a", "10.248.10.2/24"),
        ("r2", "wan-b", "10.248.20.2/24"),
        ("r2", "lan", "10.248.5.1/24"),
        ("host5", "lan", "10.248.5.10/24"),
    ] {
        ns.addr(host, interface, cidr).expect("add address");
    }
    ns.default_route("host1", "10.248.1.1").expect("host1 default route");
    ns.default_route("host5", "10.248.5.1").expect("host5 default route");
    ns.warm("host1", "10.248.1.1").expect("warm host1");
    ns.warm("host5", "10.248.5.1").expect("warm host5");

    svr_tests::harness::svrd_binary().expect("build svrd");
    let config = dir.join("authority.cfg");
    fs::write(&config, authority().render()).expect("write config");
    let mut r1 = Svrd::start(&ns, "r1", "r1", &config, &dir.0).expect("start svrd r1");
    let mut r2 = Svrd::start(&ns, "r2", "r2", &config, &dir.0).expect("start svrd r2");
    let logs = |r1: &Svrd, r2: &Svrd| {
        format!("--- r1 ---\n{}\n--- r2 ---\n{}", r1.log_tail(25), r2.log_tail(25))
    };
    r1.wait_complete(2, KEYS).unwrap_or_else(|e| panic!("r1 keys: {e}\n{}", logs(&r1, &r2)));
    r2.wait_complete(2, KEYS).unwrap_or_else(|e| panic!("r2 keys: {e}\n{}", logs(&r1, &r2)));

    // While the transfer runs, cut the path that carries it at r1.
    let cutter = std::thread::scope(|scope| {
        let cutter = scope.spawn(|| {
            std::thread::sleep(CUT_AFTER);
            let before = [sent_bytes(&ns, "wan-a"), sent_bytes(&ns, "wan-b")];
            std::thread::sleep(Duration::from_millis(300));
            let grown =
                [sent_bytes(&ns, "wan-a") - before[0], sent_bytes(&ns, "wan-b") - before[1]];
            let (busy, other) =
                if grown[0] >= grown[1] { ("wan-a", "wan-b") } else { ("wan-b", "wan-a") };
            ns.exec("r1", &["ip", "link", "set", busy, "down"]).expect("cut the busy path");
            (busy, grown, sent_bytes(&ns, other))
        });
        let ends = TransferEnds {
            server_ns: "host5",
            client_ns: "host1",
            address: "10.248.5.10",
            port: 7501,
        };
        let transfer = tcp_transfer_paced(&ns, &dir, &ends, SIZE, RATE);
        (cutter.join().expect("cutter thread"), transfer)
    });
    let ((cut, grown, other_at_cut), transfer) = cutter;
    let transfer = transfer.unwrap_or_else(|e| panic!("transfer failed: {e}\n{}", logs(&r1, &r2)));
    eprintln!("cut {cut} (growth before the cut {grown:?}); transfer took {:?}", transfer.took);
    assert_eq!(transfer.bytes, SIZE as u64, "bytes received\n{}", logs(&r1, &r2));
    assert_eq!(transfer.received, transfer.sent, "SHA-256 of the transfer");

    // The cut path carried the transfer before the cut, the other one after it.
    let other = if cut == "wan-a" { "wan-b" } else { "wan-a" };
    let carried = if cut == "wan-a" { grown[0] } else { grown[1] };
    assert!(carried > 100_000, "{cut} carried {carried} bytes in 300 ms before the cut");
    let after_cut = sent_bytes(&ns, other) - other_at_cut;
    assert!(after_cut > 1_000_000, "{other} received {after_cut} bytes after the cut");

    // r1 reports the cut path down and the other up.
    let down = wait_for(Duration::from_secs(5), || {
        r1.request(&["show", "peers", "security"]).is_ok_and(|reply| {
            let rows = reply.data.as_array().cloned().unwrap_or_default();
            rows.iter().any(|row| row["status"] == "down")
                && rows.iter().any(|row| row["status"] == "up")
        })
    });
    assert!(down, "r1 shows one path down and one up\n{}", logs(&r1, &r2));
    let stats = r1.request(&["show", "stats"]).expect("r1 stats");
    for reason in ["bad_tag", "replay", "no_key"] {
        assert_eq!(stats.data["drops"][reason], 0, "r1 drops for {reason}: {}", stats.data);
    }
}
