//! Packets longer than the WAN MTU between real hosts through two svrd daemons, on the
//! topology of `scripts/demo`. A 1472-byte UDP payload and pings without DF cross as SVR
//! fragments. Pings with DF get "fragmentation needed" or "packet too big" with the MTU
//! left after SVR's overhead.
#![allow(clippy::expect_used, reason = "test helpers fail the test when a tool cannot run")]
#![allow(clippy::panic, reason = "a missing figure fails the test with the tool output")]

use std::path::{Path, PathBuf};

use std::process::{Command, Output};
use svr_tests::harness::{PMTUDISC_DONT, PMTUDISC_WANT, udp_datagram_crosses};

/// Addresses of host5 in the demo topology (`scripts/lib/demo-topology.sh`).
const HOST5_V4: &str = "10.231.5.10";
const HOST5_V6: &str = "fd31:5::10";

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn is_root() -> bool {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        .is_some_and(|effective| effective == "0")
}

/// The demo topology with both svrd running, removed on drop.
struct Demo {
    prefix: String,
}

impl Demo {
    /// Runs `scripts/demo --keep`, which leaves the topology up once its checks passed.
    fn start() -> Demo {
        let prefix = format!("svrf{}", std::process::id() % 10_000_000);
        let demo = Demo { prefix };
        let output = Command::new(repo_root().join("scripts/demo"))
            .args(["--keep", "--seconds", "2", "--prefix", &demo.prefix])
            .output()
            .expect("run scripts/demo");
        assert!(output.status.success(), "scripts/demo --keep failed:\n{}", text(&output));
        demo
    }

    /// Runs `command` in the namespace of `host`.
    fn exec(&self, host: &str, command: &[&str]) -> Output {
        Command::new("ip")
            .args(["netns", "exec", &format!("{}-{host}", self.prefix)])
            .args(command)
            .output()
            .expect("run ip netns exec")
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        let _ = Command::new(repo_root().join("scripts/demo"))
            .args(["--cleanup", "--prefix", &self.prefix])
            .output();
    }
}

fn text(output: &Output) -> String {
    format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    )
}

/// Returns the replies `ping` counted.
fn replies(output: &Output) -> usize {
    let text = String::from_utf8_lossy(&output.stdout);
    text.split(',')
        .find_map(|part| part.trim().strip_suffix(" received"))
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0)
}

/// Returns the MTU that ping printed from an ICMP error ("mtu = N" or "mtu=N").
fn reported_mtu(output: &Output) -> Option<usize> {
    let text = text(output).replace("mtu = ", "mtu=");
    let at = text.find("mtu=")? + 4;
    let digits: String = text[at..].chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Sends a UDP datagram of `len` bytes from host1 to host5 with the path MTU discovery
/// setting `discovery`, and returns whether host5 received it byte for byte.
fn udp_crosses(demo: &Demo, len: usize, discovery: u8) -> bool {
    let host1 = format!("{}-host1", demo.prefix);
    let host5 = format!("{}-host5", demo.prefix);
    udp_datagram_crosses(&host1, &host5, HOST5_V4, len, discovery).expect("udp datagram check")
}

#[test]
fn netns_fragments_two_routers() {
    assert!(is_root(), "netns_fragments_two_routers creates network namespaces and needs root");
    let demo = Demo::start();

    // Without DF first, before any ICMP error lowers the hosts' path MTU.
    let crossed = udp_crosses(&demo, 1472, PMTUDISC_DONT);
    assert!(crossed, "a 1472-byte udp payload without df did not cross whole");
    let ping = demo.exec(
        "host1",
        &["ping", "-c", "3", "-i", "0.3", "-W", "2", "-s", "1472", "-M", "dont", HOST5_V4],
    );
    assert_eq!(replies(&ping), 3, "ping -s 1472 -M dont:\n{}", text(&ping));

    let ping = demo.exec(
        "host1",
        &["ping", "-c", "2", "-i", "0.3", "-W", "2", "-s", "1472", "-M", "do", HOST5_V4],
    );
    assert_eq!(replies(&ping), 0, "ping -s 1472 -M do:\n{}", text(&ping));
    let mtu = reported_mtu(&ping).unwrap_or_else(|| panic!("no mtu in:\n{}", text(&ping)));
    assert_eq!(mtu, 1427, "ping -s 1472 -M do:\n{}", text(&ping));

    // The MTU named is exact: a DF ping of that size crosses.
    let size = (mtu - 28).to_string();
    let ping = demo.exec(
        "host1",
        &["ping", "-c", "3", "-i", "0.3", "-W", "2", "-s", &size, "-M", "do", HOST5_V4],
    );
    assert_eq!(replies(&ping), 3, "ping -s {size} -M do:\n{}", text(&ping));

    // host1 has cached the path MTU, so it sends a 1500-byte datagram as two IP fragments,
    // which r1 reassembles before sending it on.
    let crossed = udp_crosses(&demo, 1472, PMTUDISC_WANT);
    assert!(crossed, "a 1472-byte udp payload fragmented by host1 did not cross whole");

    let ping6 = demo.exec(
        "host1",
        &["ping", "-6", "-c", "2", "-i", "0.3", "-W", "2", "-s", "1452", "-M", "do", HOST5_V6],
    );
    let mtu6 = reported_mtu(&ping6).unwrap_or_else(|| panic!("no mtu in:\n{}", text(&ping6)));
    assert_eq!(mtu6, 1447, "ping -6 -s 1452:\n{}", text(&ping6));
}
