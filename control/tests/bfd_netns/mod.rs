//! Test support for BFD tests over real sockets: network namespaces and veth pairs that a
//! guard deletes on drop, processes killed by PID on drop, and a BFD driver running on a
//! thread inside a namespace.

// Each test binary uses a different part of this module.
#![allow(dead_code)]
#![expect(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test support: a failed setup step fails the test with its message"
)]

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use nix::sched::{CloneFlags, setns};
use svr_control::bfd::PathSpec;
use svr_control::bfd::driver::{Driver, DriverHandle};

pub const BFDD: &str = "/usr/lib/frr/bfdd";
pub const VTYSH: &str = "/usr/bin/vtysh";

/// Fails the test with a clear message unless it runs as root.
pub fn require_root() {
    let uid = run("id", &["-u"]);
    assert_eq!(uid.trim(), "0", "this test needs root to create network namespaces");
}

/// Fails the test with a clear message unless FRR's bfdd and vtysh are installed.
pub fn require_frr() {
    require_root();
    for tool in [BFDD, VTYSH] {
        assert!(
            Path::new(tool).exists(),
            "{tool} is missing: install FRR (Debian package frr, scripts/install-deps)"
        );
    }
}

/// Runs a command and fails the test if it does not succeed.
pub fn run(program: &str, args: &[&str]) -> String {
    let output = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {program}: {e}"));
    assert!(
        output.status.success(),
        "{program} {} failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// Network namespaces and the processes started in them, removed on drop.
pub struct Lab {
    pub prefix: String,
    namespaces: Vec<String>,
    children: Vec<Child>,
    dirs: Vec<PathBuf>,
}

impl Lab {
    /// Creates namespaces `svrbfd-<pid>-<tag>-<name>` for each name.
    pub fn new(tag: &str, names: &[&str]) -> Lab {
        require_root();
        let prefix = format!("svrbfd-{}-{tag}", std::process::id());
        let mut lab =
            Lab { prefix, namespaces: Vec::new(), children: Vec::new(), dirs: Vec::new() };
        for name in names {
            let ns = lab.ns(name);
            run("ip", &["netns", "add", &ns]);
            lab.namespaces.push(ns.clone());
            run("ip", &["-n", &ns, "link", "set", "lo", "up"]);
        }
        lab
    }

    /// Full name of namespace `name`.
    pub fn ns(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Joins namespaces `a` and `b` with a veth pair and addresses both ends (`/24`).
    pub fn veth(&self, a: &str, a_dev: &str, a_addr: &str, b: &str, b_dev: &str, b_addr: &str) {
        let (na, nb) = (self.ns(a), self.ns(b));
        run(
            "ip",
            &[
                "link", "add", a_dev, "netns", &na, "type", "veth", "peer", "name", b_dev, "netns",
                &nb,
            ],
        );
        run("ip", &["-n", &na, "addr", "add", &format!("{a_addr}/24"), "dev", a_dev]);
        run("ip", &["-n", &nb, "addr", "add", &format!("{b_addr}/24"), "dev", b_dev]);
        run("ip", &["-n", &na, "link", "set", a_dev, "up"]);
        run("ip", &["-n", &nb, "link", "set", b_dev, "up"]);
    }

    /// Sets a link in namespace `name` up or down.
    pub fn link(&self, name: &str, dev: &str, up: bool) {
        let ns = self.ns(name);
        run("ip", &["-n", &ns, "link", "set", dev, if up { "up" } else { "down" }]);
    }

    /// Keeps `child` to be killed on drop; returns its PID.
    pub fn adopt(&mut self, child: Child) -> u32 {
        let pid = child.id();
        self.children.push(child);
        pid
    }

    /// Kills and reaps the adopted process `pid`.
    pub fn kill(&mut self, pid: u32) {
        if let Some(index) = self.children.iter().position(|c| c.id() == pid) {
            let mut child = self.children.remove(index);
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Creates a scratch directory that is removed on drop.
    pub fn scratch_dir(&mut self, name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("{}-{name}", self.prefix));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        self.dirs.push(dir.clone());
        dir
    }
}

impl Drop for Lab {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for ns in &self.namespaces {
            let _ = Command::new("ip").args(["netns", "del", ns]).status();
        }
        for dir in &self.dirs {
            let _ = std::fs::remove_dir_all(dir);
        }
    }
}

/// Moves the calling thread into namespace `ns`.
pub fn enter(ns: &str) {
    let file = File::open(format!("/var/run/netns/{ns}"))
        .unwrap_or_else(|e| panic!("cannot open namespace {ns}: {e}"));
    setns(file, CloneFlags::CLONE_NEWNET).unwrap_or_else(|e| panic!("cannot enter {ns}: {e}"));
}

/// A BFD driver running on its own thread inside a namespace.
pub struct Endpoint {
    pub handle: DriverHandle,
    stop: Arc<AtomicBool>,
    admin_down_on_stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Endpoint {
    pub fn start(ns: &str, paths: Vec<PathSpec>) -> Endpoint {
        let stop = Arc::new(AtomicBool::new(false));
        let admin_down_on_stop = Arc::new(AtomicBool::new(false));
        let (tx, rx) = mpsc::channel();
        let ns = ns.to_string();
        let (stop2, admin2) = (Arc::clone(&stop), Arc::clone(&admin_down_on_stop));
        let thread = std::thread::spawn(move || {
            enter(&ns);
            let (mut driver, handle) = match Driver::new(paths) {
                Ok(pair) => pair,
                Err(e) => {
                    let _ = tx.send(Err(format!("driver failed to start in {ns}: {e:?}")));
                    return;
                }
            };
            tx.send(Ok(handle)).unwrap();
            driver.run(&stop2).unwrap();
            if admin2.load(Ordering::Relaxed) {
                driver.shutdown();
            }
        });
        let handle =
            rx.recv_timeout(Duration::from_secs(5)).expect("driver did not start").unwrap();
        Endpoint { handle, stop, admin_down_on_stop, thread: Some(thread) }
    }

    /// Stops the loop; with `admin_down` the sessions first send AdminDown.
    pub fn stop(&mut self, admin_down: bool) {
        self.admin_down_on_stop.store(admin_down, Ordering::Relaxed);
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            thread.join().expect("driver thread panicked");
        }
    }
}

impl Drop for Endpoint {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Polls `check` every 10 ms until it returns true or `timeout` passes. Returns the time
/// taken.
pub fn wait_until(timeout: Duration, mut check: impl FnMut() -> bool) -> Option<Duration> {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if check() {
            return Some(start.elapsed());
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    None
}

/// FRR's bfdd running alone (no zebra) in a namespace, with its sockets in a scratch dir.
pub struct Frr {
    pub pid: u32,
    pub run_dir: PathBuf,
    pub ns: String,
}

impl Frr {
    /// Starts bfdd in namespace `name` with `config` as its configuration.
    pub fn start(lab: &mut Lab, name: &str, config: &str) -> Frr {
        require_frr();
        let dir = lab.scratch_dir("frr");
        let run_dir = dir.join("run");
        std::fs::create_dir_all(&run_dir).unwrap();
        let conf = dir.join("bfdd.conf");
        std::fs::write(&conf, config).unwrap();
        // bfdd drops privileges to user frr, which must be able to write the run dir.
        run("chown", &["-R", "frr:frr", dir.to_str().unwrap()]);

        let ns = lab.ns(name);
        let run_str = run_dir.to_str().unwrap().to_string();
        let child = Command::new("ip")
            .args(["netns", "exec", &ns, BFDD, "-f", conf.to_str().unwrap()])
            .args(["-i", &format!("{run_str}/bfdd.pid"), "-z", &format!("{run_str}/zserv.api")])
            .args([
                "--vty_socket",
                &run_str,
                "--bfdctl",
                &format!("{run_str}/bfdd.sock"),
                "-P",
                "0",
            ])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("cannot start bfdd");
        let pid = lab.adopt(child);
        let frr = Frr { pid, run_dir, ns };

        // bfdd is ready once vtysh can talk to it.
        let ready =
            wait_until(Duration::from_secs(10), || frr.try_vtysh("show bfd peers json").is_some());
        assert!(ready.is_some(), "bfdd did not answer vtysh within 10 s");
        frr
    }

    fn try_vtysh(&self, command: &str) -> Option<String> {
        let output = Command::new("ip")
            .args(["netns", "exec", &self.ns, VTYSH, "--vty_socket"])
            .arg(&self.run_dir)
            .args(["-c", command])
            .output()
            .ok()?;
        output.status.success().then(|| String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Returns FRR's JSON record for `peer`.
    pub fn peer(&self, peer: &str) -> Option<serde_json::Value> {
        let text = self.try_vtysh("show bfd peers json")?;
        let value: serde_json::Value = serde_json::from_str(&text).ok()?;
        value.as_array()?.iter().find(|p| p["peer"] == peer).cloned()
    }

    /// Returns FRR's status string for `peer` ("up", "down", "init", ...).
    pub fn status(&self, peer: &str) -> Option<String> {
        self.peer(peer).and_then(|p| p["status"].as_str().map(str::to_string))
    }
}
