//! Short runs of the benchmark binary: forwarding over memory ports, and, as root, the
//! load generator through svrd over AF_XDP between namespaces the binary creates.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]

use std::path::PathBuf;
use std::process::Command;

use serde_json::Value;

fn bench() -> Command {
    Command::new(env!("CARGO_BIN_EXE_svr-bench"))
}

/// A folder for one test's output files, deleted on drop.
struct Scratch(PathBuf);

impl Scratch {
    fn new() -> Scratch {
        let dir = std::env::temp_dir().join(format!("svr-bench-smoke-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn run(command: &mut Command) -> String {
    let output = command.output().unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(output.status.success(), "{command:?} failed:\n{stderr}");
    stderr
}

fn read_json(path: &PathBuf) -> Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

#[test]
fn forward_quick_memory() {
    let scratch = Scratch::new();
    let json = scratch.path("forward.json");
    let markdown = scratch.path("forward.md");
    run(bench()
        .args(["forward", "--quick", "--backends", "mem", "--sizes", "64,1400", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(&markdown));

    let report = read_json(&json);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 4, "one row per size and crypto path");
    for size in [64, 1400] {
        let paths: Vec<&str> = rows
            .iter()
            .filter(|row| row["frame_bytes"].as_u64() == Some(size))
            .map(|row| row["crypto_path"].as_str().unwrap())
            .collect();
        assert_eq!(paths.len(), 2, "{size} B: rows {paths:?}");
        assert_eq!(paths[0], "single", "{size} B: first path");
        assert!(paths[1].starts_with("burst "), "{size} B: second path {}", paths[1]);
    }
    for row in rows {
        let size = row["frame_bytes"].as_u64().unwrap();
        assert!(row["pipeline_pps"]["median"].as_f64().unwrap() > 1000.0, "{size} B rate");
        assert!(row["reference_pps"]["median"].as_f64().unwrap() > 1000.0, "{size} B reference");
        assert!(row["ratio"].as_f64().unwrap() > 0.0, "{size} B ratio");
        assert_eq!(row["lost"].as_u64(), Some(0), "{size} B lost");
        assert_eq!(row["drops"].as_u64(), Some(0), "{size} B drops");
        let p50 = row["latency"]["p50_us"].as_f64().unwrap();
        let max = row["latency"]["max_us"].as_f64().unwrap();
        assert!(p50 > 0.0, "{size} B latency p50 {p50}");
        assert!(p50 <= max, "{size} B latency p50 {p50} above max {max}");
        assert!(!row["cdf"].as_array().unwrap().is_empty(), "{size} B cdf");
    }
    let table = std::fs::read_to_string(&markdown).unwrap();
    assert!(table.contains("| mem | single | 64 |"), "{table}");
    assert!(table.contains("burst path over one-packet path"), "{table}");
}

#[test]
fn rotation_quick_switches_without_loss() {
    let scratch = Scratch::new();
    let json = scratch.path("rotation.json");
    run(bench()
        .args(["rotation", "--quick", "--flows", "16", "--sizes", "64,1400", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(scratch.path("rotation.md")));

    let rows = read_json(&json);
    let rows = rows.as_array().unwrap();
    assert_eq!(rows.len(), 2, "one row per size");
    for row in rows {
        let size = row["frame_bytes"].as_u64().unwrap();
        assert_eq!(row["rotations_started"].as_u64(), Some(16), "{size} B rotations");
        // Each router switches once per session: the ingress to send, the egress to open.
        assert_eq!(row["key_switches"].as_u64(), Some(32), "{size} B key switches");
        assert_eq!(row["key_drops"].as_u64(), Some(0), "{size} B key drops");
        assert_eq!(row["rotating_lost"].as_u64(), Some(0), "{size} B lost while rotating");
        assert!(row["rotating"]["p99_us"].as_f64().unwrap() > 0.0, "{size} B latency");
    }
}

#[test]
fn sessions_quick_small_tables() {
    let scratch = Scratch::new();
    let json = scratch.path("sessions.json");
    run(bench()
        .args(["sessions", "--quick", "--sizes", "1000,10000", "--setup-flows", "500", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(scratch.path("sessions.md")));

    let report = read_json(&json);
    let breakdown = &report["breakdown"];
    let entry = breakdown["session_entry"].as_f64().unwrap();
    let total = breakdown["total"].as_f64().unwrap();
    assert!(total >= entry, "measured {total} B below the entry's {entry} B");
    assert!(breakdown["metadata_heap"].as_f64().unwrap() > 0.0);
    assert_eq!(report["sizes"].as_array().unwrap().len(), 2);
    assert!(report["setup_per_second"]["median"].as_f64().unwrap() > 0.0);
    for row in report["sizes"].as_array().unwrap() {
        let sessions = row["sessions"].as_u64().unwrap();
        let single = row["lookup_ns"]["median"].as_f64().unwrap();
        let burst = row["burst_lookup_ns"]["median"].as_f64().unwrap();
        assert!(single > 0.0, "{sessions} sessions: lookups one at a time");
        assert!(burst > 0.0, "{sessions} sessions: lookups in bursts");
    }
    assert!(report["burst_lookup_ratio"].as_f64().unwrap() > 0.0);
}

#[test]
fn sessions_zero_size_rejected() {
    let scratch = Scratch::new();
    let output = bench()
        .args(["sessions", "--quick", "--sizes", "1000,0", "--json"])
        .arg(scratch.path("sessions.json"))
        .arg("--markdown")
        .arg(scratch.path("sessions.md"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "size 0 accepted:\n{stderr}");
    assert!(stderr.contains("invalid table size 0"), "{stderr}");
    assert!(!scratch.path("sessions.json").exists(), "results written for size 0");
}

#[test]
fn plot_writes_pngs() {
    let scratch = Scratch::new();
    let dir = scratch.0.clone();
    run(bench()
        .args(["forward", "--quick", "--backends", "mem", "--sizes", "64", "--json"])
        .arg(dir.join("forward.json"))
        .arg("--markdown")
        .arg(dir.join("forward.md")));
    run(bench().arg("plot").arg("--dir").arg(&dir));
    for name in ["throughput.png", "latency-cdf.png"] {
        let bytes = std::fs::read(dir.join(name)).unwrap();
        assert_eq!(&bytes[1..4], b"PNG", "{name} is not a PNG");
    }
    assert!(!dir.join("sweep.png").exists(), "no sweep.json, so no sweep plot");
}

/// Fails with an explanation unless the test runs as root.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let euid = status
        .lines()
        .find_map(|line| line.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .unwrap_or("");
    assert_eq!(
        euid, "0",
        "the AF_XDP load test needs root to create namespaces, veth pairs and XDP \
         programs; run it as root or filter it out with -E 'not test(/netns/)'"
    );
}

#[test]
fn netns_loadgen_through_svrd() {
    require_root();
    let scratch = Scratch::new();
    let json = scratch.path("loadgen.json");
    let mut command = bench();
    command
        .args(["loadgen", "--backend", "afxdp", "--path", "svrd", "--rate", "20000"])
        .args(["--seconds", "0.5", "--flows", "3", "--size", "imix", "--json"])
        .arg(&json);
    let child = command.spawn().unwrap();
    let pid = child.id();
    let output = child.wait_with_output().unwrap();
    assert!(output.status.success(), "loadgen failed");

    let result = read_json(&json);
    let sent = result["sent"].as_u64().unwrap();
    let received = result["totals"]["received"].as_u64().unwrap();
    assert!(sent >= 5000, "sent only {sent} at 20 kpps for 0.5 s");
    assert!(received * 100 >= sent * 99, "received {received} of {sent}");
    assert_eq!(result["totals"]["duplicates"].as_u64(), Some(0));
    assert!(result["latency"]["p50_us"].as_f64().unwrap() > 0.0);

    let namespaces = Command::new("ip").args(["netns", "list"]).output().unwrap();
    let listed = String::from_utf8_lossy(&namespaces.stdout);
    assert!(!listed.contains(&format!("svrb-{pid}-")), "namespaces left behind: {listed}");
}

#[test]
fn netns_forward_afxdp_quick() {
    require_root();
    let scratch = Scratch::new();
    let json = scratch.path("forward-afxdp.json");
    run(bench()
        .args(["forward", "--quick", "--backends", "afxdp", "--sizes", "64", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(scratch.path("forward-afxdp.md")));

    let report = read_json(&json);
    let row = &report["rows"][0];
    assert_eq!(row["backend"].as_str(), Some("afxdp"));
    assert!(row["pipeline_pps"]["median"].as_f64().unwrap() > 1000.0, "svrd rate");
    assert!(row["reference_pps"]["median"].as_f64().unwrap() > 1000.0, "testpmd rate");
    assert_eq!(row["drops"].as_u64(), Some(0), "router drops");
}

#[cfg(feature = "dpdk")]
#[test]
fn forward_quick_dpdk_ring() {
    require_root();
    let scratch = Scratch::new();
    let json = scratch.path("forward-dpdk.json");
    run(bench()
        .args(["forward", "--quick", "--backends", "dpdk", "--sizes", "64,1400", "--json"])
        .arg(&json)
        .arg("--markdown")
        .arg(scratch.path("forward-dpdk.md")));

    let report = read_json(&json);
    let rows = report["rows"].as_array().unwrap();
    assert_eq!(rows.len(), 2);
    for row in rows {
        assert!(row["pipeline_pps"]["median"].as_f64().unwrap() > 1000.0);
        assert_eq!(row["lost"].as_u64(), Some(0));
        assert_eq!(row["drops"].as_u64(), Some(0));
    }
}
