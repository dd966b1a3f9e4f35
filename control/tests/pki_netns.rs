//! Two real svrd processes in network namespaces (host1 - r1 = wan-a / wan-b = r2 - host5),
//! with certificates from an openssl CA and a CRL served over HTTP on each router's
//! loopback. r2's certificate is revoked while traffic runs, and the tests check what r1
//! does under fail-soft and fail-hard: the alarm, `show peers security`, and whether old and
//! new UDP flows still cross. Needs root, openssl and python3.
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
const CRL_PORT: u16 = 8480;
const ECHO_PORT: u16 = 7007;
const HOST5: &str = "10.231.5.10";

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

/// The topology, the files and the processes of one test, all removed on drop.
struct Lab {
    prefix: String,
    dir: PathBuf,
    children: Vec<(String, Child)>,
}

impl Lab {
    fn new(tag: &str) -> Lab {
        require_root();
        let prefix = format!("svrpki{}{tag}", std::process::id() % 100_000);
        let dir = std::env::temp_dir().join(format!("{prefix}-files"));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(dir.join("www")).unwrap();
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

    /// Sends signal NAME (as `kill` spells it) to the process started as `name`.
    fn signal(&self, name: &str, signal: &str) {
        let (_, child) = self
            .children
            .iter()
            .find(|(n, _)| n == name)
            .unwrap_or_else(|| panic!("no process {name}"));
        let status = Command::new("kill")
            .arg(format!("-{signal}"))
            .arg(child.id().to_string())
            .status()
            .expect("run kill");
        assert!(status.success(), "kill -{signal} {name} failed");
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

    /// Runs `svrctl ARGS` against ROUTER's svrd and returns its whole output.
    fn svrctl_output(&self, router: &str, args: &[&str]) -> Output {
        let socket = self.path(&format!("{router}.sock"));
        Command::new(SVRCTL).arg("--socket").arg(&socket).args(args).output().expect("run svrctl")
    }

    fn json(&self, router: &str, command: &[&str]) -> serde_json::Value {
        let mut args = vec!["--json"];
        args.extend_from_slice(command);
        serde_json::from_str(&self.svrctl(router, &args)).unwrap_or(serde_json::Value::Null)
    }

    fn alarms(&self, router: &str) -> Vec<String> {
        let value = self.json(router, &["show", "alarms"]);
        value
            .as_array()
            .map(|rows| {
                rows.iter().filter_map(|r| r["message"].as_str().map(str::to_owned)).collect()
            })
            .unwrap_or_default()
    }

    /// Security status of ROUTER's peer paths.
    fn path_status(&self, router: &str) -> Vec<String> {
        let value = self.json(router, &["show", "peers", "security"]);
        value
            .as_array()
            .map(|rows| {
                rows.iter()
                    .map(|r| r["security_status"].as_str().unwrap_or("?").to_owned())
                    .collect()
            })
            .unwrap_or_default()
    }

    fn sessions_created(&self, router: &str) -> u64 {
        let value = self.json(router, &["show", "stats"]);
        value["forwarding"]["sessions_created"].as_u64().unwrap_or(0)
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
            "timed out after {timeout:?} waiting for {goal}\nr1 alarms: {:?}\nr2 alarms: {:?}\n\
             r1 paths: {:?}\n--- r1 log ---\n{}\n--- r2 log ---\n{}",
            self.alarms("r1"),
            self.alarms("r2"),
            self.path_status("r1"),
            tail(&self.log("r1"), 60),
            tail(&self.log("r2"), 60)
        );
    }

    /// Sends COUNT datagrams from host1's UDP port SOURCE_PORT to host5's echo server and
    /// returns how many echoes came back.
    fn echoes(&self, source_port: u16, count: u32) -> u32 {
        let script = format!(
            "import socket\n\
             s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
             s.bind(('0.0.0.0', {source_port}))\n\
             s.settimeout(0.3)\n\
             got = 0\n\
             for i in range({count}):\n\
             \x20   s.sendto(b'svrpki-%d' % i, ('{HOST5}', {ECHO_PORT}))\n\
             \x20   try:\n\
             \x20       data, _ = s.recvfrom(2048)\n\
             \x20       got += data == b'svrpki-%d' % i\n\
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

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

/// Which behavior the authority configures, and whether r1 seals its keys with a TPM.
struct Setup {
    behavior: &'static str,
    tpm_on_r1: bool,
    /// r1 starts with a self-signed certificate; its CA-signed one waits in r1-signed.pem.
    self_signed_r1: bool,
}

/// Writes the CA, the router certificates, an empty CRL and the configuration, starts the
/// CRL servers, the echo server and both svrd, and waits for the peer keys.
fn start(lab: &mut Lab, setup: &Setup) {
    let pki = lab.path("pki");
    fs::create_dir_all(&pki).unwrap();
    let config = lab.path("svrd.cfg");
    check(
        &bash(
            &lab.prefix,
            &format!(
                "pki_make_ca '{p}' 'svrpki CA' 365; \
                 pki_make_router_cert '{p}' '{p}' r1 svrdemo-r1 365; \
                 pki_make_router_cert '{p}' '{p}' r2 svrdemo-r2 365; \
                 config_write_two_router '{c}' '{p}'",
                p = pki.display(),
                c = config.display()
            ),
        ),
        "certificates and configuration",
    );
    if setup.self_signed_r1 {
        check(
            &bash(
                &lab.prefix,
                &format!(
                    "cd '{p}'; mv r1.pem r1-signed.pem; mv r1.key r1-signed.key; \
                     openssl req -x509 -new -noenc -newkey ec -pkeyopt ec_paramgen_curve:P-256 \
                     -keyout r1.key -out r1.pem -days 365 -sha256 -subj /CN=svrdemo-r1 \
                     -addext basicConstraints=critical,CA:FALSE \
                     -addext keyUsage=critical,digitalSignature \
                     -addext extendedKeyUsage=clientAuth,serverAuth \
                     -addext subjectAltName=URI:urn:ssr:peering:svrdemo-r1 2>/dev/null",
                    p = pki.display()
                ),
            ),
            "r1's self-signed certificate",
        );
    }
    fs::write(
        pki.join("ca.cnf"),
        "[ca]\ndefault_ca = ca_default\n[ca_default]\ndatabase = ./index.txt\n\
         crlnumber = ./crlnumber\ndefault_md = sha256\ndefault_crl_days = 7\n",
    )
    .unwrap();
    fs::write(pki.join("index.txt"), "").unwrap();
    fs::write(pki.join("crlnumber"), "01\n").unwrap();
    publish_crl(lab);

    // The authority gains the CRL and the behavior under test.
    let url = format!("http://127.0.0.1:{CRL_PORT}/ca.crl");
    let text = fs::read_to_string(&config).unwrap();
    let text = text.replacen(
        "        security-key-management\n",
        &format!(
            "        security-key-management\n            invalid-certificate-behavior  {}\n",
            setup.behavior
        ),
        1,
    );
    let text = text.replacen(
        "        client-certificate  r1\n",
        &format!(
            "        certificate-revocation-list  \"{url}\"\n            polling-interval  24\n\
             \x20           backoff-interval  1\n        exit\n\n        client-certificate  r1\n"
        ),
        1,
    );
    assert!(text.contains("invalid-certificate-behavior"), "behavior not inserted:\n{text}");
    assert!(text.contains(&url), "CRL not inserted:\n{text}");
    fs::write(&config, text).unwrap();

    let www = lab.path("www");
    for router in ["r1", "r2"] {
        let port = CRL_PORT.to_string();
        let www = www.to_str().unwrap().to_owned();
        lab.spawn(
            router,
            &format!("http-{router}"),
            PYTHON,
            &["-m", "http.server", &port, "--bind", "127.0.0.1", "--directory", &www],
        );
    }
    let echo = format!(
        "import socket\ns = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)\n\
         s.bind(('0.0.0.0', {ECHO_PORT}))\nwhile True:\n    d, a = s.recvfrom(2048)\n    s.sendto(d, a)\n"
    );
    lab.spawn("host5", "echo", PYTHON, &["-c", &echo]);

    let mut tpm_args = Vec::new();
    if setup.tpm_on_r1 {
        let state = lab.path("swtpm");
        fs::create_dir_all(&state).unwrap();
        let state_arg = format!("dir={}", state.display());
        lab.spawn(
            "r1",
            "swtpm",
            "swtpm",
            &[
                "socket",
                "--tpm2",
                "--tpmstate",
                &state_arg,
                "--server",
                "type=tcp,port=2321,bindaddr=127.0.0.1",
                "--ctrl",
                "type=tcp,port=2322,bindaddr=127.0.0.1",
                "--flags",
                "not-need-init,startup-clear",
            ],
        );
        std::thread::sleep(Duration::from_millis(300));
        tpm_args = vec!["--tpm".to_owned(), "swtpm:host=127.0.0.1,port=2321".to_owned()];
    }

    for router in ["r1", "r2"] {
        let state = lab.path(&format!("{router}-state"));
        let socket = lab.path(&format!("{router}.sock"));
        let mut args: Vec<String> = [
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
            "--crl-poll-seconds",
            "1",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect();
        if router == "r1" {
            args.extend(tpm_args.iter().cloned());
        }
        let args: Vec<&str> = args.iter().map(String::as_str).collect();
        lab.spawn(router, router, SVRD, &args);
    }

    if setup.self_signed_r1 {
        return;
    }
    lab.wait(Duration::from_secs(40), "peer keys on every path", |lab| {
        ["r1", "r2"].iter().all(|router| {
            let status = lab.path_status(router);
            status.len() == 2 && status.iter().all(|s| s == "MKEY_EXCH_COMP")
        })
    });
}

/// Writes the CA's current CRL where the HTTP servers serve it, through a rename so a
/// fetch never reads half a file.
fn publish_crl(lab: &Lab) {
    let pki = lab.path("pki");
    let output = Command::new("openssl")
        .current_dir(&pki)
        .args(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"])
        .args(["-gencrl", "-out", "next.crl"])
        .output()
        .expect("run openssl ca -gencrl");
    check(&output, "openssl ca -gencrl");
    fs::rename(pki.join("next.crl"), lab.path("www/ca.crl")).unwrap();
}

/// Revokes r2's certificate and publishes the new CRL.
fn revoke_r2(lab: &Lab) {
    let pki = lab.path("pki");
    let output = Command::new("openssl")
        .current_dir(&pki)
        .args(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"])
        .args(["-revoke", "r2.pem"])
        .output()
        .expect("run openssl ca -revoke");
    check(&output, "openssl ca -revoke");
    publish_crl(lab);
}

/// Withdraws every revocation and publishes the empty CRL.
fn unrevoke_all(lab: &Lab) {
    fs::write(lab.path("pki/index.txt"), "").unwrap();
    publish_crl(lab);
}

fn has_alarm(alarms: &[String], text: &str) -> bool {
    alarms.iter().any(|a| a.contains(text))
}

/// Sends a few round trips on an established flow, so both routers finish its metadata
/// handshake, and returns the source port.
fn establish_flow(lab: &Lab, source_port: u16) {
    let got = lab.echoes(source_port, 5);
    assert!(got >= 4, "only {got} of 5 echoes before the revocation");
}

#[test]
fn netns_crl_revocation_fail_soft() {
    let mut lab = Lab::new("s");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: true, self_signed_r1: false });

    // The ML-KEM key of r1 is sealed by its TPM, r2's is a mode-0600 seed file.
    let sealed = fs::read(lab.path("r1-state/ml-kem-768.seed.sealed")).expect("r1 sealed key");
    assert!(sealed.starts_with(b"SVRTPM01"), "r1's ML-KEM key is not a sealed blob");
    assert!(!lab.path("r1-state/ml-kem-768.seed").exists(), "r1 wrote its ML-KEM seed in clear");
    let plain = lab.path("r2-state/ml-kem-768.seed");
    let mode =
        std::os::unix::fs::PermissionsExt::mode(&fs::metadata(&plain).unwrap().permissions());
    assert_eq!(mode & 0o777, 0o600, "r2's ML-KEM seed file mode");
    assert_eq!(fs::metadata(&plain).unwrap().len(), 64);

    establish_flow(&lab, 40001);
    let before = lab.sessions_created("r1");
    assert!(before >= 1, "r1 created no session for the first flow");
    assert!(lab.alarms("r1").is_empty(), "alarms before revocation: {:?}", lab.alarms("r1"));

    revoke_r2(&lab);
    lab.wait(Duration::from_secs(15), "r1's alarm on r2's revoked certificate", |lab| {
        has_alarm(&lab.alarms("r1"), "Peer r2 certificate is invalid: revoked")
    });
    lab.wait(Duration::from_secs(15), "r2's alarm on its own revoked certificate", |lab| {
        has_alarm(&lab.alarms("r2"), "Certificate for r2 is revoked")
    });

    // fail-soft keeps the peering and the flow that was running...
    assert_eq!(lab.path_status("r1"), ["MKEY_EXCH_COMP", "MKEY_EXCH_COMP"]);
    let echoed = lab.echoes(40001, 5);
    assert!(echoed >= 4, "the established flow lost {} of 5 echoes under fail-soft", 5 - echoed);
    // ...but no new session starts with a revoked peer.
    let fresh = lab.echoes(40002, 3);
    assert_eq!(fresh, 0, "a new flow crossed to a revoked peer");
    assert_eq!(lab.sessions_created("r1"), before, "r1 created a session towards r2");

    // Withdrawing the revocation restores new sessions, after a new key exchange.
    unrevoke_all(&lab);
    lab.wait(Duration::from_secs(15), "r1's alarm cleared", |lab| {
        !has_alarm(&lab.alarms("r1"), "certificate is invalid")
    });
    lab.wait(Duration::from_secs(20), "new flows after the revocation is withdrawn", |lab| {
        lab.echoes(40003, 2) >= 1
    });
}

#[test]
fn netns_crl_revocation_fail_hard() {
    let mut lab = Lab::new("h");
    start(&mut lab, &Setup { behavior: "fail-hard", tpm_on_r1: false, self_signed_r1: false });
    establish_flow(&lab, 41001);
    let before = lab.sessions_created("r1");

    revoke_r2(&lab);
    lab.wait(Duration::from_secs(15), "r1's alarm on r2's revoked certificate", |lab| {
        has_alarm(&lab.alarms("r1"), "Peer r2 certificate is invalid: revoked")
    });

    // fail-hard removes the peering: no keys, the running flow stops too.
    lab.wait(Duration::from_secs(5), "r1's peering with r2 removed", |lab| {
        lab.path_status("r1").iter().all(|s| s == "CERT_EXCH")
    });
    let security = lab.json("r1", &["show", "peers", "security"]);
    for row in security.as_array().unwrap() {
        assert_eq!(row["cert_received"], false, "{row}");
        assert_eq!(row["status"], "up", "BFD keeps the path up: {row}");
    }
    assert_eq!(lab.echoes(41001, 3), 0, "the established flow still crosses under fail-hard");
    assert_eq!(lab.echoes(41002, 3), 0, "a new flow crossed to a revoked peer");
    assert_eq!(lab.sessions_created("r1"), before, "r1 created a session towards r2");
    assert!(lab.log("r1").contains("peering removed"), "r1 did not log the removal");

    // A valid certificate again (the revocation withdrawn) brings the peering back.
    unrevoke_all(&lab);
    lab.wait(Duration::from_secs(30), "peer keys again after the revocation is withdrawn", |lab| {
        lab.path_status("r1").iter().all(|s| s == "MKEY_EXCH_COMP")
    });
    lab.wait(Duration::from_secs(20), "new flows after the peering is restored", |lab| {
        lab.echoes(41003, 2) >= 1
    });
}

#[test]
fn netns_crl_fetch_failure_alarm() {
    let mut lab = Lab::new("f");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: false, self_signed_r1: false });

    // A CRL that cannot be fetched raises an alarm that stays until it is fetched again;
    // the peering is not affected.
    fs::rename(lab.path("www/ca.crl"), lab.path("www/ca.crl.away")).unwrap();
    lab.wait(Duration::from_secs(15), "r1's CRL alarm", |lab| {
        has_alarm(&lab.alarms("r1"), "cannot be retrieved")
    });
    assert_eq!(lab.path_status("r1"), ["MKEY_EXCH_COMP", "MKEY_EXCH_COMP"]);
    fs::rename(lab.path("www/ca.crl.away"), lab.path("www/ca.crl")).unwrap();
    lab.wait(Duration::from_secs(15), "r1's CRL alarm cleared", |lab| {
        !has_alarm(&lab.alarms("r1"), "cannot be retrieved")
    });
}

#[test]
fn netns_crl_list_changed_by_reload() {
    let mut lab = Lab::new("l");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: false, self_signed_r1: false });

    // A second CRL, in a file, revokes r2; the served one stays empty.
    let pki = lab.path("pki");
    let revoked = lab.path("revoked.crl");
    let output = Command::new("openssl")
        .current_dir(&pki)
        .args(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"])
        .args(["-revoke", "r2.pem"])
        .output()
        .expect("run openssl ca -revoke");
    check(&output, "openssl ca -revoke");
    let output = Command::new("openssl")
        .current_dir(&pki)
        .args(["ca", "-batch", "-config", "ca.cnf", "-cert", "ca.pem", "-keyfile", "ca.key"])
        .args(["-gencrl", "-out"])
        .arg(&revoked)
        .output()
        .expect("run openssl ca -gencrl");
    check(&output, "openssl ca -gencrl");

    // r1's configuration now names the file instead of the URL; SIGHUP applies it.
    let config = lab.path("svrd.cfg");
    let served = fs::read_to_string(&config).unwrap();
    let url = format!("http://127.0.0.1:{CRL_PORT}/ca.crl");
    let with_file = served.replace(&url, revoked.to_str().unwrap());
    assert_ne!(with_file, served, "the CRL location was not replaced");
    fs::write(&config, &with_file).unwrap();
    lab.signal("r1", "HUP");
    lab.wait(Duration::from_secs(15), "r1's alarm on r2's certificate from the new CRL", |lab| {
        has_alarm(&lab.alarms("r1"), "Peer r2 certificate is invalid: revoked")
    });
    assert!(lab.log("r1").contains("certificate revocation lists"), "reload not logged");

    // Back to the served, empty list: the file's revocations stop applying.
    fs::write(&config, &served).unwrap();
    lab.signal("r1", "HUP");
    lab.wait(Duration::from_secs(15), "r1's alarm cleared once the file is dropped", |lab| {
        !has_alarm(&lab.alarms("r1"), "certificate is invalid")
    });
}

#[test]
fn netns_self_signed_alarm_until_reload() {
    let mut lab = Lab::new("r");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: false, self_signed_r1: true });

