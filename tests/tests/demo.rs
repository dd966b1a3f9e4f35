//! End-to-end tests of `scripts/demo` and of the shell libraries it is built from.
//! The certificates the libraries make must pass svrd's own peer validation, and the
//! configuration must load. The demo must exit 0 with svrd, and also with kernel
//! forwarding in place of svrd, which tests the demo's own traffic and capture checks.
#![allow(clippy::expect_used, reason = "test helpers fail the test when a tool cannot run")]

use std::fs;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::process::{Command, Output};
use std::time::{Duration, SystemTime};

use svr_control::alarm::own_certificate_expiry;
use svr_control::config::{
    self, CertificateSource, DhKeySize, KeyExchangeAlgorithm, MlKemKeySize, ServiceRouteTarget,
};
use svr_control::mgmt::{KeyStatus, PeerPathSecurity, render_key_status};
use svr_control::pki::{IdentityOrigin, OwnIdentity, RevocationSet, TrustStore, validate_peer};

/// Returns the repository root (the parent of this crate).
fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// A temporary directory removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        let path = std::env::temp_dir().join(format!("svr-tests-{name}-{}", std::process::id()));
        let _ = fs::remove_dir_all(&path);
        fs::create_dir_all(&path).expect("create the temporary directory");
        Self(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

/// Runs SCRIPT in bash with the demo's libraries sourced.
fn bash_with_libs(script: &str) -> Output {
    let lib = repo_root().join("scripts/lib");
    let prelude = format!(
        "set -euo pipefail; for f in topology demo-topology pki config traffic svrctl; do \
         source '{}'/$f.sh; done\n",
        lib.display()
    );
    Command::new("bash").arg("-c").arg(prelude + script).output().expect("run bash")
}

/// Runs SCRIPT in bash with the demo's libraries sourced and INPUT on standard input.
fn bash_with_input(script: &str, input: &str) -> Output {
    let lib = repo_root().join("scripts/lib");
    let mut child = Command::new("bash")
        .arg("-c")
        .arg(format!("set -euo pipefail; source '{}/svrctl.sh'\n{script}", lib.display()))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run bash");
    let mut stdin = child.stdin.take().expect("bash stdin");
    stdin.write_all(input.as_bytes()).expect("write bash stdin");
    drop(stdin);
    child.wait_with_output().expect("wait for bash")
}

fn assert_success(output: &Output, what: &str) {
    assert!(
        output.status.success(),
        "{what} failed with {}\nstdout:\n{}\nstderr:\n{}",
        output.status,
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

fn is_root() -> bool {
    let status = fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find(|line| line.starts_with("Uid:"))
        .and_then(|line| line.split_whitespace().nth(2))
        .is_some_and(|effective| effective == "0")
}

fn require_root(test: &str) {
    assert!(
        is_root(),
        "{test} creates network namespaces and needs root: run it as root on Debian 12 \
         with the packages of scripts/install-deps"
    );
}

/// Runs scripts/demo with ARGS and a prefix unique to this process and test. With
/// `stand_in`, the routers run that program in place of svrd.
fn run_demo(tag: &str, args: &[&str], stand_in: Option<&Path>) -> (Output, String) {
    let prefix = format!("svrt{}{tag}", std::process::id() % 10_000_000);
    let mut command = Command::new(repo_root().join("scripts/demo"));
    command.args(["--prefix", &prefix]).args(args);
    if let Some(program) = stand_in {
        command.env("SVRDEMO_SVRD", program);
    }
    let output = command.output().expect("run scripts/demo");
    let leftover = Command::new("ip").args(["netns", "list"]).output().expect("run ip netns list");
    let leftover = String::from_utf8_lossy(&leftover.stdout);
    assert!(
        !leftover.lines().any(|line| line.starts_with(&format!("{prefix}-"))),
        "scripts/demo left namespaces {prefix}-* behind:\n{leftover}"
    );
    let text = format!(
        "{}\n--- stderr ---\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output, text)
}

fn assert_line(text: &str, start: &str) {
    assert!(
        text.lines().any(|line| line.starts_with(start)),
        "no line starting with {start:?} in the demo output:\n{text}"
    );
}

/// Runs scripts/demo with `args`, which it must reject before it builds or creates anything,
/// and returns its standard error.
fn demo_rejects(args: &[&str]) -> String {
    let output = Command::new(repo_root().join("scripts/demo"))
        .args(args)
        .output()
        .expect("run scripts/demo");
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert_eq!(output.status.code(), Some(2), "{args:?}: {stderr}");
    stderr
}

#[test]
fn demo_seconds_leading_zero_accepted() {
    // 08 passes the --seconds check, so the invalid prefix is the first error.
    let stderr = demo_rejects(&["--seconds", "08", "--prefix", "1x"]);
    assert!(stderr.starts_with("scripts/demo: --prefix 1x: expected"), "{stderr}");
    assert!(!stderr.contains("value too great"), "{stderr}");
}

#[test]
fn demo_seconds_invalid_named() {
    for value in ["0x10", "-3", "1", "121", ""] {
        let stderr = demo_rejects(&["--seconds", value]);
        assert_eq!(
            stderr,
            format!("scripts/demo: --seconds {value}: expected a whole number of seconds, 2-120\n")
        );
    }
    let stderr = demo_rejects(&["--in-process", "--seconds", "05"]);
    assert_eq!(
        stderr,
        "scripts/demo: --seconds 05: expected a whole number of seconds, 6-120 with --in-process\n"
    );
}

#[test]
fn demo_option_without_value_named() {
    for option in ["--seconds", "--prefix"] {
        let stderr = demo_rejects(&[option]);
        assert!(stderr.starts_with(&format!("scripts/demo: {option} needs a value\n")), "{stderr}");
    }
}

#[test]
fn pki_router_cert_validates() {
    let dir = TempDir::new("demo-pki");
    let output = bash_with_libs(&format!(
        "pki_make_ca '{0}' 'svrdemo CA'; pki_make_router_cert '{0}' '{0}' r1 svrdemo-r1; \
         pki_verify_router_cert '{0}' '{0}' r1 svrdemo-r1",
        dir.0.display()
    ));
    assert_success(&output, "making the CA and r1's certificate");

    let ca = fs::read(dir.0.join("ca.pem")).expect("read ca.pem");
    let cert = fs::read(dir.0.join("r1.pem")).expect("read r1.pem");
    let key = fs::read(dir.0.join("r1.key")).expect("read r1.key");
    let identity =
        OwnIdentity::from_bytes(&cert, &key, IdentityOrigin::Installed).expect("load identity");
    assert_eq!(identity.common_name(), "svrdemo-r1");
    assert!(!identity.is_self_signed());

    let mut trust = TrustStore::new();
    assert_eq!(trust.add_pem_bundle(&ca).expect("add the CA"), 1);
    let peer = validate_peer(
        identity.chain(),
        "svrdemo-r1",
        SystemTime::now(),
        &trust,
        &RevocationSet::new(),
    )
    .expect("svrd accepts the router certificate");
    let signature = identity.sign(b"key exchange message").expect("sign");
    assert!(peer.verify(b"key exchange message", &signature).is_ok());
    // The demo's routers start with no alarm, so the certificate must be far from expiry.
    let expiry = own_certificate_expiry("r1", identity.validity().1, SystemTime::now());
    assert_eq!(expiry, None, "the demo's certificate raises an expiry alarm");
}

#[test]
fn pki_router_cert_wrong_name_rejected() {
    let dir = TempDir::new("demo-pki-name");
    let output = bash_with_libs(&format!(
        "pki_make_ca '{0}' 'svrdemo CA'; pki_make_router_cert '{0}' '{0}' r1 svrdemo-r1",
        dir.0.display()
    ));
    assert_success(&output, "making the CA and r1's certificate");
    let ca = fs::read(dir.0.join("ca.pem")).expect("read ca.pem");
    let cert = fs::read(dir.0.join("r1.pem")).expect("read r1.pem");
    let key = fs::read(dir.0.join("r1.key")).expect("read r1.key");
    let identity =
        OwnIdentity::from_bytes(&cert, &key, IdentityOrigin::Installed).expect("load identity");
    let mut trust = TrustStore::new();
    trust.add_pem_bundle(&ca).expect("add the CA");
    let result = validate_peer(
        identity.chain(),
        "svrdemo-r2",
        SystemTime::now(),
        &trust,
        &RevocationSet::new(),
    );
    assert!(result.is_err(), "a certificate for svrdemo-r1 must not validate as svrdemo-r2");
}

fn peer_path(interface: &str, security_status: &str) -> PeerPathSecurity {
    PeerPathSecurity {
        peer: "r2".into(),
        node: "r1-node".into(),
        network_interface: interface.into(),
        destination: "10.231.10.2".into(),
        status: "up".into(),
        hostname: None,
        path_mtu: Some(1500),
        security_status: security_status.into(),
        salt: 1,
        peer_salt: 2,
        key_index: 3,
        peer_key_index: 4,
        cert_received: true,
        cert_acknowledged: true,
        salt_received: true,
        salt_acknowledged: true,
        key_received: true,
        key_acknowledged: security_status == "MKEY_EXCH_COMP",
    }
}

#[test]
fn svrctl_peer_paths_counted() {
    let paths = [peer_path("wan-a-net", "MKEY_EXCH_COMP"), peer_path("wan-b-net", "KEY_SENT")];
    let json = serde_json::to_string_pretty(&paths).expect("serialize paths");
    let output = bash_with_input("svrctl_peer_paths_complete", &json);
    assert_success(&output, "svrctl_peer_paths_complete");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "1 2\n");
}

#[test]
fn svrctl_peer_paths_bad_json() {
    let output = bash_with_input("svrctl_peer_paths_complete", "svrctl: connection refused");
    assert!(!output.status.success(), "unreadable JSON must fail");
}

#[test]
fn svrctl_rekey_index_read() {
    let status = KeyStatus {
        node: "r1-node.r1".into(),
        key_manager_state: "Inactive".into(),
        rekey_index: 7,
        key_change_count: 8,
        config_key_change_count: 9,
        metadata_rekey_index: 61,
        metadata_last_rekey_secs: 10,
        metadata_next_rekey_secs: None,
        metadata_key_manager_state: "Active Leader".into(),
    };
    let text = render_key_status(&[status], Duration::from_millis(5));
    let output = bash_with_input("svrctl_metadata_rekey_index", &text);
    assert_success(&output, "svrctl_metadata_rekey_index");
    assert_eq!(String::from_utf8_lossy(&output.stdout), "61\n");
}

#[test]
fn svrctl_rekey_index_missing() {
    let output = bash_with_input("svrctl_metadata_rekey_index", "Rekey Index: 7\n");
    assert!(!output.status.success(), "text without a metadata rekey index must fail");
}

#[test]
fn svrctl_drop_counters_listed() {
    let json = r#"{"dataplane": {"rx": 10, "drops": [{"reason": "unknown-key", "count": 0},
        {"reason": "replay", "count": 3}]}, "control": {"bfd_dropped": 2, "up": true}}"#;
    let output = bash_with_input("svrctl_drop_counters", json);
    assert_success(&output, "svrctl_drop_counters");
    assert_eq!(
        String::from_utf8_lossy(&output.stdout),
        "dataplane.drops.unknown-key.count 0\ndataplane.drops.replay.count 3\n\
         control.bfd_dropped 2\n"
    );
}

