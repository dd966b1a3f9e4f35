//! End-to-end tests of svrd processes in network namespaces: a hub with two spokes, a
//! router restarted under traffic, hosts of one IP family over waypoints of the other, and
//! configuration reload on SIGHUP. Each test builds its own namespaces and removes them,
//! with every process it started, when it ends or fails.
#![allow(clippy::expect_used, clippy::panic, reason = "a harness step that fails ends the test")]

use std::fs;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use svr_tests::authority::{Authority, Port, Route, Router, Service};
use svr_tests::harness::{
    Namespaces, Svrd, TempDir, is_root, ping, ping_until, tcp_transfer, wait_for,
};
use svr_tests::two_routers::{KEYS, TwoRouters, Wan};

fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} creates network namespaces and needs root: run it as root on Debian 12 \
         with the packages of scripts/install-deps"
    );
}

/// Checks a 2 MiB TCP transfer from `server` at `address` to `client` arrives intact.
fn assert_transfer(lab: &TwoRouters, server: &str, client: &str, address: &str, port: u16) {
    let transfer = tcp_transfer(&lab.ns, &lab.dir, server, client, address, port, 2 << 20)
        .unwrap_or_else(|e| panic!("TCP transfer to {address} failed: {e}\n{}", lab.logs()));
    assert_eq!(transfer.bytes, 2 << 20, "bytes received from {address}\n{}", lab.logs());
    assert_eq!(transfer.received, transfer.sent, "SHA-256 of the transfer from {address}");
    eprintln!("TCP 2 MiB from {address} in {:?}", transfer.took);
}

#[test]
fn netns_daemon_reload_adds_service() {
    require_root("netns_daemon_reload_adds_service");
    let started = Instant::now();
    let mut lab = TwoRouters::start("rl", Wan::V4, false).expect("start the two routers");
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.10", 3), 3, "ping host5\n{}", lab.logs());
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.20", 2), 0, "10.244.5.20 has no service yet");

    // Add the service to-host6 and reload both routers. r1's block, the first in the file,
    // also pins its worker to a core, which takes effect only at start-up.
    let text = TwoRouters::authority(lab.wan, true).render().replacen(
        "polling-mode adaptive",
        "polling-mode adaptive\n                    worker-cores 1",
        1,
    );
    fs::write(&lab.config, &text).expect("write the new configuration");
    lab.r1.signal("HUP").expect("SIGHUP r1");
    lab.r2.signal("HUP").expect("SIGHUP r2");
    let applied = wait_for(Duration::from_secs(10), || {
        lab.r1.log_text().contains("configuration reloaded")
            && lab.r2.log_text().contains("configuration reloaded")
    });
    assert!(applied, "both routers log the reload\n{}", lab.logs());
    let log = lab.r1.log_text();
    assert!(log.contains("to-host6"), "r1 logs the new service\n{log}");
    let restart = log
        .lines()
        .find(|l| l.contains("configuration change needs a restart of svrd; not applied"));
    assert!(
        restart.is_some_and(|l| l.contains("worker-cores")),
        "r1 reports the worker-cores change as needing a restart\n{log}"
    );
    assert!(
        !lab.r2.log_text().contains("needs a restart"),
        "r2's start-up settings did not change"
    );
    assert!(
        ping_until(&lab.ns, "host1", "10.244.5.20", Duration::from_secs(5)),
        "ping to the new service after SIGHUP\n{}",
        lab.logs()
    );
    assert_transfer(&lab, "host5", "host1", "10.244.5.20", 7101);
    assert_eq!(lab.r1.paths_complete().expect("r1 paths"), (1, 1), "the peer path stays up");

    // A broken file: every error is logged and the running configuration stays.
    let broken = text.replace("permission allow", "permission sometimes");
    fs::write(&lab.config, broken).expect("write a broken configuration");
    lab.r1.signal("HUP").expect("SIGHUP r1");
    let rejected = wait_for(Duration::from_secs(10), || {
        lab.r1.log_text().contains("configuration not reloaded")
    });
    assert!(rejected, "r1 logs the rejected reload\n{}", lab.logs());
    let log = lab.r1.log_text();
    let errors = log.lines().filter(|l| l.contains("configuration reload rejected")).count();
    assert_eq!(errors, 3, "one log line per invalid permission (three services)\n{log}");
    assert!(lab.r1.is_running(), "r1 keeps running after a broken file");
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.20", 3), 3, "old configuration still in force");
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.10", 3), 3, "first service still in force");
    eprintln!("reload test took {:?}", started.elapsed());
}

