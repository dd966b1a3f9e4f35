//! svrd's benchmarks. Each figure is measured next to a reference in the same run, and
//! the report gives both and their ratio.
// unsafe is denied by the workspace lints; `openssl_ref` opts out to reach OpenSSL's HMAC_CTX,
// and `alloc_count` to implement the counting global allocator.

mod afxdp;
mod alloc_count;
mod clock;
mod crypto;
#[cfg(feature = "dpdk")]
mod dpdk;
mod forward;
mod generator;
mod handshake;
mod loadgen;
mod mb;
mod netns;
mod openssl_ref;
mod pipeline;
mod plot;
mod probe;
mod receiver;
mod rotation;
mod sessions;
mod stats;
mod sweep;
mod topology;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::OnceLock;

use clap::{Parser, Subcommand};
use core_affinity::CoreId;

#[derive(Parser)]
#[command(version, about = "svrd benchmarks, each next to a reference measured in the same run")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Seal and open throughput per core against OpenSSL doing the same per-packet work.
    Crypto(crypto::Options),
    /// Burst seal throughput per core: one-packet path, multi-buffer engine and ipsec-mb.
    Mb(mb::Options),
    /// Key-exchange handshakes per second per algorithm, and DH against OpenSSL's FFDH.
    Handshake(handshake::Options),
    /// Forwarded packets per second and latency through two routers, against crypto-only
    /// work (memory, DPDK ring) or dpdk-testpmd (AF_XDP).
    Forward(forward::Options),
    /// Memory per session, lookup cost at several table sizes, and session set-up rate.
    Sessions(sessions::Options),
    /// Probe traffic at a rate over AF_XDP or DPDK, with loss, reordering and latency.
    Loadgen(loadgen::Options),
    /// Latency and loss against offered load through svrd over AF_XDP.
    Sweep(sweep::Options),
    /// Latency while every session's payload key rotates, next to steady state.
    Rotation(rotation::Options),
    /// PNG plots of the JSON results in a folder.
    Plot(plot::Options),
}

#[global_allocator]
static ALLOCATOR: alloc_count::Counting = alloc_count::Counting;

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Read before any thread pins itself.
    cores();
    let result = match cli.command {
        Command::Crypto(options) => crypto::run(&options),
        Command::Handshake(options) => handshake::run(&options),
        Command::Mb(options) => mb::run(&options),
        Command::Forward(options) => forward::run(&options),
        Command::Sessions(options) => sessions::run(&options),
        Command::Loadgen(options) => loadgen::run(&options),
        Command::Sweep(options) => sweep::run(&options),
        Command::Plot(options) => plot::run(&options),
        Command::Rotation(options) => rotation::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("svr-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Returns the cores this process may run on, read once at start. A thread's affinity is
/// inherited by the threads it spawns, so asking later, from a thread already pinned to
/// the first core, would list that core alone.
fn cores() -> &'static [CoreId] {
    static CORES: OnceLock<Vec<CoreId>> = OnceLock::new();
    CORES.get_or_init(|| core_affinity::get_core_ids().unwrap_or_default())
}

/// Pins the benchmark thread to the last core, away from core 0 where the kernel does most
/// of its interrupt work; returns the core index when pinning worked.
fn pin_to_last_core() -> Option<usize> {
    let core = *cores().last()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

/// Pins the current thread to the first core, where the load generator runs while a
/// forwarder has the last one; returns the core index when pinning worked.
fn pin_to_first_core() -> Option<usize> {
    let core = *cores().first()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

/// Describes where [`pin_to_last_core`] or [`pin_to_first_core`] put the thread.
fn pinning(core: Option<usize>) -> String {
    match core {
        Some(core) => format!("pinned to core {core}"),
        None => "not pinned: setting the thread's core affinity failed".to_owned(),
    }
}

/// Parses a frame size the generator can build: room for the headers and the probe, and
/// at most [`probe::MAX_FRAME`] bytes.
fn frame_size(text: &str) -> Result<usize, String> {
    let size: usize =
        text.parse().map_err(|_| format!("invalid frame size {text:?}: expected bytes"))?;
    if !(probe::MIN_FRAME..=probe::MAX_FRAME).contains(&size) {
        return Err(format!(
            "frame size {size} is out of range: expected {} to {} bytes",
            probe::MIN_FRAME,
            probe::MAX_FRAME
        ));
    }
    Ok(size)
}

/// Parses a whole number that must be at least one.
fn at_least_one<T: std::str::FromStr + From<u8> + PartialOrd>(text: &str) -> Result<T, String> {
    match text.parse::<T>() {
        Ok(count) if count >= T::from(1) => Ok(count),
        Ok(_) => Err(format!("{text} is out of range: expected at least 1")),
        Err(_) => Err(format!("invalid number {text:?}: expected a whole number")),
    }
}

/// The one-minute load average from /proc/loadavg, recorded beside the figures because
/// other work on the machine changes them; 0 when unreadable.
fn load_average() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|text| text.split_whitespace().next()?.parse().ok())
        .unwrap_or(0.0)
}

/// Writes `text` to `path`, creating its folder.
fn write_file(path: &PathBuf, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Returns the cores the calling thread may run on, from its affinity mask.
    fn allowed_cores() -> Vec<usize> {
        core_affinity::get_core_ids().unwrap_or_default().iter().map(|core| core.id).collect()
    }

    #[test]
    fn frame_size_range_checked() {
        assert_eq!(frame_size("64"), Ok(64));
        assert_eq!(frame_size("1400"), Ok(1400));
        let short = frame_size("10").unwrap_err();
        assert!(short.contains("expected 62 to 1400 bytes"), "{short}");
        assert!(frame_size("1401").is_err());
        assert!(frame_size("big").is_err());
    }

    #[test]
    fn counts_start_at_one() {
        assert_eq!(at_least_one::<u16>("1"), Ok(1));
        assert_eq!(at_least_one::<u64>("500"), Ok(500));
        let zero = at_least_one::<usize>("0").unwrap_err();
        assert!(zero.contains("expected at least 1"), "{zero}");
        assert!(at_least_one::<u16>("70000").is_err());
    }

    #[test]
    fn forwarder_pins_past_generator_core() {
        let all: Vec<usize> = cores().iter().map(|core| core.id).collect();
        if all.len() < 2 {
            eprintln!("skipped: one core only");
            return;
        }
        assert_eq!(pin_to_first_core(), all.first().copied());
        // A thread spawned by the pinned generator thread, as the forwarder is.
        let forwarder = std::thread::spawn(|| (pin_to_last_core(), allowed_cores()));
        let (pinned, allowed) = forwarder.join().unwrap();
        assert_eq!(pinned, all.last().copied());
        assert_eq!(allowed, vec![*all.last().unwrap()]);
    }
}
