//! svrd's benchmarks. Each figure is measured next to a reference in the same run, and
//! the report gives both and their ratio.
// unsafe is denied by the workspace lints; only `openssl_ref` opts out, to reach OpenSSL's HMAC_CTX.

mod clock;
mod crypto;
mod handshake;
mod mb;
mod openssl_ref;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

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
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Crypto(options) => crypto::run(&options),
        Command::Handshake(options) => handshake::run(&options),
        Command::Mb(options) => mb::run(&options),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            eprintln!("svr-bench: {error}");
            ExitCode::FAILURE
        }
    }
}

/// Pins the benchmark thread to the last core, away from core 0 where the kernel does most
/// of its interrupt work; returns the core index when pinning worked.
fn pin_to_last_core() -> Option<usize> {
    let cores = core_affinity::get_core_ids()?;
    let core = *cores.last()?;
    core_affinity::set_for_current(core).then_some(core.id)
}

/// Writes `text` to `path`, creating its folder.
fn write_file(path: &PathBuf, text: &str) -> Result<(), String> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
    }
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}