/// Counts the replies in a ping output file.
fn replies(path: &std::path::Path) -> usize {
    fs::read_to_string(path)
        .unwrap_or_default()
        .lines()
        .filter(|l| l.contains(" icmp_seq="))
        .count()
}

#[test]
fn netns_daemon_restart_under_traffic() {
    require_root("netns_daemon_restart_under_traffic");
    let started = Instant::now();
    let mut lab = TwoRouters::start("rs", Wan::V4, false).expect("start the two routers");
    let index_before = lab.r1.request(&["show", "security", "key-status"]).expect("key status");

    // One ping flow runs through the whole test: 5 per second for at most 40 s.
    let ping_log = lab.dir.join("ping.log");
    let ping_file = fs::File::create(&ping_log).expect("create ping log");
    let mut flow = Command::new("ip")
        .args(["netns", "exec", &lab.ns.name("host1"), "ping", "-i", "0.2", "-c", "200"])
        .args(["-W", "1", "10.244.5.10"])
        .stdout(ping_file)
        .stderr(std::process::Stdio::null())
        .spawn()
        .expect("start the ping flow");
    assert!(
        wait_for(Duration::from_secs(5), || replies(&ping_log) >= 5),
        "the ping flow gets replies before the restart\n{}",
        lab.logs()
    );

    // SIGTERM ends svrd cleanly.
    let status = lab.r2.stop().expect("r2 was running");
    assert!(status.success(), "svrd r2 exit status after SIGTERM: {status}");
    let before_restart = replies(&ping_log);
    std::thread::sleep(Duration::from_secs(1));
    assert!(replies(&ping_log) <= before_restart + 1, "no replies while r2 is stopped");
    assert!(
        wait_for(Duration::from_secs(10), || lab.r1.paths_complete().is_ok_and(|(c, _)| c == 0)),
        "r1 sees its peer path go down\n{}",
        lab.logs()
    );

    let restarted = Instant::now();
    lab.r2 = Svrd::start(&lab.ns, "r2", "r2", &lab.config, &lab.dir.0).expect("restart r2");
    lab.r2.wait_complete(1, KEYS).expect("r2 keys after the restart");
    lab.r1.wait_complete(1, KEYS).expect("r1 keys after the restart");
    eprintln!("keys exchanged again {:?} after the restart", restarted.elapsed());

    // The flow that ran across the restart gets replies again.
    let resumed = wait_for(Duration::from_secs(10), || replies(&ping_log) >= before_restart + 5);
    let _ = Command::new("kill").args(["-INT", &flow.id().to_string()]).output();
    let _ = flow.wait();
    assert!(
        resumed,
        "the ping flow resumes after the restart: {} replies before, {} in all\n{}",
        before_restart,
        replies(&ping_log),
        lab.logs()
    );

    // New flows work, and the alarms of the outage are cleared.
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.10", 3), 3, "new ping\n{}", lab.logs());
    assert_transfer(&lab, "host5", "host1", "10.244.5.10", 7201);
    // The routers run self-signed certificates, which keeps one standing alarm on each;
    // every other alarm comes from the outage and must clear.
    let outage_alarms = |alarms: Vec<String>| -> Vec<String> {
        alarms.into_iter().filter(|a| !a.contains("no valid signed certificate")).collect()
    };
    let cleared = wait_for(Duration::from_secs(10), || {
        lab.r1.alarms().is_ok_and(|a| outage_alarms(a).is_empty())
            && lab.r2.alarms().is_ok_and(|a| outage_alarms(a).is_empty())
    });
    assert!(
        cleared,
        "alarms after the restart: r1 {:?}, r2 {:?}",
        lab.r1.alarms(),
        lab.r2.alarms()
    );
    let index_after = lab.r1.request(&["show", "security", "key-status"]).expect("key status");
    assert_eq!(
        index_before.data[0]["metadata_rekey_index"], index_after.data[0]["metadata_rekey_index"],
        "r1 keeps its own metadata key across the peer's restart"
    );
    eprintln!("restart test took {:?}", started.elapsed());
}