    // r1 runs ESKM with a self-signed certificate: it raises the alarm, and r2, which trusts
    // the CA only, rejects r1's certificate, so no key exchange completes.
    lab.wait(Duration::from_secs(15), "r1's alarm on its self-signed certificate", |lab| {
        has_alarm(&lab.alarms("r1"), "has no valid signed certificate")
    });
    lab.wait(Duration::from_secs(15), "r2's alarm on r1's certificate", |lab| {
        has_alarm(&lab.alarms("r2"), "Peer r1 certificate is invalid")
    });
    assert!(
        !lab.path_status("r1").iter().any(|s| s == "MKEY_EXCH_COMP"),
        "keys exchanged with an untrusted certificate"
    );

    // The CA-signed certificate is installed and reloaded without a restart: the alarm
    // clears, and the key exchange starts again with the new certificate.
    let pki = lab.path("pki");
    fs::rename(pki.join("r1-signed.key"), pki.join("r1.key")).unwrap();
    fs::rename(pki.join("r1-signed.pem"), pki.join("r1.pem")).unwrap();
    let reply = lab.svrctl("r1", &["reload", "local", "certificates"]);
    assert!(reply.contains("router certificate replaced"), "{reply}");
    assert!(
        !has_alarm(&lab.alarms("r1"), "no valid signed certificate"),
        "r1 alarms after the reload: {:?}",
        lab.alarms("r1")
    );
    lab.wait(Duration::from_secs(40), "peer keys with r1's new certificate", |lab| {
        ["r1", "r2"].iter().all(|router| {
            let status = lab.path_status(router);
            status.len() == 2 && status.iter().all(|s| s == "MKEY_EXCH_COMP")
        })
    });
    lab.wait(Duration::from_secs(15), "r2's alarm on r1 cleared", |lab| {
        !has_alarm(&lab.alarms("r2"), "Peer r1 certificate is invalid")
    });
    assert!(lab.echoes(42001, 3) >= 2, "no traffic after the certificate was replaced");
}

