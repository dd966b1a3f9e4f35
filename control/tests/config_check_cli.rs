//! `svrd --check`, `--help`, `--version` and `--config` through the built binary.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    reason = "test helpers fail the test on bad fixtures"
)]

use std::path::PathBuf;
use std::process::{Command, Output};

fn svrd(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_svrd")).args(args).output().expect("svrd runs")
}

fn sample(name: &str) -> String {
    format!("{}/tests/configs/{name}", env!("CARGO_MANIFEST_DIR"))
}

/// A file under the test's own temporary directory, removed on drop.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, text: &str) -> TempFile {
        let dir = std::env::temp_dir().join(format!("svrd-config-check-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        TempFile(path)
    }

    fn path(&self) -> &str {
        self.0.to_str().unwrap()
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

#[test]
fn check_valid_sample_exits_zero() {
    let path = sample("flat.cfg");
    let out = svrd(&["--check", &path]);
    assert_eq!(out.status.code(), Some(0));
    assert_eq!(stdout(&out), format!("{path}: valid: 1 router, 0 warnings\n"));
}

/// The ESKM sample parses, but names certificate files that are not on this host, a CA
/// given as placeholder text, and a DPDK router, which the daemon would reject at start.
#[test]
fn check_sample_plan_errors() {
    let path = sample("eskm-two-router.cfg");
    let out = svrd(&["--check", &path]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    // A build without DPDK cannot open r2's three DPDK ports. The daemon checks the ports
    // before the certificates, so these errors come first for r2.
    let dpdk_errors = if cfg!(feature = "dpdk") { 0 } else { 3 };
    assert_eq!(lines.len(), 7 + dpdk_errors, "{text}");
    for line in &lines[3..3 + dpdk_errors] {
        assert!(line.contains("router r2: device-interface "), "{text}");
        assert!(line.contains("this svrd was built without DPDK"), "{text}");
    }
    // Both routers, r2 with its DPDK ports included, reach the certificate checks.
    let r2 = 3 + dpdk_errors;
    for (router, lines) in [("r1", &lines[0..3]), ("r2", &lines[r2..r2 + 3])] {
        assert!(
            lines[0].starts_with(&format!(
                "{path}: router {router}: client-certificate file svr-peering: cannot be read: "
            )),
            "{text}"
        );
        assert_eq!(
            lines[1],
            format!(
                "{path}: router {router}: client-certificate file svr-peering: its private key \
                 svr-peering.key is missing"
            )
        );
        assert!(
            lines[2].starts_with(&format!(
                "{path}: router {router}: trusted-ca-certificate lab-root (content): malformed "
            )),
            "{text}"
        );
    }
    assert_eq!(
        lines[6 + dpdk_errors],
        format!("{path}: invalid: {} errors, 0 warnings", 6 + dpdk_errors)
    );
}

#[test]
fn check_warnings_exit_zero() {
    let path = sample("hub-and-spoke.cfg");
    let out = svrd(&["--check", &path]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 2, "{text}");
    assert!(lines[0].starts_with(&format!("{path}: line 6, column 1: warning: ")), "{text}");
    assert_eq!(lines[1], format!("{path}: valid: 3 routers, 1 warning"));
}

#[test]
fn check_errors_exit_one() {
    let file = TempFile::new(
        "bad.cfg",
        "config\nauthority\nsecurity-key-management\n    peer-key-retransmit-interval 2\n\
         exit\nroutr r1\n",
    );
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let p = file.path();
    assert_eq!(
        stdout(&out),
        format!(
            "{p}: line 4, column 5: peer-key-retransmit-interval 2: must be 5-3600 seconds\n\
             {p}: line 6, column 1: unknown keyword routr in authority: did you mean router?\n\
             {p}: invalid: 2 errors, 0 warnings\n"
        )
    );
}

#[test]
fn check_missing_file_exits_one() {
    let out = svrd(&["--check", "/nonexistent/svrd-test.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.starts_with("/nonexistent/svrd-test.cfg: cannot read the file: "), "{text}");
    assert!(text.ends_with("/nonexistent/svrd-test.cfg: invalid: 1 error, 0 warnings\n"), "{text}");
}

#[test]
fn every_sample_checks_clean() {
    let dir = format!("{}/tests/configs", env!("CARGO_MANIFEST_DIR"));
    let mut count = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        // Its plan errors are checked on their own above.
        if path.ends_with("eskm-two-router.cfg") {
            continue;
        }
        let out = svrd(&["--check", path.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(0), "{}: {}", path.display(), stdout(&out));
        count += 1;
    }
    assert!(count >= 3);
}

#[test]
fn missing_interface_stops_start_up() {
    let dir = std::env::temp_dir().join(format!("svrd-cli-{}", std::process::id()));
    let path = sample("flat.cfg");
    let socket = dir.join("svrd.sock");
    let out = svrd(&[
        "--config",
        &path,
        "--router",
        "edge",
        "--state-dir",
        dir.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    // The sample names Linux interfaces that do not exist here, so start-up stops at the
    // first port and says which.
    assert!(
        stderr.contains("svrd: dataplane: eth-lan: interface \"eth-lan\" not found"),
        "{stderr}"
    );
    // The fatal error is printed once, and the log has no colour when it is not a terminal.
    assert_eq!(stderr.matches("interface \"eth-lan\" not found").count(), 1, "{stderr}");
    assert!(!stderr.contains('\u{1b}'), "{stderr}");
}

/// Returns a router of one DPDK port under `driver`, with `binding` lines on the port.
fn dpdk_router(driver: &str, binding: &str) -> String {
    format!(
        "config\nauthority\nrouter r1\nnode n1\ndataplane\ndriver {driver}\nexit\n\
         device-interface wan\nvdev net_null0\n{binding}\nnetwork-interface wan-net\n\
         address 10.9.0.1\nprefix-length 24\n"
    )
}

#[test]
fn check_dpdk_port_without_dpdk_build() {
    let file = TempFile::new("dpdk-driver.cfg", &dpdk_router("dpdk", ""));
    let out = svrd(&["--check", file.path()]);
    let text = stdout(&out);
    let error = "router r1: device-interface wan (net_null0): this svrd was built without \
                 DPDK; rebuild with `--features dpdk`";
    if cfg!(feature = "dpdk") {
        assert_eq!(out.status.code(), Some(0), "{text}");
        assert!(!text.contains(error), "{text}");
        return;
    }
    // svrd does not start with the port, as dpdk_port_stops_start_without_dpdk_build shows.
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains(error), "{text}");
    assert!(text.ends_with(": invalid: 1 error, 0 warnings\n"), "{text}");
}

#[test]
fn check_auto_port_falls_back_without_dpdk_build() {
    let file = TempFile::new("dpdk-auto.cfg", &dpdk_router("auto", "interface-name wan0"));
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    let fallback = "until then svrd opens it with AF_XDP on wan0";
    assert_eq!(text.contains(fallback), !cfg!(feature = "dpdk"), "{text}");
}

/// Without DPDK, start-up stops on the DPDK port before anything is set up.
#[cfg(not(feature = "dpdk"))]
#[test]
fn dpdk_port_stops_start_without_dpdk_build() {
    let out = start("dpdk-start.cfg", &dpdk_router("dpdk", ""));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(
            "svrd: dataplane: device-interface wan (net_null0): this svrd was built without \
             DPDK; rebuild with `--features dpdk`"
        ),
        "{stderr}"
    );
    // The check comes before the certificate is loaded.
    assert!(!stderr.contains("certificate loaded"), "{stderr}");
}

/// Runs svrd on `config` with a state directory and socket of its own; returns its output.
fn start(name: &str, config: &str) -> Output {
    let file = TempFile::new(name, config);
    let dir = std::env::temp_dir().join(format!("svrd-cli-{name}-{}", std::process::id()));
    let socket = dir.join("svrd.sock");
    let out = svrd(&[
        "--config",
        file.path(),
        "--state-dir",
        dir.to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
    ]);
    let _ = std::fs::remove_dir_all(&dir);
    out
}

/// A virtual device on a missing interface stops start-up with the interface's name, before
/// EAL starts.
#[cfg(feature = "dpdk")]
#[test]
fn vdev_missing_interface_stops_start() {
    let config = dpdk_router("dpdk", "").replace("net_null0", "net_af_packet0,iface=svrd-none0");
    let out = start("vdev-iface.cfg", &config);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("interface svrd-none0 not found"), "{stderr}");
    assert!(!stderr.contains("EAL:"), "EAL started before the check: {stderr}");
}

/// On a host without free hugepages, EAL fails and the error explains how to fix it.
#[cfg(feature = "dpdk")]
#[test]
fn eal_without_hugepages_explained() {
    let free: u64 = std::fs::read_dir("/sys/kernel/mm/hugepages")
        .map(|sizes| {
            sizes
                .filter_map(Result::ok)
                .filter_map(|size| std::fs::read_to_string(size.path().join("free_hugepages")).ok())
                .filter_map(|text| text.trim().parse::<u64>().ok())
                .sum()
        })
        .unwrap_or(0);
    if free > 0 {
        eprintln!("skipped: this host has {free} free hugepages");
        return;
    }
    let out = start("no-huge.cfg", &dpdk_router("dpdk", ""));
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("this host has no free hugepages"), "{stderr}");
    assert!(stderr.contains("eal-argument --no-huge"), "{stderr}");
}

/// A socket another process listens on stops start-up before any port is opened: the
/// sample's missing interface would otherwise be the error.
#[test]
fn socket_in_use_stops_start_before_ports() {
    let dir = std::env::temp_dir().join(format!("svrd-cli-busy-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let socket = dir.join("svrd.sock");
    let listener = std::os::unix::net::UnixListener::bind(&socket).unwrap();
    let path = sample("flat.cfg");
    let out = svrd(&[
        "--config",
        &path,
        "--router",
        "edge",
        "--state-dir",
        dir.join("state").to_str().unwrap(),
        "--socket",
        socket.to_str().unwrap(),
    ]);
    drop(listener);
    let made_state = dir.join("state").exists();
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "svrd: management socket: another svrd is listening on {}",
            socket.display()
        )),
        "{stderr}"
    );
    assert!(!stderr.contains("eth-lan"), "a port was opened first: {stderr}");
    assert!(!made_state, "the state directory was made before the socket was checked");
}

#[test]
fn config_errors_printed_at_start() {
    let file = TempFile::new("start-invalid.cfg", "config\nauthority\nname\nfoo\n");
    let out = svrd(&["--config", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("line 3, column 1: name: missing value"), "{stderr}");
}

#[test]
fn config_file_missing_is_reported() {
    let out = svrd(&["--config", "/nonexistent/authority.cfg"]);
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("/nonexistent/authority.cfg"), "{stderr}");
}

#[test]
fn help_and_version() {
    let help = svrd(&["--help"]);
    assert_eq!(help.status.code(), Some(0));
    let text = stdout(&help);
    for option in ["--check <FILE>", "--config <FILE>", "--router <NAME>", "--version"] {
        assert!(text.contains(option), "{option} missing from:\n{text}");
    }
    let version = svrd(&["--version"]);
    assert_eq!(version.status.code(), Some(0));
    assert_eq!(stdout(&version), format!("svrd {}\n", env!("CARGO_PKG_VERSION")));
}

#[test]
fn check_and_config_conflict() {
    let out = svrd(&["--check", "a", "--config", "b"]);
    assert_eq!(out.status.code(), Some(2));
}

#[test]
fn load_reports_read_and_parse_failures() {
    use svr_control::config::{LoadError, load};
    let valid = load(std::path::Path::new(&sample("flat.cfg"))).unwrap();
    assert_eq!(valid.authority.routers.len(), 1);

    let missing = load(std::path::Path::new("/nonexistent/svrd.cfg")).unwrap_err();
    assert!(matches!(missing, LoadError::Read { .. }));
    assert!(missing.to_string().starts_with("cannot read /nonexistent/svrd.cfg: "), "{missing}");

    let file = TempFile::new("invalid.cfg", "config\nauthority\nname\nfoo\n");
    let invalid = load(std::path::Path::new(file.path())).unwrap_err();
    assert_eq!(
        invalid.to_string(),
        format!("{} has 2 configuration errors: run svrd --check on it", file.path())
    );
    let source = std::error::Error::source(&invalid).unwrap();
    assert!(source.to_string().starts_with("line 3, column 1: name: missing value"));
}

#[test]
fn check_with_router() {
    let path = sample("eskm-two-router.cfg");
    let found = svrd(&["--check", &sample("hub-and-spoke.cfg"), "--router", "spoke1"]);
    assert_eq!(found.status.code(), Some(0), "{}", stdout(&found));

    let missing = svrd(&["--check", &path, "--router", "r9"]);
    assert_eq!(missing.status.code(), Some(1));
    assert_eq!(
        stdout(&missing),
        format!(
            "{path}: router r9 not found in the authority (routers: r1, r2)\n\
             {path}: invalid: 1 error, 0 warnings\n"
        )
    );
}

#[test]
fn read_file_stops_at_limit() {
    use svr_control::config::{MAX_FILE_LEN, read_file};
    let error = read_file(std::path::Path::new("/dev/zero")).unwrap_err();
    let message = error.to_string();
    assert!(message.contains(&MAX_FILE_LEN.to_string()), "{message}");
    assert!(message.contains("64 MiB"), "{message}");
}

#[test]
fn read_file_names_invalid_utf8_position() {
    let file = TempFile::new("latin1.cfg", "");
    std::fs::write(file.path(), b"config\n  authority \"caf\xe9\"\n").unwrap();
    let error = svr_control::config::read_file(std::path::Path::new(file.path())).unwrap_err();
    assert_eq!(error.to_string(), "invalid UTF-8 at line 2, column 17");

    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("line 2, column 17"), "{}", stdout(&out));
}

#[test]
fn read_file_counts_cr_only_lines() {
    let file = TempFile::new("latin1-cr.cfg", "");
    std::fs::write(file.path(), b"config\r  authority \"caf\xe9\"\r").unwrap();
    let error = svr_control::config::read_file(std::path::Path::new(file.path())).unwrap_err();
    assert_eq!(error.to_string(), "invalid UTF-8 at line 2, column 17");
}

#[test]
fn check_reads_cr_only_lines() {
    let text = "config\rauthority\rrouter r1\rlocation a\rlocation b\rexit\rexit\rexit\r";
    let file = TempFile::new("cr-only.cfg", text);
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let output = stdout(&out);
    assert!(output.contains("line 5, column 1: location b: set twice"), "{output}");
    assert!(output.contains("invalid: 1 error"), "{output}");
}

#[test]
fn read_file_skips_byte_order_mark() {
    let file = TempFile::new("bom.cfg", "\u{feff}config\nexit\n");
    let text = svr_control::config::read_file(std::path::Path::new(file.path())).unwrap();
    assert_eq!(text, "config\nexit\n");
}

#[test]
fn svrctl_version_names_itself() {
    let out = Command::new(env!("CARGO_BIN_EXE_svrctl")).arg("--version").output().unwrap();
    assert_eq!(stdout(&out), format!("svrctl {}\n", env!("CARGO_PKG_VERSION")));
}

/// Returns a two-router authority with `r1_wan` added to r1's wan network-interface block
/// and `r1_devices` added to r1's node.
fn two_routers(r1_wan: &str, r1_devices: &str) -> String {
    format!(
        "config\nauthority\nenhanced-security-key-management true\n\
         router r1\n    peer r2\n        router-name r2\n    exit\n    node n1\n\
         \x20       device-interface wan\n            interface-name wan0\n\
         \x20           network-interface wan-net\n{r1_wan}\
         \x20               adjacency 10.209.0.2 r2\n                exit\n\
         \x20           exit\n        exit\n{r1_devices}    exit\nexit\n\
         router r2\n    peer r1\n        router-name r1\n    exit\n    node n2\n\
         \x20       device-interface wan\n            interface-name wan0\n\
         \x20           network-interface wan-net\n\
         \x20               address 10.209.0.2\n                    prefix-length 24\n                exit\n\
         \x20               adjacency 10.209.0.1 r1\n                exit\n\
         \x20           exit\n        exit\n    exit\nexit\n"
    )
}

const R1_ADDRESS: &str = "                address 10.209.0.1\n                    prefix-length 24\n                exit\n";

#[test]
fn check_two_routers_valid() {
    let file = TempFile::new("two.cfg", &two_routers(R1_ADDRESS, ""));
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

#[test]
fn check_classic_without_policy() {
    let text = two_routers(R1_ADDRESS, "")
        .replace("enhanced-security-key-management true", "enhanced-security-key-management false");
    let file = TempFile::new("classic.cfg", &text);
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "router r1: line 11, column 13: network-interface wan-net has no \
             inter-router-security policy"
        ),
        "{text}"
    );
}

