//! The two routers: each runs svrd's daemon (`svr_control::daemon::run_with_ports`) on a
//! thread of this process, over memory ports, with its management socket in the work
//! directory. The demo reads and commands them over those sockets, as `svrctl` does.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use svr_control::daemon::{self, DaemonError, Options, Signals, SuppliedPort};
use svr_control::mgmt::{self, Command, PeerPathSecurity, Reply};
use tracing::info_span;

/// One router's daemon thread.
pub struct Router {
    pub name: &'static str,
    pub socket: PathBuf,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<Result<(), DaemonError>>>,
}

impl Router {
    /// Starts router `name` of the configuration `config` over `ports`, with its state and
    /// socket in `work`. `key_grace` is how long an old key stays in use after a new one.
    pub fn start(
        name: &'static str,
        config: &Path,
        work: &Path,
        key_grace: Duration,
        ports: Vec<SuppliedPort>,
    ) -> std::io::Result<Router> {
        let options = Options {
            config: config.to_path_buf(),
            router: Some(name.to_owned()),
            state_dir: Some(work.join(format!("{name}-state"))),
            socket: work.join(format!("{name}.sock")),
            key_grace,
            tpm: None,
            crl_poll: None,
        };
        let signals = Signals::default();
        let stop = Arc::clone(&signals.stop);
        let socket = options.socket.clone();
        let thread =
            std::thread::Builder::new().name(format!("{name}-control")).spawn(move || {
                let span = info_span!("router", name);
                let _entered = span.enter();
                daemon::run_with_ports(&options, &signals, ports)
            })?;
        Ok(Router { name, socket, stop, thread: Some(thread) })
    }

    /// Returns the daemon's error if it has stopped, or that it stopped without one.
    pub fn exited(&mut self) -> Option<String> {
        if !self.thread.as_ref().is_some_and(JoinHandle::is_finished) {
            return None;
        }
        Some(match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => error.to_string(),
            Some(Ok(Ok(()))) => "stopped".into(),
            Some(Err(_)) => "its thread panicked".into(),
            None => "not running".into(),
        })
    }

    /// Stops the daemon and waits for it.
    pub fn stop(&mut self) -> Result<(), String> {
        self.stop.store(true, Ordering::Relaxed);
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(Err(error))) => Err(error.to_string()),
            Some(Err(_)) => Err("its thread panicked".into()),
            _ => Ok(()),
        }
    }

    /// Sends `command` over the management socket.
    pub fn request(&self, command: &Command) -> Result<Reply, String> {
        let reply = mgmt::request(&self.socket, command).map_err(|e| e.to_string())?;
        if reply.ok { Ok(reply) } else { Err(reply.text) }
    }

    /// Returns the rows of `show peers security`.
    pub fn peer_paths(&self) -> Result<Vec<PeerPathSecurity>, String> {
        let reply = self.request(&Command::ShowPeersSecurity)?;
        serde_json::from_value(reply.data).map_err(|e| format!("show peers security: {e}"))
    }

    /// Returns the metadata key index of `show security key-status`.
    pub fn metadata_key_index(&self) -> Result<u64, String> {
        let reply = self.request(&Command::ShowKeyStatus)?;
        reply.data[0]["metadata_rekey_index"]
            .as_u64()
            .ok_or_else(|| format!("no metadata_rekey_index in {}", reply.data))
    }

    /// Returns the dataplane drop counters of `show stats`, by reason, with their JSON
    /// names (`no_key`).
    pub fn drop_counters(&self) -> Result<Vec<(String, u64)>, String> {
        let reply = self.request(&Command::ShowStats)?;
        let drops = reply.data["drops"]
            .as_object()
            .ok_or_else(|| format!("no drop counters in {}", reply.data))?;
        let counters =
            drops.iter().map(|(name, count)| (name.clone(), count.as_u64().unwrap_or(0))).collect();
        Ok(counters)
    }

    /// Returns the active alarms of `show alarms`, each as `ID SEVERITY PROCESS: MESSAGE`.
    pub fn alarms(&self) -> Result<Vec<String>, String> {
        let reply = self.request(&Command::ShowAlarms)?;
        let alarms =
            reply.data.as_array().ok_or_else(|| format!("no alarm list in {}", reply.data))?;
        let field =
            |alarm: &serde_json::Value, name: &str| alarm[name].as_str().unwrap_or("?").to_owned();
        let lines = alarms
            .iter()
            .map(|alarm| {
                format!(
                    "{} {} {}: {}",
                    field(alarm, "id"),
                    field(alarm, "severity"),
                    field(alarm, "process"),
                    field(alarm, "message")
                )
            })
            .collect();
        Ok(lines)
    }
}

impl Drop for Router {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}

/// Returns the row of the path on `network_interface` among `paths`.
pub fn path<'a>(
    paths: &'a [PeerPathSecurity],
    network_interface: &str,
) -> Option<&'a PeerPathSecurity> {
    paths.iter().find(|path| path.network_interface == network_interface)
}

/// Counts the paths that are up with the key exchange complete, and all paths.
pub fn complete_paths(paths: &[PeerPathSecurity]) -> (usize, usize) {
    let complete =
        paths.iter().filter(|p| p.status == "up" && p.security_status == "MKEY_EXCH_COMP").count();
    (complete, paths.len())
}
