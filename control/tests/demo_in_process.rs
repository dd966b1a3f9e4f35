//! Runs `svrd-demo`, the two-router demo in one process, and reads its check lines. A
//! clean run must pass every check. Runs with a fault must fail the checks that the fault
//! breaks and pass the others, which shows that those checks can fail.
#![allow(clippy::expect_used, reason = "a test fails when the demo cannot run")]

use std::fs;
use std::path::PathBuf;
use std::process::Command;

/// Every check of a run, in the order the demo prints them.
const CHECKS: [&str; 9] = [
    "peer keys",
    "traffic IPv4",
    "traffic IPv6",
    "metadata key rotation",
    "no loss to the rotation",
    "no plaintext on the WAN",
    "SVR packets on the WAN",
    "path cut",
    "key drop counters",
];

/// The output of one run.
struct Run {
    success: bool,
    stdout: String,
    /// stdout and stderr, for failure messages.
    text: String,
}

impl Run {
    fn outcome(&self, check: &str) -> Option<&'static str> {
        for line in self.stdout.lines() {
            if line.starts_with(&format!("PASS {check}:")) {
                return Some("PASS");
            }
            if line.starts_with(&format!("FAIL {check}:")) {
                return Some("FAIL");
            }
        }
        None
    }

    fn assert_outcome(&self, check: &str, expected: &str) {
        assert_eq!(
            self.outcome(check),
            Some(expected),
            "check '{check}' expected {expected}\n{}",
            self.text
        );
    }
}

/// Runs svrd-demo with `args`, with a temporary directory of its own, and checks that the
/// demo removed what it put there.
fn run_demo(tag: &str, args: &[&str]) -> Run {
    let tmp = std::env::temp_dir().join(format!("svrd-demo-test-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create the test's temporary directory");
    let output = Command::new(env!("CARGO_BIN_EXE_svrd-demo"))
        .args(["--seconds", "6", "--rate", "200"])
        .args(args)
        .env("TMPDIR", &tmp)
        .output()
        .expect("run svrd-demo");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = format!("{stdout}\n--- stderr ---\n{}", String::from_utf8_lossy(&output.stderr));
    let left: Vec<PathBuf> = fs::read_dir(&tmp)
        .expect("read the test's temporary directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect();
    let _ = fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "svrd-demo left {left:?} behind\n{text}");
    Run { success: output.status.success(), stdout, text }
}

#[test]
fn demo_clean_run_passes() {
    let run = run_demo("clean", &[]);
    for check in CHECKS {
        run.assert_outcome(check, "PASS");
    }
    assert!(!run.stdout.contains("\nFAIL "), "a check failed\n{}", run.text);
    assert!(
        run.stdout.contains(&format!("demo: all {} checks passed", CHECKS.len())),
        "no summary line\n{}",
        run.text
    );
    assert!(run.success, "svrd-demo exited with failure\n{}", run.text);
    assert!(
        run.stdout.matches("MKEY_EXCH_COMP").count() >= 4,
        "show peers security of both routers lists fewer than four complete paths\n{}",
        run.text
    );
}

#[test]
fn demo_unencrypted_payload_fails() {
    let run = run_demo("plain", &["--fault", "unencrypted-payload"]);
    run.assert_outcome("no plaintext on the WAN", "FAIL");
    for check in CHECKS.iter().filter(|&&check| check != "no plaintext on the WAN") {
        run.assert_outcome(check, "PASS");
    }
    assert!(run.stdout.contains("demo: FAILED 1 of 9 checks"), "summary\n{}", run.text);
    assert!(!run.success, "svrd-demo exited with success\n{}", run.text);
}

#[test]
fn demo_corrupt_wan_fails() {
    let run = run_demo("corrupt", &["--fault", "corrupt-wan"]);
    for check in ["peer keys", "no plaintext on the WAN", "SVR packets on the WAN"] {
        run.assert_outcome(check, "PASS");
    }
    for check in
        ["traffic IPv4", "traffic IPv6", "no loss to the rotation", "path cut", "key drop counters"]
    {
        run.assert_outcome(check, "FAIL");
    }
    assert!(!run.success, "svrd-demo exited with success\n{}", run.text);
}