/// Runs ping and a TCP transfer over IPv4 and over IPv6 across `wan` waypoints.
fn cross_family(tag: &str, wan: Wan) {
    let started = Instant::now();
    let lab = TwoRouters::start(tag, wan, false).expect("start the two routers");
    assert_eq!(ping(&lab.ns, "host1", "10.244.5.10", 3), 3, "IPv4 ping\n{}", lab.logs());
    assert_eq!(ping(&lab.ns, "host1", "fd44:5::10", 3), 3, "IPv6 ping\n{}", lab.logs());
    assert_transfer(&lab, "host5", "host1", "10.244.5.10", 7301);
    assert_transfer(&lab, "host5", "host1", "fd44:5::10", 7302);
    // And from the other side, towards host1.
    assert_eq!(ping(&lab.ns, "host5", "fd44:1::10", 3), 3, "IPv6 ping back\n{}", lab.logs());
    let stats = lab.r1.request(&["show", "stats"]).expect("r1 stats");
    let created = stats.data["forwarding"]["sessions_created"].as_u64().unwrap_or(0);
    assert!(created >= 4, "r1 created sessions for both families: {created}");
    eprintln!("{wan:?} waypoints test took {:?}", started.elapsed());
}

#[test]
fn netns_daemon_ipv6_hosts_ipv4_waypoints() {
    require_root("netns_daemon_ipv6_hosts_ipv4_waypoints");
    cross_family("v4", Wan::V4);
}

#[test]
fn netns_daemon_ipv4_hosts_ipv6_waypoints() {
    require_root("netns_daemon_ipv4_hosts_ipv6_waypoints");
    cross_family("v6", Wan::V6);
}

/// The hub-and-spoke authority. Each spoke peers only with the hub: the spokes' WAN ports
/// share a neighborhood with one hub port each, and none with each other. The hub routes
/// each spoke's LAN to that spoke, so it forwards the sessions between them on without
/// ending them. Without `with_spoke2` the hub has neither a peer spoke2 nor a route to it.
fn hub_authority(with_spoke2: bool) -> Authority {
    let spoke2_adjacency: &[(&str, &str)] =
        if with_spoke2 { &[("10.245.12.2", "spoke2")] } else { &[] };
    Authority {
        classic: None,
        tenants: vec!["corp".into()],
        services: vec![
            Service::new("to-lan1", &["corp"], &["10.245.1.0/24"]),
            Service::new("to-lan2", &["corp"], &["10.245.2.0/24"]),
        ],
        routers: vec![
            Router {
                name: "spoke1".into(),
                ports: vec![
                    Port::lan("lan", "corp", &["10.245.1.1/24"]),
                    Port::wan("wan1", "10.245.11.2/24", &[("10.245.11.1", "hub")]),
                ],
                routes: vec![Route::peer("to-lan2", "hub"), Route::local("to-lan1", "lan", None)],
            },
            Router {
                name: "hub".into(),
                ports: vec![
                    Port::wan("wan1", "10.245.11.1/24", &[("10.245.11.2", "spoke1")]),
                    Port::wan("wan2", "10.245.12.1/24", spoke2_adjacency),
                ],
                routes: std::iter::once(Route::peer("to-lan1", "spoke1"))
                    .chain(with_spoke2.then(|| Route::peer("to-lan2", "spoke2")))
                    .collect(),
            },
            Router {
                name: "spoke2".into(),
                ports: vec![
                    Port::lan("lan", "corp", &["10.245.2.1/24"]),
                    Port::wan("wan2", "10.245.12.2/24", &[("10.245.12.1", "hub")]),
                ],
                routes: vec![Route::peer("to-lan1", "hub"), Route::local("to-lan2", "lan", None)],
            },
        ],
    }
}