#[test]
fn check_adjacency_without_address() {
    let file = TempFile::new("noaddr.cfg", &two_routers("", ""));
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("router r1: line "), "{text}");
    assert!(
        text.contains("network-interface wan-net has an adjacency to r2 but no address"),
        "{text}"
    );
}

#[test]
fn check_duplicate_interface_name() {
    let second = "        device-interface wan2\n            interface-name wan0\n        exit\n";
    let file = TempFile::new("dup.cfg", &two_routers(R1_ADDRESS, second));
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(
            "interface-name wan0: already bound by device-interface wan at line 10; expected a \
             device that no other device-interface of the node uses"
        ),
        "{text}"
    );
}

/// The maximum set at the router and the hold-down time at the adjacency: each block is
/// valid alone, and only the merged settings are inconsistent.
#[test]
fn check_hold_down_above_maximum() {
    let text = two_routers(R1_ADDRESS, "")
        .replacen(
            "router r1\n",
            "router r1\n    bfd\n        maximum-hold-down-time 100\n    exit\n",
            1,
        )
        .replacen(
            "adjacency 10.209.0.2 r2\n",
            "adjacency 10.209.0.2 r2\n                    bfd\n                        \
             hold-down-time 200\n                    exit\n",
            1,
        );
    let file = TempFile::new("hold.cfg", &text);
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("maximum-hold-down-time 100 must be above hold-down-time 200"), "{text}");
}

