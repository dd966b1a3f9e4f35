//! Two real svrd processes in network namespaces (host1 - r1 = wan-a / wan-b = r2 - host5)
//! with authenticated peer-path BFD. Once the peer keys exist, a python3 packet socket on
//! the wire between them captures an r1 to r2 BFD packet on wan-a, copies its
//! discriminators and sends r2 forged Down and AdminDown packets: plain ones, and the
//! captured authenticated packet with its state rewritten. r2 must keep the path up and count the forgeries as
//! auth-missing and auth-bad drops. Needs root, openssl and python3.
//!
//! Test names contain "netns", so nextest runs them one at a time in its `netns` group.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail the test with the step that broke"
)]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const SVRD: &str = env!("CARGO_BIN_EXE_svrd");
const SVRCTL: &str = env!("CARGO_BIN_EXE_svrctl");
const PYTHON: &str = "/usr/bin/python3";

/// r1 and r2 on wan-a (DEMO_R1_WAN_A and DEMO_R2_WAN_A of the demo topology).
const R1_WAN_A: &str = "10.231.10.1";
const R2_WAN_A: &str = "10.231.10.2";

/// Debug log message of a BFD session state change.
const STATE_CHANGED: &str = "bfd session state changed";

/// Forged packets of each kind (plain, rewritten authenticated) sent to r2.
const FORGERIES: u32 = 10;

/// Captures one authenticated r1 to r2 BFD packet where it enters the wire's bridge
/// (port `r1-wan-a`), then sends COUNT plain packets and COUNT rewritten authenticated
/// packets alternately, every INTERVAL seconds, in states Down and AdminDown, into the
/// bridge (`wan-a`) with the captured frame's MAC addresses, so r2 sees them come from r1.
/// Prints the copied discriminators. svrd sends and receives BFD through AF_XDP, which a
/// packet socket in the routers' own namespaces does not see, so the spoofer sits on the
/// wire.
const SPOOFER: &str = r#"
import socket, struct, sys, time
src, dst, count, interval = sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])

cap = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(0x0003))
cap.bind(('r1-wan-a', 0))
cap.settimeout(1.0)
captured = None
deadline = time.time() + 15
while captured is None and time.time() < deadline:
    try:
        frame = cap.recv(65535)
    except socket.timeout:
        continue
    if len(frame) < 34 or frame[12:14] != b'\x08\x00':
        continue
    ip = frame[14:]
    ihl = (ip[0] & 0x0f) * 4
    if ip[9] != 17 or socket.inet_ntoa(ip[12:16]) != src or socket.inet_ntoa(ip[16:20]) != dst:
        continue
    udp = ip[ihl:]
    if len(udp) < 8 or struct.unpack('!H', udp[2:4])[0] != 1280:
        continue
    bfd = udp[8:]
    if len(bfd) >= 64 and bfd[1] & 0x04 and bfd[3] == 64:
        captured = bytes(bfd[:64])
        ethernet = bytes(frame[:14])
if captured is None:
    sys.exit('no authenticated bfd packet from %s to %s captured' % (src, dst))
print('captured my=%s your=%s' % (captured[4:8].hex(), captured[8:12].hex()), flush=True)

def checksum(header):
    total = sum(struct.unpack('!10H', header))
    total = (total >> 16) + (total & 0xffff)
    return ~(total + (total >> 16)) & 0xffff

def send(out, payload):
    udp = struct.pack('!HHHH', 1280, 1280, 8 + len(payload), 0) + payload
    header = struct.pack('!BBHHHBBH4s4s', 0x45, 0xc0, 20 + len(udp), 0, 0x4000, 255, 17, 0,
                         socket.inet_aton(src), socket.inet_aton(dst))
    header = header[:10] + struct.pack('!H', checksum(header)) + header[12:]
    out.send(ethernet + header + udp)

