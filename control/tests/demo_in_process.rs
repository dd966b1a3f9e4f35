//! Runs `svrd-demo`, the two-router demo in one process, and reads its check lines. A
//! clean run must pass every check. Runs with a fault must fail the checks that the fault
//! breaks and pass the others, which shows that those checks can fail.
#![allow(clippy::expect_used, reason = "a test fails when the demo cannot run")]

use std::fs;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// Every check of a run, in the order the demo prints them.
const CHECKS: [&str; 10] = [
    "peer keys",
    "traffic IPv4",
    "traffic IPv6",
    "metadata key rotation",
    "no loss to the rotation",
    "no plaintext on the WAN",
    "SVR packets on the WAN",
    "path cut",
    "key drop counters",
    "no alarms",
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
    let tmp = test_tmp(tag);
    let output = Command::new(env!("CARGO_BIN_EXE_svrd-demo"))
        .args(["--seconds", "6", "--rate", "200"])
        .args(args)
        .env("TMPDIR", &tmp)
        .output()
        .expect("run svrd-demo");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let text = format!("{stdout}\n--- stderr ---\n{}", String::from_utf8_lossy(&output.stderr));
    let left = entries(&tmp);
    let _ = fs::remove_dir_all(&tmp);
    assert!(left.is_empty(), "svrd-demo left {left:?} behind\n{text}");
    Run { success: output.status.success(), stdout, text }
}

/// Creates an empty temporary directory for the test `tag`.
fn test_tmp(tag: &str) -> PathBuf {
    let tmp = std::env::temp_dir().join(format!("svrd-demo-test-{tag}-{}", std::process::id()));
    let _ = fs::remove_dir_all(&tmp);
    fs::create_dir_all(&tmp).expect("create the test's temporary directory");
    tmp
}

fn entries(dir: &Path) -> Vec<PathBuf> {
    fs::read_dir(dir)
        .expect("read the test's temporary directory")
        .filter_map(|entry| entry.ok().map(|entry| entry.path()))
        .collect()
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
    assert!(run.stdout.contains("demo: FAILED 1 of 10 checks"), "summary\n{}", run.text);
    assert!(!run.success, "svrd-demo exited with success\n{}", run.text);
}

#[test]
fn demo_corrupt_wan_fails() {
    let run = run_demo("corrupt", &["--fault", "corrupt-wan"]);
    for check in ["peer keys", "no plaintext on the WAN", "SVR packets on the WAN", "no alarms"] {
        run.assert_outcome(check, "PASS");
    }
    for check in
        ["traffic IPv4", "traffic IPv6", "no loss to the rotation", "path cut", "key drop counters"]
    {
        run.assert_outcome(check, "FAIL");
    }
    assert!(!run.success, "svrd-demo exited with success\n{}", run.text);
}

/// Maximum wait for a run with `--keep` to finish its checks and keep the routers running.
const HOLD_TIMEOUT: Duration = Duration::from_secs(240);

/// Runs one svrctl command line that the demo printed, and returns its standard output.
fn run_printed(words: &[&str]) -> String {
    let output = Command::new(words[0]).args(&words[1..]).output().expect("run svrctl");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    assert!(
        output.status.success(),
        "{words:?} failed: {stdout}{}",
        String::from_utf8_lossy(&output.stderr)
    );
    stdout
}

/// Returns the counter names of `show stats` text, as `drop_<reason>` for drops and with
/// words joined by `_` for the rest, sorted.
fn text_counter_names(text: &str) -> Vec<String> {
    let mut names: Vec<String> = text
        .lines()
        .filter(|line| line.starts_with("  "))
        .filter_map(|line| line.trim().rsplit_once(' '))
        .map(|(label, _)| label.trim().replace(['-', ' '], "_"))
        .collect();
    names.sort();
    names
}

/// Returns the counter names of `show stats` JSON in the form of [`text_counter_names`].
fn json_counter_names(json: &serde_json::Value) -> Vec<String> {
    let mut names = Vec::new();
    for (group, counters) in json.as_object().expect("show stats JSON is an object") {
        for name in counters.as_object().expect("a group of counters is an object").keys() {
            if group.ends_with("drops") {
                names.push(format!("drop_{name}"));
            } else {
                names.push(name.clone());
            }
        }
    }
    names.sort();
    names
}