/// Builds host1 - spoke1 = wire1 = hub = wire2 = spoke2 - host2 and fills the neighbour
/// tables svrd reads. Each wire namespace bridges a spoke's WAN veth to one of the hub's,
/// so that a capture there records the hub's WAN traffic in both directions: svrd's own
/// veth ends hand their frames to AF_XDP, past the kernel's packet taps.
fn hub_topology(tag: &str) -> (Namespaces, TempDir) {
    let mut ns = Namespaces::new(tag);
    let dir = TempDir::new(&format!("daemon-{tag}")).expect("temporary directory");
    for (name, router) in [
        ("host1", false),
        ("spoke1", true),
        ("wire1", false),
        ("hub", true),
        ("wire2", false),
        ("spoke2", true),
        ("host2", false),
    ] {
        ns.add(name, router).expect("add namespace");
    }
    ns.link("host1", "lan", "spoke1", "lan").expect("link host1");
    ns.link("spoke1", "wan1", "wire1", "spoke1").expect("link spoke1-wire1");
    ns.link("wire1", "hub", "hub", "wan1").expect("link wire1-hub");
    ns.link("hub", "wan2", "wire2", "hub").expect("link hub-wire2");
    ns.link("wire2", "spoke2", "spoke2", "wan2").expect("link wire2-spoke2");
    ns.link("spoke2", "lan", "host2", "lan").expect("link host2");
    for (wire, spoke) in [("wire1", "spoke1"), ("wire2", "spoke2")] {
        for args in [
            &["ip", "link", "add", "br0", "type", "bridge"][..],
            &["ip", "link", "set", spoke, "master", "br0"],
            &["ip", "link", "set", "hub", "master", "br0"],
            &["ip", "link", "set", "br0", "up"],
        ] {
            ns.exec(wire, args).expect("bridge the wire");
        }
    }
    for (name, interface, cidr) in [
        ("host1", "lan", "10.245.1.10/24"),
        ("spoke1", "lan", "10.245.1.1/24"),
        ("spoke1", "wan1", "10.245.11.2/24"),
        ("hub", "wan1", "10.245.11.1/24"),
        ("hub", "wan2", "10.245.12.1/24"),
        ("spoke2", "wan2", "10.245.12.2/24"),
        ("spoke2", "lan", "10.245.2.1/24"),
        ("host2", "lan", "10.245.2.10/24"),
    ] {
        ns.addr(name, interface, cidr).expect("add address");
    }
    ns.default_route("host1", "10.245.1.1").expect("host1 route");
    ns.default_route("host2", "10.245.2.1").expect("host2 route");
    for (from, to) in [
        ("host1", "10.245.1.1"),
        ("host2", "10.245.2.1"),
        ("spoke1", "10.245.11.1"),
        ("spoke2", "10.245.12.1"),
        ("hub", "10.245.11.2"),
        ("hub", "10.245.12.2"),
    ] {
        ns.warm(from, to).expect("neighbour warm-up ping");
    }
    (ns, dir)
}

/// A tcpdump process capturing one interface of a namespace into a pcap file. Dropping it
/// stops the process.
struct Capture {
    child: std::process::Child,
    file: PathBuf,
}