out = socket.socket(socket.AF_PACKET, socket.SOCK_RAW)
out.bind(('wan-a', 0))
for i in range(count):
    state = 1 if i % 2 == 0 else 0
    # Plain: the captured header with A, P and F cleared and Length 24.
    plain = bytes([captured[0], (state << 6) | (captured[1] & 0x0b), captured[2], 24]) + captured[4:24]
    send(out, plain)
    # Authenticated: the captured packet with its state rewritten and a later sequence.
    forged = bytearray(captured)
    forged[1] = (state << 6) | (forged[1] & 0x3f)
    forged[28:32] = struct.pack('!I', (struct.unpack('!I', captured[28:32])[0] + 1 + i) & 0xffffffff)
    send(out, bytes(forged))
    time.sleep(interval)
print('sent %d' % (2 * count), flush=True)
"#;

fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

fn require_root() {
    let status = fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        .unwrap_or_default()
        .to_owned();
    assert_eq!(euid, "0", "this test creates network namespaces and needs root");
}

/// Runs SCRIPT in bash with the demo's shell libraries sourced and DEMO_PREFIX set.
fn bash(prefix: &str, script: &str) -> Output {
    let lib = repo_root().join("scripts/lib");
    let prelude = format!(
        "set -euo pipefail; export DEMO_PREFIX='{prefix}'; \
         for f in topology demo-topology pki config; do source '{}'/$f.sh; done\n",
        lib.display()
    );
    Command::new("bash").arg("-c").arg(prelude + script).output().expect("run bash")
}

