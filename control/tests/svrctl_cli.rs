//! svrctl's replies and errors, in text and with `--json`, against a management socket the
//! test serves itself.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test helpers fail loudly"
)]

use std::path::{Path, PathBuf};
use std::process::{Command as Process, Output};
use std::thread;
use std::time::Duration;

use svr_control::mgmt::{Command, Reply, Server};

const SVRCTL: &str = env!("CARGO_BIN_EXE_svrctl");

/// A directory of the test's own, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(tag: &str) -> TempDir {
        let path = std::env::temp_dir().join(format!("svrctl-cli-{tag}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).unwrap();
        TempDir(path)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

fn svrctl(socket: &Path, args: &[&str]) -> Output {
    Process::new(SVRCTL).arg("--socket").arg(socket).args(args).output().expect("run svrctl")
}

/// Parses standard output as one JSON object with an `error` string, and returns that.
fn json_error(output: &Output) -> String {
    let stdout = String::from_utf8_lossy(&output.stdout);
    let value: serde_json::Value = serde_json::from_str(&stdout).unwrap_or_else(|error| {
        panic!(
            "stdout is not JSON ({error}):\n{stdout}\nstderr:\n{}",
            String::from_utf8_lossy(&output.stderr)
        )
    });
    let object = value.as_object().unwrap_or_else(|| panic!("not a JSON object: {value}"));
    assert_eq!(object.len(), 1, "{value}");
    object["error"].as_str().unwrap_or_else(|| panic!("no error string: {value}")).to_owned()
}

/// Serves one request on `socket` with `reply`, and returns the command received.
fn serve_once(socket: &Path, reply: Reply) -> thread::JoinHandle<Command> {
    let (server, requests) = Server::start(socket).unwrap();
    thread::spawn(move || {
        let (command, reply_to) = requests.recv_timeout(Duration::from_secs(10)).unwrap();
        reply_to.send(reply).unwrap();
        // Dropping the server removes the socket, so it is kept until the reply is handed over.
        drop(server);
        command
    })
}

#[test]
fn json_unknown_command_is_json_error() {
    let dir = TempDir::new("unknown");
    let output = svrctl(&dir.0.join("svrd.sock"), &["--json", "show", "nothing"]);
    let error = json_error(&output);
    assert!(error.contains("unknown command 'show nothing'"), "{error}");
    assert!(error.contains("show stats"), "the error lists the commands: {error}");
    assert_eq!(output.status.code(), Some(2));
    assert!(output.stderr.is_empty(), "{}", String::from_utf8_lossy(&output.stderr));
}

#[test]
fn json_missing_socket_is_json_error() {
    let dir = TempDir::new("missing");
    let socket = dir.0.join("absent.sock");
    let output = svrctl(&socket, &["--json", "show", "stats"]);
    let error = json_error(&output);
    assert!(error.contains(&socket.display().to_string()), "{error}");
    assert!(error.contains("cannot connect to svrd"), "{error}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn json_invalid_arguments_are_json_errors() {
    let dir = TempDir::new("arguments");
    let socket = dir.0.join("svrd.sock");
    for args in [&["--json"][..], &["--json", "--verbose", "show", "stats"]] {
        let output = svrctl(&socket, args);
        let error = json_error(&output);
        assert!(!error.is_empty(), "{args:?}");
        assert!(!error.starts_with("error:"), "{error}");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

#[test]
fn json_daemon_error_is_json_error() {
    let dir = TempDir::new("daemon");
    let socket = dir.0.join("svrd.sock");
    let server = serve_once(&socket, Reply::error("no alarm with id r1-node:9"));
    let output = svrctl(&socket, &["--json", "show", "alarms", "id", "r1-node:9"]);
    assert_eq!(server.join().unwrap(), Command::ShowAlarm { id: "r1-node:9".into() });
    assert_eq!(json_error(&output), "no alarm with id r1-node:9");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn json_reply_printed_as_is() {
    let dir = TempDir::new("reply");
    let socket = dir.0.join("svrd.sock");
    let data = serde_json::json!({ "index": 7 });
    let server = serve_once(&socket, Reply::ok("Metadata key rotated\n".into(), data.clone()));
    let output = svrctl(&socket, &["--json", "rotate", "security", "metadata-key"]);
    assert_eq!(server.join().unwrap(), Command::RotateMetadataKey);
    let printed: serde_json::Value = serde_json::from_slice(&output.stdout).unwrap();
    assert_eq!(printed, data);
    assert!(output.status.success());
}

#[test]
fn text_errors_on_stderr() {
    let dir = TempDir::new("text");
    let socket = dir.0.join("svrd.sock");
    let output = svrctl(&socket, &["show", "nothing"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("svrctl: unknown command 'show nothing'"), "{stderr}");
    assert!(output.stdout.is_empty());
    assert_eq!(output.status.code(), Some(2));

    let output = svrctl(&socket, &["show", "stats"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(stderr.starts_with("svrctl: cannot connect to svrd"), "{stderr}");
    assert_eq!(output.status.code(), Some(1));
}

#[test]
fn json_help_stays_text() {
    let output = Process::new(SVRCTL).args(["--json", "--help"]).output().unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(stdout.contains("Usage: svrctl"), "{stdout}");
    assert!(output.status.success());
}

/// Checks that an invalid command line is printed as `svrctl: message`, as other errors are.
#[test]
fn text_argument_errors_name_svrctl() {
    let dir = TempDir::new("text-arguments");
    let socket = dir.0.join("svrd.sock");
    for args in [&[][..], &["--verbose", "show", "stats"]] {
        let output = svrctl(&socket, args);
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(stderr.starts_with("svrctl: "), "{args:?}: {stderr}");
        assert_eq!(output.status.code(), Some(2), "{args:?}");
    }
}

/// Checks that a command quoted as one argument is read as its words.
#[test]
fn quoted_command_read_as_words() {
    let dir = TempDir::new("quoted-command");
    let socket = dir.0.join("svrd.sock");
    let output = svrctl(&socket, &["show stats"]);
    let stderr = String::from_utf8_lossy(&output.stderr);
    // With no svrd running, the request fails on the socket, after the command was read.
    assert!(!stderr.contains("unknown command"), "{stderr}");
    assert_eq!(output.status.code(), Some(1), "{stderr}");
}