#[test]
fn config_demo_loads() {
    let dir = TempDir::new("demo-config");
    let file = dir.0.join("authority.cfg");
    // svrd --check reads the certificate and CA files the configuration names, so the
    // demo's PKI is made beside the file, as the demo makes it.
    let pki = dir.0.join("pki");
    std::fs::create_dir(&pki).expect("create the PKI folder");
    let output = bash_with_libs(&format!(
        "pki_make_ca '{pki}' 'svrdemo CA' && \
         pki_make_router_cert '{pki}' '{pki}' r1 svrdemo-r1 && \
         pki_make_router_cert '{pki}' '{pki}' r2 svrdemo-r2 && \
         config_write_two_router '{file}' '{pki}'",
        pki = pki.display(),
        file = file.display()
    ));
    assert_success(&output, "writing the PKI and the configuration");

    let report = config::check::check_file(&file, Some("r1"));
    assert_eq!(report.exit_code(), 0, "svrd --check rejects the demo file:\n{}", report.render());
    let config = config::load(&file).expect("load the demo configuration");
    assert!(config.warnings().is_empty(), "warnings: {:?}", config.warnings());

    let authority = &config.authority;
    assert!(authority.enhanced_security_key_management);
    assert_eq!(
        authority.security_key_management.key_exchange_algorithm,
        KeyExchangeAlgorithm::DiffieHellmanMlKem {
            dh: DhKeySize::Bits2048,
            ml_kem: MlKemKeySize::MlKem768
        }
    );
    let client_files: Vec<_> = authority
        .client_certificates
        .iter()
        .map(|cert| (cert.name.as_str(), cert.source.clone()))
        .collect();
    assert_eq!(
        client_files,
        [
            ("r1", CertificateSource::File(pki.join("r1.pem").display().to_string())),
            ("r2", CertificateSource::File(pki.join("r2.pem").display().to_string())),
        ]
    );

    for (name, peer_name, remote_service) in [("r1", "r2", "to-host5"), ("r2", "r1", "to-host1")] {
        let router = config.router(name).expect("router defined");
        assert_eq!(router.peering_common_name.as_deref(), Some(format!("svrdemo-{name}").as_str()));
        assert_eq!(router.peers.len(), 1, "{name} peers: {:?}", router.peers);
        assert_eq!(router.peers[0].name, peer_name);

        let remote = router
            .service_routes
            .iter()
            .find(|route| route.service_name.name == remote_service)
            .expect("service-route to the remote LAN");
        assert!(
            matches!(&remote.target, ServiceRouteTarget::Peer(peer) if peer.name == peer_name),
            "{name} sends {remote_service} to {:?}",
            remote.target
        );

        let node = &router.nodes[0];
        let names: Vec<_> =
            node.device_interfaces.iter().map(|d| d.interface_name.as_deref()).collect();
        assert_eq!(names, [Some("lan"), Some("wan-a"), Some("wan-b")]);
        for wan in &node.device_interfaces[1..] {
            let adjacencies = &wan.network_interfaces[0].adjacencies;
            assert_eq!(adjacencies.len(), 1, "{name} {}: {adjacencies:?}", wan.name);
            assert_eq!(adjacencies[0].peer.name, peer_name);
            assert_eq!(adjacencies[0].neighborhood.as_deref(), Some(wan.name.as_str()));
        }
    }
}