#[test]
fn netns_reload_bad_ca_fails() {
    let mut lab = Lab::new("c");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: false, self_signed_r1: false });
    let ca = lab.path("pki").join("ca.pem");
    let good = fs::read(&ca).unwrap();

    // Each broken CA file makes the reload fail with the file's name, and svrctl exit
    // non-zero; the good file then reloads again.
    let cases: [(&str, Option<&[u8]>); 3] =
        [("garbage", Some(b"not a certificate at all\n")), ("empty", Some(b"")), ("missing", None)];
    for (case, contents) in cases {
        match contents {
            Some(bytes) => fs::write(&ca, bytes).unwrap(),
            None => fs::remove_file(&ca).unwrap(),
        }
        let output = lab.svrctl_output("r1", &["reload", "local", "certificates"]);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{case}: reload succeeded: {stderr}");
        assert!(stderr.contains(&ca.display().to_string()), "{case}: {stderr}");
        fs::write(&ca, &good).unwrap();
    }
    let output = lab.svrctl_output("r1", &["reload", "local", "certificates"]);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn netns_certificate_rollback_restores() {
    let mut lab = Lab::new("b");
    start(&mut lab, &Setup { behavior: "fail-soft", tpm_on_r1: false, self_signed_r1: false });
    establish_flow(&lab, 43001);

    // r2 moves to a certificate from another CA, which r1 does not trust.
    let pki = lab.path("pki");
    let rogue = lab.path("rogue");
    fs::create_dir_all(&rogue).unwrap();
    check(
        &bash(
            &lab.prefix,
            &format!(
                "pki_make_ca '{r}' 'rogue CA' 365; \
                 pki_make_router_cert '{r}' '{r}' r2 svrdemo-r2 365; \
                 cp '{p}/r2.pem' '{p}/r2-good.pem'; cp '{p}/r2.key' '{p}/r2-good.key'; \
                 cp '{r}/r2.pem' '{p}/r2.pem'; cp '{r}/r2.key' '{p}/r2.key'",
                r = rogue.display(),
                p = pki.display()
            ),
        ),
        "r2's certificate from another CA",
    );
    let reply = lab.svrctl("r2", &["reload", "local", "certificates"]);
    assert!(reply.contains("router certificate replaced"), "{reply}");
    lab.wait(Duration::from_secs(40), "r1's alarm on r2's certificate", |lab| {
        has_alarm(&lab.alarms("r1"), "Peer r2 certificate is invalid")
    });
    assert_eq!(lab.echoes(43002, 3), 0, "a new flow crossed to a peer with a bad certificate");

    // r2 goes back to the certificate r1 accepted before: r1 checks it again, clears the
    // alarm and lets new flows through.
    fs::copy(pki.join("r2-good.pem"), pki.join("r2.pem")).unwrap();
    fs::copy(pki.join("r2-good.key"), pki.join("r2.key")).unwrap();
    let reply = lab.svrctl("r2", &["reload", "local", "certificates"]);
    assert!(reply.contains("router certificate replaced"), "{reply}");
    lab.wait(Duration::from_secs(40), "r1's alarm on r2 cleared", |lab| {
        !has_alarm(&lab.alarms("r1"), "Peer r2 certificate is invalid")
    });
    lab.wait(Duration::from_secs(20), "new flows after r2's rollback", |lab| {
        lab.echoes(43003, 2) >= 1
    });
    assert!(lab.log("r1").contains("went back to its earlier certificate"), "{}", lab.log("r1"));
}