fn check(output: &Output, step: &str) -> String {
    assert!(
        output.status.success(),
        "{step} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// The topology, the files and the processes of one test, all removed on drop.
struct Lab {
    prefix: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Lab {
    fn new() -> Lab {
        require_root();
        let prefix = format!("svrbfa{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{prefix}-files"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let lab = Lab { prefix, dir, children: Vec::new() };
        check(&bash(&lab.prefix, "demo_topology_up && demo_warm_neighbours"), "topology");
        lab
    }

    fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Starts PROGRAM ARGS inside namespace ROLE, its output in DIR/NAME.log.
    fn spawn(&mut self, role: &str, name: &str, program: &str, args: &[&str]) {
        let log = fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role), program])
            .args(args)
            .env("RUST_LOG", "svr_control=debug,info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in {role}: {e}"));
        self.children.push((name.to_owned(), child));
    }

    fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Fails the test when a process it started has exited.
    fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(self.dir.join(format!("{name}.log")));
                panic!("{name} exited with {status}:\n{}", log.unwrap_or_default());
            }
        }
    }

    /// Runs `svrctl ARGS` against ROUTER's svrd.
    fn svrctl(&self, router: &str, args: &[&str]) -> String {
        let socket = self.path(&format!("{router}.sock"));
        let output = Command::new(SVRCTL)
            .arg("--socket")
            .arg(&socket)
            .args(args)
            .output()
            .expect("run svrctl");
        String::from_utf8_lossy(&output.stdout).into_owned()
    }

    /// Security status of ROUTER's peer paths.
    fn path_status(&self, router: &str) -> Vec<String> {
        let text = self.svrctl(router, &["--json", "show", "peers", "security"]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        value
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["security_status"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// Returns a BFD drop counter of ROUTER from `show stats` in JSON.
    fn bfd_drops(&self, router: &str, counter: &str) -> u64 {
        let text = self.svrctl(router, &["--json", "show", "stats"]);
        let value: serde_json::Value = serde_json::from_str(&text).unwrap_or_default();
        let Some(count) = value["bfd_drops"][counter].as_u64() else {
            panic!("no bfd_drops.{counter} in the stats of {router}:\n{text}");
        };
        count
    }

    /// Waits up to TIMEOUT for CONDITION, failing the test with GOAL and both logs.
    fn wait(&mut self, timeout: Duration, goal: &str, mut condition: impl FnMut(&Lab) -> bool) {
        let start = Instant::now();
        while start.elapsed() < timeout {
            self.assert_running();
            if condition(self) {
                eprintln!("{goal}: after {} ms", start.elapsed().as_millis());
                return;
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        panic!(
            "timed out after {timeout:?} waiting for {goal}\nr1 paths: {:?}\n\
             --- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.path_status("r1"),
            tail(&self.log("r1"), 60),
            tail(&self.log("r2"), 60)
        );
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for (_, child) in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = bash(&self.prefix, "topo_cleanup \"$DEMO_PREFIX\"");
        let _ = fs::remove_dir_all(&self.dir);
    }
}

/// Writes the CA, the router certificates and the configuration, starts both svrd and
/// waits for the peer keys.
fn start(lab: &mut Lab) {
    let pki = lab.path("pki");
    fs::create_dir_all(&pki).unwrap();
    let config = lab.path("svrd.cfg");
    check(
        &bash(
            &lab.prefix,
            &format!(
                "pki_make_ca '{p}' 'svrbfa CA' 365; \
                 pki_make_router_cert '{p}' '{p}' r1 svrdemo-r1 365; \
                 pki_make_router_cert '{p}' '{p}' r2 svrdemo-r2 365; \
                 config_write_two_router '{c}' '{p}'",
                p = pki.display(),
                c = config.display()
            ),
        ),
        "certificates and configuration",
    );

    for router in ["r1", "r2"] {
        let state = lab.path(&format!("{router}-state"));
        let socket = lab.path(&format!("{router}.sock"));
        let args = [
            "--config",
            config.to_str().unwrap(),
            "--router",
            router,
            "--state-dir",
            state.to_str().unwrap(),
            "--socket",
            socket.to_str().unwrap(),
        ];
        lab.spawn(router, router, SVRD, &args);
    }
    lab.wait(Duration::from_secs(40), "peer keys on every path", |lab| {
        ["r1", "r2"].iter().all(|router| {
            let status = lab.path_status(router);
            status.len() == 2 && status.iter().all(|s| s == "MKEY_EXCH_COMP")
        })
    });
}

#[test]
fn netns_bfd_spoofed_down_ignored() {
    let mut lab = Lab::new();
    start(&mut lab);
    // Both routers need one verified packet each before authentication is required; the
    // transmit interval is one second.
    std::thread::sleep(Duration::from_secs(3));

    // The peers reply to a forged Down at once, so a flap can last only milliseconds, too
    // short for the daemon's path view. The BFD session's own state changes show it.
    let changes_before = lab.log("r2").matches(STATE_CHANGED).count();
    let missing_before = lab.bfd_drops("r2", "auth_missing");
    let bad_before = lab.bfd_drops("r2", "auth_bad");

    let count = FORGERIES.to_string();
    let output = Command::new("ip")
        .args(["netns", "exec", &lab.ns("wire"), PYTHON, "-c", SPOOFER, R1_WAN_A, R2_WAN_A])
        .args([count.as_str(), "0.35"])
        .output()
        .expect("run the spoofer");
    let printed = check(&output, "spoofer");
    eprintln!("{printed}");
    assert!(printed.contains(&format!("sent {}", 2 * FORGERIES)), "{printed}");

    // One more detection time (3 s) for a flap to show.
    std::thread::sleep(Duration::from_secs(4));
    lab.assert_running();

    let missing = lab.bfd_drops("r2", "auth_missing") - missing_before;
    let bad = lab.bfd_drops("r2", "auth_bad") - bad_before;
    assert!(missing >= u64::from(FORGERIES), "auth_missing rose by {missing}");
    assert!(bad >= u64::from(FORGERIES), "auth_bad rose by {bad}");

    let changes = lab.log("r2").matches(STATE_CHANGED).count() - changes_before;
    assert_eq!(changes, 0, "r2 bfd sessions changed state:\n{}", tail(&lab.log("r2"), 40));
    let status = lab.path_status("r2");
    assert_eq!(status, ["MKEY_EXCH_COMP", "MKEY_EXCH_COMP"], "r2 paths after the forgeries");
}