#[test]
fn netns_demo_kernel_forwarding() {
    require_root("netns_demo_kernel_forwarding");
    let (output, text) = run_demo("k", &["--seconds", "3", "--kernel-forwarding"], None);
    assert!(output.status.success(), "scripts/demo --kernel-forwarding failed:\n{text}");
    assert_line(&text, "PASS ping: 5/5 replies");
    assert_line(&text, "PASS iperf3: receiver ");
    assert_line(&text, "PASS http: 4 MiB download");
    assert_line(&text, "PASS capture sees plaintext:");
    assert_line(&text, "PASS capture has no SVR: 0 SVR packets");
    assert_line(&text, "PASS ping6: 3/3 replies");
    assert_line(&text, "demo: all 6 checks passed");
}

#[test]
fn netns_demo_leaky_router_fails() {
    require_root("netns_demo_leaky_router_fails");
    let leaky = repo_root().join("tests/fixtures/leaky-svrd.py");
    let (output, text) = run_demo("l", &["--seconds", "3"], Some(&leaky));
    assert_eq!(output.status.code(), Some(1), "a router that forwards in clear must fail:\n{text}");
    assert_line(&text, "PASS peer keys: MKEY_EXCH_COMP on 2/2 paths of r1 and 2/2 of r2");
    assert_line(&text, "PASS ping: 5/5 replies");
    assert_line(&text, "PASS ping6: 3/3 replies");
    assert_line(&text, "PASS iperf3: receiver ");
    assert_line(&text, "PASS metadata key rotation: r1 metadata rekey index 1 -> 2");
    assert_line(&text, "PASS http: 4 MiB download");
    assert_line(&text, "FAIL no plaintext on the WAN:");
    assert_line(&text, "FAIL SVR packets on the WAN: 0 UDP packets");
    assert_line(&text, "PASS key drop counters:");
    // The stand-in reports no per-path state, so the path-cut check cannot pass for it.
    assert_line(&text, "FAIL path cut:");
    assert_line(
        &text,
        "demo: FAILED 3 of 10 checks: no plaintext on the WAN, SVR packets on the WAN, path cut",
    );
}