impl Capture {
    /// Starts tcpdump on `interface` of `name` and waits until it listens (at most 10 s).
    fn start(ns: &Namespaces, name: &str, interface: &str, file: PathBuf) -> Capture {
        let log = file.with_extension("log");
        let child = Command::new("ip")
            .args(["netns", "exec", &ns.name(name), "tcpdump", "-i", interface, "-U", "-n"])
            .args(["--immediate-mode", "-s", "0", "-B", "16384", "-w"])
            .arg(&file)
            .arg("udp")
            .stdout(std::process::Stdio::null())
            .stderr(fs::File::create(&log).expect("create the tcpdump log"))
            .spawn()
            .expect("start tcpdump");
        let capture = Capture { child, file };
        let listening = wait_for(Duration::from_secs(10), || {
            fs::read_to_string(&log).is_ok_and(|text| text.contains("listening on"))
        });
        assert!(listening, "tcpdump on {name} {interface} did not start: {:?}", fs::read(&log));
        capture
    }

    /// Stops tcpdump and returns the UDP payloads of the IPv4 packets it captured with
    /// their addresses, and the number of packets tcpdump reports the kernel dropped
    /// because it could not keep up.
    fn finish(mut self) -> (Vec<CapturedUdp>, usize) {
        let _ = Command::new("kill").args(["-INT", &self.child.id().to_string()]).output();
        let _ = self.child.wait();
        let log = fs::read_to_string(self.file.with_extension("log")).unwrap_or_default();
        let summary: Vec<&str> = log.lines().filter(|l| l.contains("packets")).collect();
        eprintln!("tcpdump {}: {}", self.file.display(), summary.join(", "));
        let dropped = summary
            .iter()
            .find_map(|line| line.strip_suffix(" packets dropped by kernel"))
            .and_then(|count| count.trim().parse().ok())
            .unwrap_or(0);
        let bytes = fs::read(&self.file).expect("read the capture");
        (pcap_udp(&bytes), dropped)
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One captured IPv4 UDP packet.
#[derive(Debug)]
struct CapturedUdp {
    source: [u8; 4],
    destination: [u8; 4],
    ports: (u16, u16),
    payload: Vec<u8>,
}

/// Reads the IPv4 UDP packets of a little-endian pcap file with Ethernet link type.
fn pcap_udp(bytes: &[u8]) -> Vec<CapturedUdp> {
    assert!(bytes.len() >= 24, "pcap file without a header");
    assert_eq!(bytes[0..4], [0xd4, 0xc3, 0xb2, 0xa1], "pcap magic (little-endian)");
    let word =
        |at: usize| u32::from_le_bytes([bytes[at], bytes[at + 1], bytes[at + 2], bytes[at + 3]]);
    assert_eq!(word(20), 1, "pcap link type is Ethernet");
    let mut packets = Vec::new();
    let mut at = 24;
    while at + 16 <= bytes.len() {
        let captured = word(at + 8) as usize;
        let frame = &bytes[at + 16..(at + 16 + captured).min(bytes.len())];
        at += 16 + captured;
        if frame.len() < 42 || frame[12..14] != [0x08, 0x00] || frame[23] != 17 {
            continue;
        }
        let header_len = usize::from(frame[14] & 0x0f) * 4;
        let udp = 14 + header_len;
        let total = usize::from(u16::from_be_bytes([frame[16], frame[17]]));
        let end = (14 + total).min(frame.len());
        if end < udp + 8 {
            continue;
        }
        packets.push(CapturedUdp {
            source: [frame[26], frame[27], frame[28], frame[29]],
            destination: [frame[30], frame[31], frame[32], frame[33]],
            ports: (
                u16::from_be_bytes([frame[udp], frame[udp + 1]]),
                u16::from_be_bytes([frame[udp + 2], frame[udp + 3]]),
            ),
            payload: frame[udp + 8..end].to_vec(),
        });
    }
    packets
}

/// The SVR cookie that starts a packet's metadata.
const SVR_COOKIE: [u8; 8] = [0x4c, 0x48, 0xdb, 0xc6, 0xdd, 0xf6, 0x67, 0x0c];

/// Returns the UDP payloads of the SVR packets without metadata from `source` to
/// `destination` (waypoint ports, which start at 16384; BFD uses lower ports).
fn svr_payloads(packets: &[CapturedUdp], source: [u8; 4], destination: [u8; 4]) -> Vec<Vec<u8>> {
    packets
        .iter()
        .filter(|p| p.source == source && p.destination == destination)
        .filter(|p| p.ports.0 >= 16384 && p.ports.1 >= 16384)
        .filter(|p| !p.payload.starts_with(&SVR_COOKIE))
        .map(|p| p.payload.clone())
        .collect()
}

/// One link's captured SVR payloads without metadata, in one direction, and the packets
/// its capture lost.
struct Seen<'a> {
    payloads: &'a [Vec<u8>],
    capture_dropped: usize,
}

/// Checks that the hub sent on every SVR packet without metadata that it received, with
/// the same UDP payload: each payload seen arriving on one link leaves on the other.
fn assert_carried_unchanged(into: Seen<'_>, out: Seen<'_>, what: &str) {
    let (into_hub, out_of_hub) = (into.payloads, out.payloads);
    assert!(into_hub.len() >= 10, "{what}: only {} packets without metadata", into_hub.len());
    let sent: std::collections::HashSet<&Vec<u8>> = out_of_hub.iter().collect();
    let missing = into_hub.iter().filter(|payload| !sent.contains(payload)).count();
    // A packet the capture saw arrive may still be in flight when the capture stops, and
    // a packet tcpdump could not keep up with is missing from its capture only.
    let allowed = 2 + out.capture_dropped;
    assert!(
        missing <= allowed,
        "{what}: {missing} of {} payloads did not leave the hub unchanged ({} left it)",
        into_hub.len(),
        out_of_hub.len()
    );
    let received: std::collections::HashSet<&Vec<u8>> = into_hub.iter().collect();
    let extra = out_of_hub.iter().filter(|payload| !received.contains(payload)).count();
    let allowed = 2 + into.capture_dropped;
    assert!(extra <= allowed, "{what}: {extra} payloads left the hub that never reached it");
}

#[test]
fn netns_daemon_hub_and_spokes() {
    require_root("netns_daemon_hub_and_spokes");
    let started = Instant::now();
    let (ns, dir) = hub_topology("hb");
    let config = dir.join("authority.cfg");
    fs::write(&config, hub_authority(true).render()).expect("write config");
    let mut spoke1 = Svrd::start(&ns, "spoke1", "spoke1", &config, &dir.0).expect("spoke1");
    let mut hub = Svrd::start(&ns, "hub", "hub", &config, &dir.0).expect("hub");
    let mut spoke2 = Svrd::start(&ns, "spoke2", "spoke2", &config, &dir.0).expect("spoke2");
    hub.wait_complete(2, KEYS).expect("hub keys with both spokes");
    spoke1.wait_complete(1, KEYS).expect("spoke1 keys");
    spoke2.wait_complete(1, KEYS).expect("spoke2 keys");
    let logs = || {
        format!(
            "--- spoke1 ---\n{}\n--- hub ---\n{}\n--- spoke2 ---\n{}",
            spoke1.log_tail(15),
            hub.log_tail(25),
            spoke2.log_tail(15)
        )
    };

    let wire1 = Capture::start(&ns, "wire1", "hub", dir.join("wire1.pcap"));
    let wire2 = Capture::start(&ns, "wire2", "hub", dir.join("wire2.pcap"));
    assert_eq!(ping(&ns, "host1", "10.245.2.10", 5), 5, "host1 to host2\n{}", logs());
    assert_eq!(ping(&ns, "host2", "10.245.1.10", 5), 5, "host2 to host1\n{}", logs());
    let transfer = tcp_transfer(&ns, &dir, "host2", "host1", "10.245.2.10", 7401, 2 << 20)
        .unwrap_or_else(|e| panic!("TCP transfer through the hub failed: {e}\n{}", logs()));
    assert_eq!(transfer.bytes, 2 << 20, "bytes received through the hub");
    assert_eq!(transfer.received, transfer.sent, "SHA-256 of the transfer through the hub");
    eprintln!("TCP 2 MiB through the hub in {:?}", transfer.took);
    std::thread::sleep(Duration::from_millis(500));
    let ((link1, dropped1), (link2, dropped2)) = (wire1.finish(), wire2.finish());
    let stats = hub.request(&["show", "stats"]).expect("hub stats");
    eprintln!("hub drops: {}", stats.data["drops"]);

    // The hub passes each packet without metadata on with its UDP payload unchanged:
    // carried ciphertext, sequence field and tag. Only the outer headers differ.
    let (spoke1_wan, hub_wan1) = ([10, 245, 11, 2], [10, 245, 11, 1]);
    let (hub_wan2, spoke2_wan) = ([10, 245, 12, 1], [10, 245, 12, 2]);
    let into_hub_1 = svr_payloads(&link1, spoke1_wan, hub_wan1);
    let out_of_hub_2 = svr_payloads(&link2, hub_wan2, spoke2_wan);
    let into_hub_2 = svr_payloads(&link2, spoke2_wan, hub_wan2);
    let out_of_hub_1 = svr_payloads(&link1, hub_wan1, spoke1_wan);
    assert_carried_unchanged(
        Seen { payloads: &into_hub_1, capture_dropped: dropped1 },
        Seen { payloads: &out_of_hub_2, capture_dropped: dropped2 },
        "spoke1 to spoke2",
    );
    assert_carried_unchanged(
        Seen { payloads: &into_hub_2, capture_dropped: dropped2 },
        Seen { payloads: &out_of_hub_1, capture_dropped: dropped1 },
        "spoke2 to spoke1",
    );
    let with_metadata =
        link2.iter().filter(|p| p.source == hub_wan2 && p.payload.starts_with(&SVR_COOKIE)).count();
    assert!(with_metadata >= 1, "the hub sends metadata towards spoke2 at session start");

    // Every flow crossed the hub as one transit session, none lost to key drops.
    let created = stats.data["forwarding"]["sessions_created"].as_u64().unwrap_or(0);
    assert!(created >= 3, "the hub created sessions for 3 flows: {created}\n{stats:?}");
    let transit = stats.data["forwarding"]["transit_forwarded"].as_u64().unwrap_or(0);
    assert!(transit >= 1000, "the hub forwarded {transit} transit packets");
    let egress = stats.data["forwarding"]["egress_forwarded"].as_u64().unwrap_or(0);
    assert_eq!(egress, 0, "the hub ends no session on a LAN");
    for reason in ["no_key", "bad_tag", "replay"] {
        let drops = stats.data["drops"][reason].as_u64().unwrap_or(0);
        assert_eq!(drops, 0, "hub drops for {reason}");
    }

    // A new session still crosses after the hub rotates its own metadata key, which both
    // spokes encrypt the metadata towards it under.
    let index = |svrd: &Svrd| {
        let status = svrd.request(&["show", "security", "key-status"]).expect("key status");
        status.data[0]["metadata_rekey_index"].clone()
    };
    let before = index(&hub);
    hub.request(&["rotate", "security", "metadata-key"]).expect("rotate the hub's key");
    assert!(
        wait_for(Duration::from_secs(10), || index(&hub) != before),
        "the hub's metadata key index stays {before}\n{}",
        logs()
    );
    assert!(
        ping_until(&ns, "host1", "10.245.2.10", Duration::from_secs(10)),
        "ping through the hub after its metadata-key rotation\n{}",
        logs()
    );
    assert_eq!(ping(&ns, "host2", "10.245.1.10", 3), 3, "host2 to host1 after the rotation");
    drop((spoke1, hub, spoke2));
    let prefix = ns.name("");
    drop(ns);
    let list = Command::new("ip").args(["netns", "list"]).output().expect("ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&prefix), "namespaces {prefix}* left behind:\n{list}");
    eprintln!("hub-and-spoke test took {:?}", started.elapsed());
}

#[test]
fn netns_daemon_reload_adds_peer() {
    require_root("netns_daemon_reload_adds_peer");
    let started = Instant::now();
    let (ns, dir) = hub_topology("rp");
    let config = dir.join("authority.cfg");
    fs::write(&config, hub_authority(false).render()).expect("write config");
    let mut spoke1 = Svrd::start(&ns, "spoke1", "spoke1", &config, &dir.0).expect("spoke1");
    let mut hub = Svrd::start(&ns, "hub", "hub", &config, &dir.0).expect("hub");
    hub.wait_complete(1, KEYS).expect("hub keys with spoke1");
    spoke1.wait_complete(1, KEYS).expect("spoke1 keys");
    assert_eq!(ping(&ns, "host1", "10.245.2.10", 2), 0, "the hub has no way to spoke2 yet");

    // Add spoke2 to the hub: a new peer, a new BFD session and a new service route.
    fs::write(&config, hub_authority(true).render()).expect("write config with spoke2");
    hub.signal("HUP").expect("SIGHUP the hub");
    spoke1.signal("HUP").expect("SIGHUP spoke1");
    let mut spoke2 = Svrd::start(&ns, "spoke2", "spoke2", &config, &dir.0).expect("spoke2");
    hub.wait_complete(2, KEYS).expect("hub keys with both spokes after the reload");
    spoke2.wait_complete(1, KEYS).expect("spoke2 keys");
    spoke1.wait_complete(1, KEYS).expect("spoke1 keys after the hub's BFD restart");
    let log = hub.log_text();
    assert!(log.contains("peer spoke2 added"), "the hub logs the new peer\n{log}");
    // Adding a path leaves the running BFD session of spoke1's path alone: it came up
    // once, and it did not go down and up again around the reload.
    let spoke1_ups =
        log.lines().filter(|l| l.contains("peer path up") && l.contains("spoke1")).count();
    assert_eq!(spoke1_ups, 1, "spoke1's path restarted on the reload\n{log}");
    assert!(
        log.contains("peer path 10.245.12.1 -> 10.245.12.2 to spoke2 added"),
        "the hub logs the new path\n{log}"
    );
    assert!(
        wait_for(Duration::from_secs(5), || {
            spoke1.log_text().contains("no change that applies while running")
        }),
        "spoke1's part of the file did not change\n{}",
        spoke1.log_tail(10)
    );
    assert!(
        ping_until(&ns, "host1", "10.245.2.10", Duration::from_secs(5)),
        "host1 reaches host2 through the hub after the reload\n{}",
        hub.log_tail(25)
    );
    assert_eq!(ping(&ns, "host1", "10.245.2.10", 3), 3, "steady ping through the hub");

    // Remove spoke2 again: its peer and path go, spoke1's stay.
    fs::write(&config, hub_authority(false).render()).expect("write config without spoke2");
    hub.signal("HUP").expect("SIGHUP the hub");
    assert!(
        wait_for(Duration::from_secs(10), || hub.log_text().contains("peer spoke2 removed")),
        "the hub logs the removed peer\n{}",
        hub.log_tail(25)
    );
    hub.wait_complete(1, KEYS).expect("the hub keeps spoke1's path only");
    let log = hub.log_text();
    let spoke1_ups =
        log.lines().filter(|l| l.contains("peer path up") && l.contains("spoke1")).count();
    assert_eq!(spoke1_ups, 1, "spoke1's path restarted when spoke2 was removed\n{log}");
    assert_eq!(ping(&ns, "host1", "10.245.2.10", 2), 0, "no way to spoke2 after the removal");
    let stats = hub.request(&["show", "stats"]).expect("hub stats");
    assert_eq!(stats.data["drops"]["bad_tag"].as_u64(), Some(0), "hub bad_tag drops");
    drop((spoke1, spoke2, hub));
    drop((ns, dir));
    eprintln!("reload-peer test took {:?}", started.elapsed());
}
