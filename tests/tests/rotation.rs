//! Key rotation under load, over real namespaces: host1 - r1 = wan = r2 - host5 with one
//! svrd per router. Two phases of the same length run the same traffic from host1 to
//! host5: an iperf3 TCP transfer, and beside it a fixed-rate UDP stream whose receiver
//! counts loss by sequence number. The baseline phase rotates nothing. The rotation phase
//! rotates both routers' metadata keys and, twice, the payload keys of every session r1
//! started, while the traffic runs.
//!
//! Both metadata keys rotate because each direction of metadata uses one: r1 encrypts
//! towards r2 under r2's key (session starts, payload-key TLVs), and r2 replies under r1's.
//! Payload keys rotate on r1 only, because the ingress makes them and r1 is the ingress
//! of every session here. The routers have one WAN path: a session uses the first path
//! in service, so a second path would carry only BFD and key-exchange messages.
//!
//! The test passes when the rotations took place, no packet was dropped for a key reason
//! on either router, both TCP transfers completed, and the rotation phase lost no more
//! UDP datagrams than the baseline plus [`LOSS_SLACK`].
#![allow(clippy::expect_used, clippy::panic, reason = "a harness step that fails ends the test")]

use std::io::{BufRead, BufReader};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use svr_dataplane::counters::DropReason;
use svr_tests::harness::{Svrd, is_root, repo_root, wait_listening};
use svr_tests::two_routers::{TwoRouters, Wan};

/// Length of the UDP stream of each phase.
const PHASE: Duration = Duration::from_secs(10);
/// UDP datagrams per second, and the UDP payload size of each.
const UDP_RATE: u64 = 1000;
const UDP_SIZE: usize = 1000;
/// Every this many datagrams, one leaves from a new source port and so opens a new
/// session, whose first packet carries metadata under the metadata key of that moment.
const NEW_SESSION_EVERY: u64 = 100;
/// Where host5 listens: the UDP receiver and the iperf3 server.
const HOST5: &str = "10.244.5.10";
const UDP_PORT: u16 = 5300;
const IPERF_PORT: u16 = 5201;
/// The iperf3 transfer starts this long before the UDP stream and ends as long after it.
const TCP_MARGIN: Duration = Duration::from_millis(500);
/// When the rotation phase rotates, counted from the first UDP datagram: both metadata
/// keys and r1's payload keys first, then r1's payload keys again. svrd runs with a key
/// grace time of 2 s (`Svrd::start`), so each rotation switches senders 2 s after it
/// starts and retires the old key 2 s after that, all inside the phase, under traffic.
const FIRST_ROTATION: Duration = Duration::from_millis(2500);
const SECOND_ROTATION: Duration = Duration::from_millis(5000);
/// The receiver replies to this datagram of the stream, 8 s in, after both rotations have
/// switched. Until then the stream is one-way, so r1 sends metadata on each of its
/// packets. The reply ends that, and later packets rely on the keys r2 installed.
const REPLY_AT: u64 = 8 * UDP_RATE;
/// UDP datagrams the rotation phase may lose beyond the baseline's loss: 5 ms of the
/// stream. In 20 runs on a 2-core VM at load averages of 6 to 11, neither phase lost a
/// datagram. A rotation fault loses more: an old metadata key retired at once lost about
/// 2000 datagrams (its 2 s switch delay), and old payload keys dropped at their switch
/// lost 6, beside 48 `no-key` drops.
const LOSS_SLACK: u64 = 5;

fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} creates network namespaces and needs root: run it as root on Debian 12 \
         with the packages of scripts/install-deps"
    );
}

/// A process started in a namespace, killed by PID on drop unless it was waited for.
struct Running {
    name: String,
    child: Child,
    stdout: BufReader<ChildStdout>,
}

impl Running {
    /// Starts `args` in the namespace `ns` of `lab`, with standard output piped.
    fn start(lab: &TwoRouters, ns: &str, name: &str, args: &[&str]) -> Running {
        let mut child = Command::new("ip")
            .args(["netns", "exec", &lab.ns.name(ns)])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        let stdout = BufReader::new(child.stdout.take().expect("piped standard output"));
        Running { name: name.into(), child, stdout }
    }

    /// Reads one line of standard output and checks it is `expected`.
    fn expect_line(&mut self, expected: &str) {
        let mut line = String::new();
        let _ = self.stdout.read_line(&mut line);
        assert_eq!(line.trim(), expected, "{} printed no {expected:?} line", self.name);
    }

