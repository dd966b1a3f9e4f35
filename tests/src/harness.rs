//! Test harness for svrd in network namespaces: namespaces and veth links that are deleted
//! on drop, svrd processes stopped by PID on drop, management queries, and traffic between
//! hosts (ping, and a TCP transfer checked by SHA-256).
//!
//! Everything here runs `ip`, `ping`, `python3` and `sha256sum` as child processes and needs
//! root. Each test makes its own namespaces under a prefix unique to its process.

use std::fmt;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use svr_control::mgmt::{self, Reply};

/// An error of the harness: a tool that failed or a condition that did not come true.
#[derive(Debug)]
pub struct HarnessError(pub String);

impl fmt::Display for HarnessError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for HarnessError {}

/// Result of a harness step.
pub type Result<T> = std::result::Result<T, HarnessError>;

fn fail<T>(message: impl Into<String>) -> Result<T> {
    Err(HarnessError(message.into()))
}

/// Returns the repository root.
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Returns whether the process runs as root, which namespaces need.
pub fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        .is_some_and(|effective| effective == "0")
}

/// Runs a command and returns its output, or an error with its output when it fails.
pub fn run(program: &str, args: &[&str]) -> Result<Output> {
    let output = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| HarnessError(format!("cannot run {program}: {e}")))?;
    if !output.status.success() {
        return fail(format!(
            "{program} {} failed with {}: {}{}",
            args.join(" "),
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    Ok(output)
}

/// Environment variable naming an svrd binary to run in place of building one.
pub const SVRD_VARIABLE: &str = "SVR_TESTS_SVRD";

/// Returns the svrd binary: the file `SVR_TESTS_SVRD` names, or else one built from this
/// checkout by `cargo build`, at the path cargo reports.
pub fn svrd_binary() -> Result<PathBuf> {
    static BINARY: OnceLock<std::result::Result<PathBuf, String>> = OnceLock::new();
    let found = BINARY.get_or_init(|| match std::env::var_os(SVRD_VARIABLE) {
        Some(path) if Path::new(&path).is_file() => Ok(PathBuf::from(path)),
        Some(path) => Err(format!("{SVRD_VARIABLE}={}: no such file", path.to_string_lossy())),
        None => build_svrd().map_err(|e| e.0),
    });
    found.clone().map_err(HarnessError)
}

/// Returns the svrd binary to run from `dir`. A binary that cargo built is copied into
/// `dir` first, because cargo reports target/debug/svrd, which a build from another
/// checkout sharing the target directory may replace while the test runs.
fn svrd_binary_in(dir: &Path) -> Result<PathBuf> {
    let binary = svrd_binary()?;
    if std::env::var_os(SVRD_VARIABLE).is_some() {
        return Ok(binary);
    }
    let copy = dir.join("svrd");
    if !copy.is_file() {
        fs::copy(&binary, &copy)
            .map_err(|e| HarnessError(format!("cannot copy {}: {e}", binary.display())))?;
    }
    Ok(copy)
}

fn build_svrd() -> Result<PathBuf> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_string());
    let mut args = vec!["build", "-p", "svr-control", "--bin", "svrd", "--message-format=json"];
    if cfg!(feature = "dpdk") {
        args.extend(["--features", "dpdk"]);
    }
    let output = Command::new(cargo)
        .current_dir(repo_root())
        .args(&args)
        .stdin(Stdio::null())
        .stderr(Stdio::piped())
        .output()
        .map_err(|e| HarnessError(format!("cannot run cargo build: {e}")))?;
    if !output.status.success() {
        return fail(format!(
            "cargo build -p svr-control --bin svrd failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    for line in String::from_utf8_lossy(&output.stdout).lines() {
        let Ok(message) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        if message["target"]["name"] == "svrd"
            && let Some(path) = message["executable"].as_str()
        {
            return Ok(PathBuf::from(path));
        }
    }
    fail("cargo build reported no svrd executable")
}

/// A temporary directory, removed on drop.
#[derive(Debug)]
pub struct TempDir(pub PathBuf);

impl TempDir {
    /// Creates an empty directory named after `tag` and this process.
    pub fn new(tag: &str) -> Result<TempDir> {
        let path = std::env::temp_dir().join(format!("svr-tests-{tag}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path)
            .map_err(|e| HarnessError(format!("cannot create {}: {e}", path.display())))?;
        Ok(TempDir(path))
    }

    /// Returns the path of `name` inside the directory.
    pub fn join(&self, name: &str) -> PathBuf {
        self.0.join(name)
    }
}

/// Environment variable that keeps test directories (configurations, logs, captures) for
/// inspection after the test, when set to any value.
pub const KEEP_VARIABLE: &str = "SVR_TESTS_KEEP";

impl Drop for TempDir {
    fn drop(&mut self) {
        if std::env::var_os(KEEP_VARIABLE).is_some() {
            eprintln!("{KEEP_VARIABLE}: kept {}", self.0.display());
            return;
        }
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Network namespaces named `PREFIX-NAME`. Dropping it stops every process left inside
/// them (all started by the test) and deletes them, with their veth ends.
#[derive(Debug)]
pub struct Namespaces {
    prefix: String,
    created: Vec<String>,
}

impl Namespaces {
    /// Starts an empty set under a prefix of `tag` and this process id, after removing any
    /// namespaces an earlier run of the same process id left behind.
    pub fn new(tag: &str) -> Namespaces {
        let prefix = format!("sd{}{tag}", std::process::id() % 1_000_000);
        let mut namespaces = Namespaces { prefix, created: Vec::new() };
        namespaces.created = namespaces.list();
        namespaces.delete_all();
        namespaces
    }

    /// Returns the full name of namespace `name`.
    pub fn name(&self, name: &str) -> String {
        format!("{}-{name}", self.prefix)
    }

    /// Creates namespace `name` with loopback up. A router namespace (`router`) does not
    /// forward in its kernel, so only svrd forwards there.
    pub fn add(&mut self, name: &str, router: bool) -> Result<String> {
        let full = self.name(name);
        run("ip", &["netns", "add", &full])?;
        self.created.push(full.clone());
        run("ip", &["-n", &full, "link", "set", "lo", "up"])?;
        let sysctls: &[&str] = if router {
            &[
                "net.ipv4.ip_forward=0",
                "net.ipv6.conf.all.forwarding=0",
                "net.ipv6.conf.default.accept_dad=0",
            ]
        } else {
            &["net.ipv6.conf.default.accept_dad=0"]
        };
        for setting in sysctls {
            run("ip", &["netns", "exec", &full, "sysctl", "-qw", setting])?;
        }
        Ok(full)
    }

    /// Links `a`'s interface `if_a` to `b`'s `if_b` with a single-queue veth pair (AF_XDP
    /// binds one queue), sets both up and turns TX checksum offload off on both ends, so
    /// the frames svrd forwards carry complete checksums.
    pub fn link(&self, a: &str, if_a: &str, b: &str, if_b: &str) -> Result<()> {
        let (ns_a, ns_b) = (self.name(a), self.name(b));
        run(
            "ip",
            &[
                "link",
                "add",
                if_a,
                "netns",
                &ns_a,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
                "type",
                "veth",
                "peer",
                "name",
                if_b,
                "netns",
                &ns_b,
                "numtxqueues",
                "1",
                "numrxqueues",
                "1",
            ],
        )?;
        for (ns, interface) in [(&ns_a, if_a), (&ns_b, if_b)] {
            run("ip", &["-n", ns, "link", "set", interface, "up"])?;
            run("ip", &["netns", "exec", ns, "ethtool", "-K", interface, "tx", "off"])?;
        }
        Ok(())
    }

    /// Adds address `cidr` to `ns`'s `interface`, without duplicate address detection.
    pub fn addr(&self, ns: &str, interface: &str, cidr: &str) -> Result<()> {
        let full = self.name(ns);
        if cidr.contains(':') {
            run("ip", &["-n", &full, "addr", "add", cidr, "dev", interface, "nodad"])?;
        } else {
            run("ip", &["-n", &full, "addr", "add", cidr, "dev", interface])?;
        }
        Ok(())
    }

    /// Sets `ns`'s default route (IPv4 or IPv6) through `gateway`.
    pub fn default_route(&self, ns: &str, gateway: &str) -> Result<()> {
        let full = self.name(ns);
        let family = if gateway.contains(':') { "-6" } else { "-4" };
        run("ip", &["-n", &full, family, "route", "add", "default", "via", gateway])?;
        Ok(())
    }

    /// Runs `args` inside namespace `ns` and returns its output; fails when it fails.
    pub fn exec(&self, ns: &str, args: &[&str]) -> Result<Output> {
        let full = self.name(ns);
        let mut all = vec!["netns", "exec", full.as_str()];
        all.extend_from_slice(args);
        run("ip", &all)
    }

    /// Pings `destination` from `ns` once, so both kernels' neighbour tables, which svrd
    /// reads, hold the entry.
    pub fn warm(&self, ns: &str, destination: &str) -> Result<()> {
        self.exec(ns, &["ping", "-c", "1", "-W", "2", destination]).map(|_| ())
    }

    fn list(&self) -> Vec<String> {
        let Ok(output) = Command::new("ip").args(["netns", "list"]).output() else {
            return Vec::new();
        };
        String::from_utf8_lossy(&output.stdout)
            .lines()
            .filter_map(|line| line.split_whitespace().next())
            .filter(|name| name.starts_with(&format!("{}-", self.prefix)))
            .map(str::to_string)
            .collect()
    }

    fn delete_all(&mut self) {
        for ns in self.created.drain(..).rev() {
            kill_namespace_processes(&ns);
            let _ = Command::new("ip").args(["netns", "del", &ns]).output();
        }
    }

    /// Returns the namespaces of this set that still exist.
    pub fn remaining(&self) -> Vec<String> {
        self.list()
    }
}

impl Drop for Namespaces {
    fn drop(&mut self) {
        self.delete_all();
    }
}

/// Stops the processes inside namespace `ns` by PID: TERM, then KILL after 3 s.
fn kill_namespace_processes(ns: &str) {
    let pids = || -> Vec<String> {
        Command::new("ip")
            .args(["netns", "pids", ns])
            .output()
            .map(|o| {
                String::from_utf8_lossy(&o.stdout).split_whitespace().map(String::from).collect()
            })
            .unwrap_or_default()
    };
    for pid in pids() {
        let _ = Command::new("kill").args(["-TERM", &pid]).output();
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && !pids().is_empty() {
        std::thread::sleep(Duration::from_millis(100));
    }
    for pid in pids() {
        let _ = Command::new("kill").args(["-KILL", &pid]).output();
    }
}

/// One running svrd. Dropping it stops the process by PID.
#[derive(Debug)]
pub struct Svrd {
    /// The router it runs.
    pub router: String,
    /// Its management socket.
    pub socket: PathBuf,
    /// Its log file (standard error).
    pub log: PathBuf,
    child: Option<Child>,
}

impl Svrd {
    /// Starts svrd for `router` in namespace `ns` with the configuration `config`. State,
    /// socket and log live in `dir`. The key grace time is 2 s, so rotations finish quickly.
    pub fn start(
        namespaces: &Namespaces,
        ns: &str,
        router: &str,
        config: &Path,
        dir: &Path,
    ) -> Result<Svrd> {
        let binary = svrd_binary_in(dir)?;
        let socket = dir.join(format!("{router}.sock"));
        let log = dir.join(format!("{router}.log"));
        let state = dir.join(format!("{router}-state"));
        let _ = fs::remove_file(&socket);
        fs::create_dir_all(&state).map_err(|e| HarnessError(format!("state dir: {e}")))?;
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .map_err(|e| HarnessError(format!("cannot open {}: {e}", log.display())))?;
        // `ip netns exec` enters the namespace and then executes svrd, so the child's PID
        // is svrd's own and signals reach it directly.
        let child = Command::new("ip")
            .args(["netns", "exec", &namespaces.name(ns)])
            .arg(&binary)
            .arg("--config")
            .arg(config)
            .args(["--router", router, "--key-grace-seconds", "2"])
            .arg("--state-dir")
            .arg(&state)
            .arg("--socket")
            .arg(&socket)
            .env("RUST_LOG", std::env::var("RUST_LOG").unwrap_or_else(|_| "info".into()))
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log_file)
            .spawn()
            .map_err(|e| HarnessError(format!("cannot start svrd: {e}")))?;
        Ok(Svrd { router: router.to_string(), socket, log, child: Some(child) })
    }

    /// Returns the process id.
    pub fn pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    /// Sends `signal` (a `kill` signal name) to the process.
    pub fn signal(&self, signal: &str) -> Result<()> {
        let Some(pid) = self.pid() else {
            return fail(format!("svrd {} is not running", self.router));
        };
        run("kill", &[&format!("-{signal}"), &pid.to_string()]).map(|_| ())
    }

    /// Returns whether the process is still running.
    pub fn is_running(&mut self) -> bool {
        self.child.as_mut().is_some_and(|child| matches!(child.try_wait(), Ok(None)))
    }

    /// Stops the process with SIGTERM (SIGKILL after 5 s) and returns its exit status.
    pub fn stop(&mut self) -> Option<std::process::ExitStatus> {
        let mut child = self.child.take()?;
        let _ = Command::new("kill").args(["-TERM", &child.id().to_string()]).output();
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = child.kill();
        child.wait().ok()
    }

    /// Returns the log so far.
    pub fn log_text(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Sends a management command and returns the reply.
    pub fn request(&self, words: &[&str]) -> Result<Reply> {
        let command = mgmt::Command::from_words(words).map_err(HarnessError)?;
        mgmt::request(&self.socket, &command)
            .map_err(|e| HarnessError(format!("svrd {}: {}: {e}", self.router, words.join(" "))))
    }

    /// Returns `(complete, total)`: peer paths in MKEY_EXCH_COMP and up, and all paths.
    pub fn paths_complete(&self) -> Result<(usize, usize)> {
        let reply = self.request(&["show", "peers", "security"])?;
        let rows = reply.data.as_array().cloned().unwrap_or_default();
        let complete = rows
            .iter()
            .filter(|row| row["security_status"] == "MKEY_EXCH_COMP" && row["status"] == "up")
            .count();
        Ok((complete, rows.len()))
    }

    /// Waits up to `timeout` until every one of `expected` peer paths is complete.
    pub fn wait_complete(&mut self, expected: usize, timeout: Duration) -> Result<()> {
        let deadline = Instant::now() + timeout;
        let mut last = String::from("no reply");
        while Instant::now() < deadline {
            if !self.is_running() {
                return fail(format!("svrd {} exited:\n{}", self.router, self.log_tail(30)));
            }
            match self.paths_complete() {
                Ok((complete, total)) if complete == expected && total == expected => return Ok(()),
                Ok((complete, total)) => last = format!("{complete} of {total} paths complete"),
                Err(error) => last = error.0,
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        fail(format!(
            "svrd {}: {expected} complete peer paths expected within {timeout:?}, last: {last}\n{}",
            self.router,
            self.log_tail(30)
        ))
    }

    /// Returns the raised alarms' messages.
    pub fn alarms(&self) -> Result<Vec<String>> {
        let reply = self.request(&["show", "alarms"])?;
        Ok(reply
            .data
            .as_array()
            .map(|rows| {
                rows.iter().map(|row| row["message"].as_str().unwrap_or("").to_string()).collect()
            })
            .unwrap_or_default())
    }

    /// Returns the last `lines` lines of the log.
    pub fn log_tail(&self, lines: usize) -> String {
        let text = self.log_text();
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..].join("\n")
    }
}

impl Drop for Svrd {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Pings `destination` from `ns` `count` times, 0.2 s apart; returns the replies received.
pub fn ping(namespaces: &Namespaces, ns: &str, destination: &str, count: u32) -> usize {
    let full = namespaces.name(ns);
    let count = count.to_string();
    let output = Command::new("ip")
        .args(["netns", "exec", &full, "ping", "-c", &count, "-i", "0.2", "-W", "2", destination])
        .output();
    let Ok(output) = output else {
        return 0;
    };
    let text = String::from_utf8_lossy(&output.stdout);
    text.lines()
        .find_map(|line| {
            let (_, rest) = line.split_once(" transmitted, ")?;
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or(0)
}

/// Pings until one reply comes back or `timeout` passes; returns whether one came.
pub fn ping_until(namespaces: &Namespaces, ns: &str, destination: &str, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if ping(namespaces, ns, destination, 1) == 1 {
            return true;
        }
    }
    false
}

/// Path MTU discovery settings of a Linux socket (`IP_MTU_DISCOVER`, `linux/in.h`) for
/// [`udp_datagram_crosses`]: never set DF.
pub const PMTUDISC_DONT: u8 = 0;
/// Fragment locally to the known path MTU and set DF below it.
pub const PMTUDISC_WANT: u8 = 1;

/// Sends a UDP datagram with a `len`-byte payload from the namespace `sender` to
/// `address`:5300 in the namespace `receiver` (both full names), with `IP_MTU_DISCOVER`
/// set to `discovery`. The datagram goes three times, half a second apart, so that one
/// lost to a cold neighbour cache does not fail the check. Returns whether the receiver
/// got one copy byte for byte within 10 s.
pub fn udp_datagram_crosses(
    sender: &str,
    receiver: &str,
    address: &str,
    len: usize,
    discovery: u8,
) -> Result<bool> {
    let receive = format!(
        "import socket, sys\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('{address}', 5300)); s.settimeout(10)\n\
         print('ready', flush=True)\n\
         data = s.recv(65535)\n\
         sys.exit(0 if data == bytes((i * 7) % 251 for i in range({len})) else 1)\n"
    );
    let send = format!(
        "import socket, time\n\
         s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.setsockopt(socket.IPPROTO_IP, 10, {discovery})  # IP_MTU_DISCOVER\n\
         for _ in range(3):\n    \
             s.sendto(bytes((i * 7) % 251 for i in range({len})), ('{address}', 5300))\n    \
             time.sleep(0.5)\n"
    );
    let mut child = Command::new("ip")
        .args(["netns", "exec", receiver, "python3", "-c", &receive])
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError(format!("cannot start the udp receiver in {receiver}: {e}")))?;
    let mut ready = String::new();
    if let Some(stdout) = child.stdout.take() {
        let _ = std::io::BufRead::read_line(&mut std::io::BufReader::new(stdout), &mut ready);
    }
    if ready.trim() != "ready" {
        let _ = child.kill();
        let _ = child.wait();
        return Err(HarnessError(format!("the udp receiver in {receiver} did not start")));
    }
    let sent = run("ip", &["netns", "exec", sender, "python3", "-c", &send]);
    if let Err(error) = sent {
        let _ = child.kill();
        let _ = child.wait();
        return Err(error);
    }
    let status =
        child.wait().map_err(|e| HarnessError(format!("cannot wait for the udp receiver: {e}")))?;
    Ok(status.success())
}

/// A TCP server in a namespace that sends one file to the first client and exits, at most
/// at the rate in bytes per second of its fourth argument (0: as fast as it can).
const SEND_FILE: &str = "import socket, sys, time
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
server = socket.socket(family, socket.SOCK_STREAM)
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
server.bind((sys.argv[1], int(sys.argv[2])))
server.listen(1)
server.settimeout(30)
connection, _ = server.accept()
data = open(sys.argv[3], 'rb').read()
rate = int(sys.argv[4])
if rate == 0:
    connection.sendall(data)
else:
    start = time.monotonic()
    for offset in range(0, len(data), 65536):
        connection.sendall(data[offset:offset + 65536])
        ahead = (offset + 65536) / rate - (time.monotonic() - start)
        if ahead > 0:
            time.sleep(ahead)
connection.close()
";

/// A TCP client that writes everything it receives to a file.
const RECEIVE_FILE: &str = "import socket, sys
family = socket.AF_INET6 if ':' in sys.argv[1] else socket.AF_INET
client = socket.socket(family, socket.SOCK_STREAM)
client.settimeout(20)
client.connect((sys.argv[1], int(sys.argv[2])))
with open(sys.argv[3], 'wb') as out:
    while True:
        data = client.recv(65536)
        if not data:
            break
        out.write(data)
";

/// The outcome of a TCP transfer.
#[derive(Debug)]
pub struct Transfer {
    /// SHA-256 of the file sent.
    pub sent: String,
    /// SHA-256 of the bytes received.
    pub received: String,
    /// Bytes received.
    pub bytes: u64,
    /// Time from connect to the end of the transfer.
    pub took: Duration,
}

/// Sends `size` random bytes over TCP from a server in `server_ns` listening on
/// `address`:`port` to a client in `client_ns`, and returns both SHA-256 digests.
pub fn tcp_transfer(
    namespaces: &Namespaces,
    dir: &TempDir,
    server_ns: &str,
    client_ns: &str,
    address: &str,
    port: u16,
    size: usize,
) -> Result<Transfer> {
    let endpoints = TransferEnds { server_ns, client_ns, address, port };
    tcp_transfer_paced(namespaces, dir, &endpoints, size, 0)
}

/// The two ends of a TCP transfer: the server's namespace, address and port, and the
/// client's namespace.
#[derive(Debug, Clone, Copy)]
pub struct TransferEnds<'a> {
    pub server_ns: &'a str,
    pub client_ns: &'a str,
    pub address: &'a str,
    pub port: u16,
}

/// Sends as [`tcp_transfer`] does, at most `rate` bytes per second (0: unpaced), so that a
/// test can act while the transfer runs.
pub fn tcp_transfer_paced(
    namespaces: &Namespaces,
    dir: &TempDir,
    ends: &TransferEnds<'_>,
    size: usize,
    rate: u64,
) -> Result<Transfer> {
    let TransferEnds { server_ns, client_ns, address, port } = *ends;
    let source = dir.join(&format!("send-{port}.bin"));
    let target = dir.join(&format!("received-{port}.bin"));
    let mut data = vec![0u8; size];
    getrandom_fill(&mut data)?;
    fs::write(&source, &data).map_err(|e| HarnessError(format!("write file: {e}")))?;
    let _ = fs::remove_file(&target);

    let port_text = port.to_string();
    let source_text = source.display().to_string();
    let rate_text = rate.to_string();
    let mut server = Command::new("ip")
        .args(["netns", "exec", &namespaces.name(server_ns), "python3", "-c", SEND_FILE])
        .args([address, &port_text, &source_text, &rate_text])
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| HarnessError(format!("cannot start the TCP server: {e}")))?;
    let listening = wait_listening(namespaces, server_ns, port, Duration::from_secs(10));
    if !listening {
        let _ = server.kill();
        let _ = server.wait();
        return fail(format!("the TCP server in {server_ns} did not listen on {port}"));
    }

    let started = Instant::now();
    let client = namespaces.exec(
        client_ns,
        &["python3", "-c", RECEIVE_FILE, address, &port_text, &target.display().to_string()],
    );
    let took = started.elapsed();
    let server_output = stop_child(server, Duration::from_secs(5));
    client.map_err(|e| HarnessError(format!("{e}\nserver: {server_output}")))?;

    let received = fs::read(&target).unwrap_or_default();
    Ok(Transfer {
        sent: sha256(&source)?,
        received: sha256(&target)?,
        bytes: received.len() as u64,
        took,
    })
}

/// Waits up to `timeout` until a TCP socket in namespace `ns` listens on `port`; returns
/// whether one did.
pub fn wait_listening(namespaces: &Namespaces, ns: &str, port: u16, timeout: Duration) -> bool {
    let deadline = Instant::now() + timeout;
    let filter = format!("sport = :{port}");
    while Instant::now() < deadline {
        if let Ok(output) = namespaces.exec(ns, &["ss", "-Hltn", &filter])
            && !output.stdout.is_empty()
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// Waits up to `timeout` for `child` to exit, kills it after that, and returns its
/// standard error.
fn stop_child(mut child: Child, timeout: Duration) -> String {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    child
        .wait_with_output()
        .map(|o| String::from_utf8_lossy(&o.stderr).into_owned())
        .unwrap_or_default()
}

fn sha256(path: &Path) -> Result<String> {
    let output = run("sha256sum", &[&path.display().to_string()])?;
    Ok(String::from_utf8_lossy(&output.stdout).split_whitespace().next().unwrap_or("").to_string())
}

fn getrandom_fill(buffer: &mut [u8]) -> Result<()> {
    let mut file =
        fs::File::open("/dev/urandom").map_err(|e| HarnessError(format!("/dev/urandom: {e}")))?;
    std::io::Read::read_exact(&mut file, buffer)
        .map_err(|e| HarnessError(format!("/dev/urandom: {e}")))
}

/// Waits up to `timeout` until `condition` returns true, polling every 100 ms.
pub fn wait_for(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    condition()
}