/// A svrd-demo process and its temporary directory. On drop the process is killed if it
/// still runs and the directory removed, so that a failed test leaves nothing behind.
struct Demo {
    child: std::process::Child,
    tmp: PathBuf,
}

impl Drop for Demo {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = fs::remove_dir_all(&self.tmp);
    }
}

#[test]
fn demo_keep_holds_routers_for_svrctl() {
    let tmp = test_tmp("keep");
    let child = Command::new(env!("CARGO_BIN_EXE_svrd-demo"))
        .args(["--seconds", "6", "--rate", "200", "--keep"])
        .env("TMPDIR", &tmp)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("start svrd-demo");
    let mut demo = Demo { child, tmp: tmp.clone() };
    let child = &mut demo.child;
    let stdout = child.stdout.take().expect("svrd-demo's stdout");
    let (sender, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = sender.send(line);
        }
    });

    // Read up to the held step and the svrctl commands printed under it.
    let mut output = Vec::new();
    let mut commands = Vec::new();
    let deadline = Instant::now() + HOLD_TIMEOUT;
    while commands.len() < 5 {
        let Ok(line) = lines.recv_timeout(deadline.saturating_duration_since(Instant::now()))
        else {
            panic!("no held routers within {HOLD_TIMEOUT:?}\n{}", output.join("\n"));
        };
        let held = output.iter().any(|line: &String| line.starts_with("== routers held"));
        if held && line.starts_with("  ") && line.contains(" --socket ") {
            commands.push(line.trim().to_owned());
        }
        output.push(line);
    }
    let all_passed = format!("demo: all {} checks passed", CHECKS.len());
    assert!(output.contains(&all_passed), "{}", output.join("\n"));

    for command in &commands {
        let words: Vec<&str> = command.split_whitespace().collect();
        let program = Path::new(words[0]);
        assert!(program.ends_with("svrctl"), "not svrctl: {command}");
        assert!(program.is_file(), "svrctl is not built: {command}");
        let printed = run_printed(&words);
        if command.ends_with("show peers security") {
            assert_eq!(printed.matches("MKEY_EXCH_COMP").count(), 2, "{command}\n{printed}");
        }
        if command.ends_with("show alarms") {
            assert!(printed.contains("There are 0 active alarms"), "{printed}");
        }
        if command.ends_with("show stats") {
            let mut json_words = words.clone();
            json_words.insert(1, "--json");
            let json: serde_json::Value =
                serde_json::from_str(&run_printed(&json_words)).expect("show stats JSON");
            assert_eq!(
                text_counter_names(&printed),
                json_counter_names(&json),
                "show stats text and JSON list different counters\n{printed}\n{json:#}"
            );
        }
    }

    let interrupt = Command::new("kill").args(["-INT", &child.id().to_string()]).status();
    assert!(interrupt.is_ok_and(|status| status.success()), "kill -INT svrd-demo");
    let stop_deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait for svrd-demo") {
            break status;
        }
        if Instant::now() >= stop_deadline {
            panic!("svrd-demo did not stop within 30 s of SIGINT");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    // The reader thread ends at the end of svrd-demo's output, which disconnects `lines`.
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(5)) {
        output.push(line);
    }
    let text = output.join("\n");
    assert!(status.success(), "svrd-demo exited with {status}\n{text}");
    assert!(text.contains("stopping r1 and r2"), "{text}");
    let kept = output
        .iter()
        .find_map(|line| line.strip_prefix("work directory kept: "))
        .map(PathBuf::from)
        .expect("the kept work directory's path");
    assert!(kept.join("svrd.log").is_file(), "{text}");
    assert!(!kept.join("r1.sock").exists(), "r1's socket is left after the demo stopped");
    fs::remove_dir_all(&kept).expect("remove the kept work directory");
    let left = entries(&tmp);
    assert!(left.is_empty(), "svrd-demo left {left:?} behind\n{text}");
}