#[test]
fn netns_demo_two_routers() {
    require_root("netns_demo_two_routers");
    let (output, text) = run_demo("d", &["--seconds", "5"], None);
    assert!(output.status.success(), "scripts/demo failed:\n{text}");
    assert_line(&text, "PASS peer keys: MKEY_EXCH_COMP on 2/2 paths of r1 and 2/2 of r2");
    assert!(
        text.matches("MKEY_EXCH_COMP").count() >= 4,
        "show peers security printed fewer than 4 completed paths:\n{text}"
    );
    assert_line(&text, "PASS ping: 5/5 replies");
    assert_line(&text, "PASS iperf3: receiver ");
    assert_line(&text, "PASS metadata key rotation:");
    assert_line(&text, "PASS http: 4 MiB download");
    assert_line(&text, "PASS no plaintext on the WAN:");
    assert_line(&text, "PASS SVR packets on the WAN:");
    assert_line(&text, "PASS key drop counters:");
    assert_line(&text, "PASS ping6: 3/3 replies");
    assert_line(&text, "PASS path cut:");
    assert_line(&text, "demo: all 10 checks passed");
}

#[test]
fn netns_topology_hub_and_spokes() {
    require_root("netns_topology_hub_and_spokes");
    let prefix = format!("svrh{}", std::process::id() % 10_000_000);
    let output = bash_with_libs(&format!(
        "p={prefix}; trap 'topo_cleanup $p' EXIT
         topo_router_add $p-spoke1; topo_router_add $p-spoke2
         topo_router_with_links $p-hub wan-1=$p-spoke1:wan wan-2=$p-spoke2:wan
         topo_addr $p-hub wan-1 10.233.1.1/24; topo_addr $p-spoke1 wan 10.233.1.2/24
         topo_addr $p-hub wan-2 10.233.2.1/24; topo_addr $p-spoke2 wan 10.233.2.2/24
         ip netns exec $p-spoke1 ping -c 1 -W 2 10.233.1.1 >/dev/null
         ip netns exec $p-spoke2 ping -c 1 -W 2 10.233.2.1 >/dev/null
         test \"$(ip netns exec $p-hub sysctl -n net.ipv4.ip_forward)\" = 0
         test \"$(topo_list $p | wc -l)\" = 3
         ip netns exec $p-hub sleep 60 & sleeper=$!
         sleep 0.2
         topo_cleanup $p
         test -z \"$(topo_list $p)\"
         ! kill -0 $sleeper 2>/dev/null
         ! topo_router_with_links $p-bad wan-1 2>/dev/null
         topo_cleanup $p
         test -z \"$(topo_list $p)\""
    ));
    assert_success(&output, "hub-and-spoke topology up, ping and cleanup");
    let list = Command::new("ip").args(["netns", "list"]).output().expect("run ip netns list");
    let list = String::from_utf8_lossy(&list.stdout);
    assert!(!list.contains(&format!("{prefix}-")), "namespaces {prefix}-* left behind:\n{list}");
}