#[test]
fn check_garbage_ca_file() {
    let ca = TempFile::new("garbage-ca.pem", "not a certificate\n");
    let text = two_routers(R1_ADDRESS, "").replacen(
        "config\nauthority\n",
        &format!(
            "config\nauthority\ntrusted-ca-certificate lab\n    name lab\n    file {}\nexit\n",
            ca.path()
        ),
        1,
    );
    let file = TempFile::new("ca.cfg", &text);
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains(&format!(
            "trusted-ca-certificate lab (file {}): malformed CA certificate file: not a DER or \
             PEM certificate",
            ca.path()
        )),
        "{text}"
    );
}

#[test]
fn check_missing_certificate_file() {
    let text = two_routers(R1_ADDRESS, "").replacen(
        "config\nauthority\n",
        "config\nauthority\nclient-certificate r1\n    name r1\n    file /nonexistent/r1.pem\nexit\n",
        1,
    );
    let file = TempFile::new("cert.cfg", &text);
    let out = svrd(&["--check", file.path(), "--router", "r1"]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(
        text.contains("router r1: client-certificate file /nonexistent/r1.pem: cannot be read"),
        "{text}"
    );
}

#[test]
fn check_no_router_is_error() {
    let file = TempFile::new("empty.cfg", "config\nauthority\nname lab\nexit\n");
    let out = svrd(&["--check", file.path()]);
    assert_eq!(out.status.code(), Some(1));
    let text = stdout(&out);
    assert!(text.contains("the authority defines no router"), "{text}");

    let named = svrd(&["--check", file.path(), "--router", "r1"]);
    let text = stdout(&named);
    assert!(text.contains("router r1 not found: the authority defines no router"), "{text}");
    assert!(!text.contains("(routers: )"), "{text}");
}

#[test]
fn check_router_without_node_names_line() {
    let file =
        TempFile::new("no-node.cfg", "config\nauthority\nname lab\nrouter r1\nexit\nexit\nexit\n");
    let out = svrd(&["--check", file.path(), "--router", "r1"]);
    assert_eq!(out.status.code(), Some(1));
    let output = stdout(&out);
    assert!(output.contains("line 4: router r1 has no node to run"), "{output}");
}

/// Checks that a CRL location svrd rejects at start-up is an error of the check too.
#[test]
fn check_rejects_unusable_crl_location() {
    let flat = std::fs::read_to_string(sample("flat.cfg")).unwrap();
    for location in ["https://crl.example/ca.crl", "relative/ca.crl"] {
        let text = format!("{flat}config authority certificate-revocation-list {location}\n");
        let file = TempFile::new("crl-location.cfg", &text);
        let out = svrd(&["--check", file.path()]);
        let text = stdout(&out);
        assert_eq!(out.status.code(), Some(1), "{location}: {text}");
        assert!(text.contains(location), "{location}: {text}");
    }
}
