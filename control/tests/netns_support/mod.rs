//! Two real svrd processes in network namespaces (host1 - r1 = wan-a / wan-b = r2 - host5),
//! with certificates from an openssl CA and a UDP echo server on host5, for the tests of
//! how the daemon follows the host's interfaces and neighbours. Needs root, openssl and
//! python3; the topology, files and processes are removed on drop.

#![allow(dead_code, reason = "each test binary uses a different part of the harness")]

use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

pub const SVRD: &str = env!("CARGO_BIN_EXE_svrd");
pub const SVRCTL: &str = env!("CARGO_BIN_EXE_svrctl");
pub const PYTHON: &str = "/usr/bin/python3";
pub const ECHO_PORT: u16 = 7007;
pub const HOST5: &str = "10.231.5.10";

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
pub fn bash(prefix: &str, script: &str) -> Output {
    let lib = repo_root().join("scripts/lib");
    let prelude = format!(
        "set -euo pipefail; export DEMO_PREFIX='{prefix}'; \
         for f in topology demo-topology pki config; do source '{}'/$f.sh; done\n",
        lib.display()
    );
    Command::new("bash").arg("-c").arg(prelude + script).output().expect("run bash")
}

pub fn check(output: &Output, step: &str) -> String {
    assert!(
        output.status.success(),
        "{step} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// The topology, the files and the processes of one test.
pub struct Lab {
    pub prefix: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Lab {
    /// Builds the topology under a prefix made of `tag` and this process id. With
    /// `warm_neighbours` the hosts and routers ping each other first, so the kernels'
    /// neighbour tables are filled before svrd starts.
    pub fn new(tag: &str, warm_neighbours: bool) -> Lab {
        require_root();
        let prefix = format!("svr{tag}{}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{prefix}-files"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let lab = Lab { prefix, dir, children: Vec::new() };
        let script = if warm_neighbours {
            "demo_topology_up && demo_warm_neighbours"
        } else {
            "demo_topology_up"
        };
        check(&bash(&lab.prefix, script), "topology");
        lab
    }

    pub fn ns(&self, role: &str) -> String {
        format!("{}-{role}", self.prefix)
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    /// Runs SCRIPT with the demo libraries, failing the test with STEP when it fails.
    pub fn run(&self, script: &str, step: &str) -> String {
        check(&bash(&self.prefix, script), step)
    }

    /// Starts PROGRAM ARGS inside namespace ROLE, its output in DIR/NAME.log.
    pub fn spawn(&mut self, role: &str, name: &str, program: &str, args: &[&str]) {
        let log = fs::File::create(self.path(&format!("{name}.log"))).unwrap();
        let child = Command::new("ip")
            .args(["netns", "exec", &self.ns(role), program])
            .args(args)
            .env("RUST_LOG", "svr_control=debug,svr_dataplane=debug,info")
            .stdin(Stdio::null())
            .stdout(log.try_clone().unwrap())
            .stderr(log)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {program} in {role}: {e}"));
        self.children.push((name.to_owned(), child));
    }

    pub fn log(&self, name: &str) -> String {
        fs::read_to_string(self.path(&format!("{name}.log"))).unwrap_or_default()
    }

    /// Fails the test when a process it started has exited.
    pub fn assert_running(&mut self) {
        for (name, child) in &mut self.children {
            if let Ok(Some(status)) = child.try_wait() {
                let log = fs::read_to_string(self.dir.join(format!("{name}.log")));
                panic!("{name} exited with {status}:\n{}", log.unwrap_or_default());
            }
        }
    }

    /// Runs `svrctl --json COMMAND` against ROUTER's svrd.
    pub fn json(&self, router: &str, command: &[&str]) -> serde_json::Value {
        let socket = self.path(&format!("{router}.sock"));
        let output = Command::new(SVRCTL)
            .arg("--socket")
            .arg(&socket)
            .arg("--json")
            .args(command)
            .output()
            .expect("run svrctl");
        serde_json::from_slice(&output.stdout).unwrap_or(serde_json::Value::Null)
    }

    pub fn alarms(&self, router: &str) -> Vec<String> {
        let value = self.json(router, &["show", "alarms"]);
        value
            .as_array()
            .map(|rows| {
                rows.iter().filter_map(|r| r["message"].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    }

    /// Returns the rows of ROUTER's `show peers security`.
    pub fn peer_rows(&self, router: &str) -> Vec<serde_json::Value> {
        self.json(router, &["show", "peers", "security"]).as_array().cloned().unwrap_or_default()
    }

    /// Returns ROUTER's drop counter REASON.
    pub fn drops(&self, router: &str, reason: &str) -> u64 {
        self.json(router, &["show", "stats"])["drops"][reason].as_u64().unwrap_or(0)
    }

    /// Waits up to TIMEOUT for CONDITION, failing the test with GOAL and both logs.
    pub fn wait(&mut self, timeout: Duration, goal: &str, mut condition: impl FnMut(&Lab) -> bool) {
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
            "timed out after {timeout:?} waiting for {goal}\nr1 alarms: {:?}\nr1 paths: {:?}\n\
             --- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.alarms("r1"),
            self.peer_rows("r1"),
            tail(&self.log("r1"), 60),
            tail(&self.log("r2"), 60)
        );
    }

    /// Sends COUNT datagrams from host1's UDP port SOURCE_PORT to host5's echo server and
    /// returns how many echoes came back.
    pub fn echoes(&self, source_port: u16, count: u32) -> u32 {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0', {source_port}))\n\
             s.settimeout(0.3)\n\
             got = 0\n\
             for i in range({count}):\n\
             \x20   s.sendto(b'svrlab-%d' % i, ('{HOST5}', {ECHO_PORT}))\n\
             \x20   try:\n\
             \x20       data, _ = s.recvfrom(2048)\n\
             \x20       got += data == b'svrlab-%d' % i\n\
             \x20   except socket.timeout:\n\
             \x20       pass\n\
             print(got)\n"
        );
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns("host1"), PYTHON, "-c", &script])
            .output()
            .expect("run the UDP client");
        check(&output, "UDP client").trim().parse().unwrap_or(0)
    }

    /// Writes the CA, both router certificates and the configuration, starts the echo
    /// server and both svrd, and waits until both routers have peer keys on both paths.
    pub fn start_routers(&mut self) {
        let pki = self.path("pki");
        fs::create_dir_all(&pki).unwrap();
        let config = self.path("svrd.cfg");
        self.run(
            &format!(
                "pki_make_ca '{p}' 'svrlab CA' 365; \
                 pki_make_router_cert '{p}' '{p}' r1 svrdemo-r1 365; \
                 pki_make_router_cert '{p}' '{p}' r2 svrdemo-r2 365; \
                 config_write_two_router '{c}' '{p}'",
                p = pki.display(),
                c = config.display()
            ),
            "certificates and configuration",
        );
        let echo = format!(
            "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0', {ECHO_PORT}))\nwhile True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n"
        );
        self.spawn("host5", "echo", PYTHON, &["-c", &echo]);
        for router in ["r1", "r2"] {
            let state = self.path(&format!("{router}-state"));
            let socket = self.path(&format!("{router}.sock"));
            let args = [
                "--config",
                config.to_str().unwrap(),
                "--router",
                router,
                "--state-dir",
                state.to_str().unwrap(),
                "--socket",
                socket.to_str().unwrap(),
                "--key-grace-seconds",
                "2",
            ];
            self.spawn(router, router, SVRD, &args);
        }
        self.wait(Duration::from_secs(40), "peer keys on every path", |lab| {
            ["r1", "r2"].iter().all(|router| {
                let rows = lab.peer_rows(router);
                rows.len() == 2 && rows.iter().all(|r| r["security_status"] == "MKEY_EXCH_COMP")
            })
        });
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

pub fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