    /// Waits for the process to exit and returns the rest of its standard output; fails
    /// the test when it exits with an error.
    fn finish(mut self) -> String {
        let mut rest = String::new();
        let _ = std::io::Read::read_to_string(&mut self.stdout, &mut rest);
        let status = self.child.wait().expect("wait for the process");
        let mut stderr = String::new();
        if let Some(mut pipe) = self.child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        assert!(status.success(), "{} failed with {status}:\n{rest}\n{stderr}", self.name);
        rest
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// One router's counters of `show stats` (the JSON `svrctl --json show stats` prints) and
/// its metadata key index.
#[derive(Debug, Clone)]
struct Snapshot {
    stats: serde_json::Value,
    metadata_index: u64,
}

impl Snapshot {
    fn take(router: &Svrd) -> Snapshot {
        let stats = router.request(&["show", "stats"]).expect("show stats").data;
        let status = router.request(&["show", "security", "key-status"]).expect("key status");
        let metadata_index = status.data[0]["metadata_rekey_index"]
            .as_u64()
            .unwrap_or_else(|| panic!("no metadata_rekey_index in {}", status.data));
        Snapshot { stats, metadata_index }
    }

    fn forwarding(&self, name: &str) -> u64 {
        self.stats["forwarding"][name]
            .as_u64()
            .unwrap_or_else(|| panic!("no counter forwarding/{name} in {}", self.stats))
    }

    fn drops(&self, reason: DropReason) -> u64 {
        // `show stats` in JSON spells the counter names in snake_case.
        let key = reason.name().replace('-', "_");
        self.stats["drops"][key.as_str()]
            .as_u64()
            .unwrap_or_else(|| panic!("no drop counter {key} in {}", self.stats))
    }
}

/// The drop reasons a key rotation must never cause: the key-related ones, and
/// `unknown-key-id`, which here also means a lost key because nothing else sends to the
/// routers' waypoints.
fn key_reasons() -> Vec<DropReason> {
    DropReason::ALL
        .into_iter()
        .filter(|reason| reason.is_key_related() || *reason == DropReason::UnknownKeyId)
        .collect()
}

/// What one phase measured.
#[derive(Debug)]
struct Phase {
    name: &'static str,
    /// The UDP receiver's report.
    udp: serde_json::Value,
    /// Seconds after the first UDP datagram at which keys were rotated.
    rotations: Vec<f64>,
    /// iperf3's bytes received and retransmitted segments.
    tcp_bytes: u64,
    tcp_retransmits: u64,
    tcp_seconds: f64,
    before: [Snapshot; 2],
    after: [Snapshot; 2],
}

impl Phase {
    fn udp(&self, name: &str) -> u64 {
        self.udp[name]
            .as_u64()
            .unwrap_or_else(|| panic!("no {name} in the UDP receiver's report {}", self.udp))
    }

    /// Returns how much `counter` of `forwarding` grew on router `index` (0 is r1).
    fn grew(&self, index: usize, counter: &str) -> u64 {
        self.after[index].forwarding(counter) - self.before[index].forwarding(counter)
    }

    /// Counts the missing datagrams per second of the stream, by when they were due.
    fn loss_by_second(&self) -> Vec<u64> {
        let mut seconds = vec![0u64; PHASE.as_secs() as usize];
        for sequence in self.udp["missing_sequences"].as_array().into_iter().flatten() {
            let second = sequence.as_u64().unwrap_or(0) / UDP_RATE;
            if let Some(slot) = seconds.get_mut(second as usize) {
                *slot += 1;
            }
        }
        seconds
    }

    fn report(&self) {
        eprintln!(
            "{}: UDP {} of {} datagrams missing, {} out of order, {} duplicates, {} corrupt; \
             missing per second {:?}; rotations at {:?} s",
            self.name,
            self.udp("missing"),
            UDP_RATE * PHASE.as_secs(),
            self.udp("out_of_order"),
            self.udp("duplicates"),
            self.udp("corrupt"),
            self.loss_by_second(),
            self.rotations,
        );
        eprintln!(
            "{}: TCP {:.1} Mbit/s over {:.1} s, {} retransmits; r1 rotations started {}, \
             key switches r1 {} r2 {}, sessions created r1 {}",
            self.name,
            self.tcp_bytes as f64 * 8.0 / self.tcp_seconds.max(0.001) / 1e6,
            self.tcp_seconds,
            self.tcp_retransmits,
            self.grew(0, "rotations_started"),
            self.grew(0, "key_switches"),
            self.grew(1, "key_switches"),
            self.grew(0, "sessions_created"),
        );
        for (index, router) in [(0, "r1"), (1, "r2")] {
            let drops: Vec<String> = DropReason::ALL
                .into_iter()
                .filter_map(|reason| {
                    let count = self.after[index].drops(reason) - self.before[index].drops(reason);
                    (count > 0).then(|| format!("{} {count}", reason.name()))
                })
                .collect();
            eprintln!("{}: {router} drops {:?}", self.name, drops);
        }
    }
}

/// Runs one phase: an iperf3 TCP transfer from host1 to host5 and beside it the UDP
/// stream, rotating keys during the stream when `rotate` is set.
fn run_phase(lab: &TwoRouters, name: &'static str, rotate: bool) -> Phase {
    let before = [Snapshot::take(&lab.r1), Snapshot::take(&lab.r2)];
    let script = repo_root().join("tests/fixtures/udp-sequence.py");
    let script = script.to_str().expect("UTF-8 path");
    let count = (UDP_RATE * PHASE.as_secs()).to_string();
    let port = UDP_PORT.to_string();
    let size = UDP_SIZE.to_string();

    // Receivers first: the UDP receiver and a one-off iperf3 server in host5.
    let receive_for = (PHASE + Duration::from_secs(3)).as_secs_f64().to_string();
    let reply_at = REPLY_AT.to_string();
    let mut receiver = Running::start(
        lab,
        "host5",
        "the UDP receiver",
        &["python3", script, "receive", HOST5, &port, &count, &size, &receive_for, &reply_at],
    );
    receiver.expect_line("ready");
    let iperf_port = IPERF_PORT.to_string();
    let server = Running::start(
        lab,
        "host5",
        "the iperf3 server",
        &["iperf3", "--server", "--one-off", "--bind", HOST5, "--port", &iperf_port],
    );
    assert!(
        wait_listening(&lab.ns, "host5", IPERF_PORT, Duration::from_secs(5)),
        "the iperf3 server does not listen"
    );

    let tcp_seconds = (PHASE + TCP_MARGIN * 2).as_secs_f64().to_string();
    let client = Running::start(
        lab,
        "host1",
        "the iperf3 client",
        &["iperf3", "--client", HOST5, "--port", &iperf_port, "--time", &tcp_seconds, "--json"],
    );
    std::thread::sleep(TCP_MARGIN);
    let rate = UDP_RATE.to_string();
    let every = NEW_SESSION_EVERY.to_string();
    let mut sender = Running::start(
        lab,
        "host1",
        "the UDP sender",
        &["python3", script, "send", HOST5, &port, &rate, &count, &size, &every],
    );
    sender.expect_line("sending");
    let began = Instant::now();

    let mut rotations = Vec::new();
    if rotate {
        sleep_until(began + FIRST_ROTATION);
        rotations.push(began.elapsed().as_secs_f64());
        for router in [&lab.r1, &lab.r2] {
            let reply = router.request(&["rotate", "security", "metadata-key"]).expect("rotate");
            assert!(reply.ok, "rotate security metadata-key on {}: {}", router.router, reply.text);
        }
        rotate_payload_keys(&lab.r1);
        sleep_until(began + SECOND_ROTATION);
        rotations.push(began.elapsed().as_secs_f64());
        rotate_payload_keys(&lab.r1);
    }

    let sent = sender.finish();
    let udp = receiver.finish();
    let tcp = client.finish();
    server.finish();
    let udp: serde_json::Value = serde_json::from_str(udp.trim())
        .unwrap_or_else(|e| panic!("UDP receiver report {udp:?}: {e}\nsender: {sent}"));
    let tcp: serde_json::Value =
        serde_json::from_str(&tcp).unwrap_or_else(|e| panic!("iperf3 JSON: {e}\n{tcp}"));
    let per_second: Vec<u64> = tcp["intervals"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|interval| (interval["sum"]["bits_per_second"].as_f64().unwrap_or(0.0) / 1e6) as u64)
        .collect();
    eprintln!("{name}: TCP Mbit/s per second {per_second:?}");
    let received = &tcp["end"]["sum_received"];
    let phase = Phase {
        name,
        udp,
        rotations,
        tcp_bytes: received["bytes"].as_u64().unwrap_or(0),
        tcp_retransmits: tcp["end"]["sum_sent"]["retransmits"].as_u64().unwrap_or(0),
        tcp_seconds: received["seconds"].as_f64().unwrap_or(0.0),
        before,
        after: [Snapshot::take(&lab.r1), Snapshot::take(&lab.r2)],
    };
    eprintln!("{name}: UDP sender {}", sent.trim());
    phase.report();
    phase
}

fn rotate_payload_keys(router: &Svrd) {
    let reply = router.request(&["rotate", "security", "payload-keys"]).expect("rotate");
    assert!(reply.ok, "rotate security payload-keys on {}: {}", router.router, reply.text);
}

fn sleep_until(at: Instant) {
    std::thread::sleep(at.saturating_duration_since(Instant::now()));
}

/// Returns the metadata key index that `router` seals towards its only peer with.
fn peer_key_index(router: &Svrd) -> u64 {
    let reply = router.request(&["show", "peers", "security"]).expect("show peers security");
    reply.data[0]["peer_key_index"]
        .as_u64()
        .unwrap_or_else(|| panic!("no peer_key_index in {}", reply.data))
}

#[test]
fn netns_rotation_under_load_loses_nothing() {
    require_root("netns_rotation_under_load_loses_nothing");
    let started = Instant::now();
    let lab = TwoRouters::start("kr", Wan::V4, false).expect("start the two routers");

    let baseline = run_phase(&lab, "baseline", false);
    let rotation = run_phase(&lab, "rotation", true);

    // Both iperf3 transfers ran to the end and moved data.
    for phase in [&baseline, &rotation] {
        assert!(phase.tcp_bytes > 0, "{}: iperf3 received nothing", phase.name);
        assert!(
            phase.tcp_seconds >= PHASE.as_secs_f64(),
            "{}: iperf3 ran {} s",
            phase.name,
            phase.tcp_seconds
        );
    }

    // The baseline rotated nothing. The rotation phase moved both metadata keys, each peer
    // seals with the other's new key, and r1 rotated the payload keys of its sessions: the
    // iperf3 control and data connections, the UDP stream and the one-datagram sessions.
    for (index, name) in [(0, "r1"), (1, "r2")] {
        assert_eq!(
            baseline.after[index].metadata_index, baseline.before[index].metadata_index,
            "{name}'s metadata key index during the baseline"
        );
        assert_eq!(baseline.grew(index, "key_switches"), 0, "{name}'s baseline key switches");
        assert_eq!(
            rotation.after[index].metadata_index,
            rotation.before[index].metadata_index + 1,
            "{name}'s metadata key index after the rotation"
        );
    }
    assert_eq!(baseline.grew(0, "rotations_started"), 0, "r1's baseline rotations");
    assert_eq!(peer_key_index(&lab.r1), rotation.after[1].metadata_index, "r1 seals with r2's key");
    assert_eq!(peer_key_index(&lab.r2), rotation.after[0].metadata_index, "r2 seals with r1's key");
    let rotations_started = rotation.grew(0, "rotations_started");
    assert!(rotations_started >= 2 * 3, "r1 started {rotations_started} payload-key rotations");

    // No packet was dropped for a key reason, on either router, since the start.
    for (router, snapshot) in [("r1", &rotation.after[0]), ("r2", &rotation.after[1])] {
        eprintln!("{router} drops after both phases: {}", snapshot.stats["drops"]);
        for reason in key_reasons() {
            assert_eq!(snapshot.drops(reason), 0, "{router} drops for {}", reason.name());
        }
    }

    // The stream arrived whole and unchanged, and the rotation lost no more of it than the
    // baseline did, within the slack.
    for phase in [&baseline, &rotation] {
        assert_eq!(phase.udp("corrupt"), 0, "{}: corrupt datagrams", phase.name);
        assert_eq!(phase.udp("duplicates"), 0, "{}: duplicated datagrams", phase.name);
    }
    let (lost_baseline, lost_rotation) = (baseline.udp("missing"), rotation.udp("missing"));
    assert!(
        lost_rotation <= lost_baseline + LOSS_SLACK,
        "the rotation phase lost {lost_rotation} datagrams, the baseline {lost_baseline} \
         (slack {LOSS_SLACK}); missing per second {:?}, rotations at {:?} s\n{}",
        rotation.loss_by_second(),
        rotation.rotations,
        lab.logs()
    );

    // The TCP data connection and the UDP stream carry packets throughout, so each switched
    // payload keys at both rotations on both routers, r2 included although the UDP stream
    // gives it nothing but packets with metadata until the reply.
    for (index, name) in [(0, "r1"), (1, "r2")] {
        let switches = rotation.grew(index, "key_switches");
        assert!(switches >= 2 * 2, "{name} switched payload keys {switches} times");
    }
    eprintln!("rotation test took {:?}", started.elapsed());
}
