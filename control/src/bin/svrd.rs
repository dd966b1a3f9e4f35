//! svrd: the router daemon. This build checks configuration files; running the router is
//! not available yet.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Parser;
use svr_control::config::check;

/// Exit status when the requested mode is not available in this build.
const EXIT_UNAVAILABLE: u8 = 2;

#[derive(Debug, Parser)]
#[command(name = "svrd", version, about = "Secure Vector Routing router daemon")]
struct Args {
    /// Check FILE (SSR configuration text), print every error and warning, and exit:
    /// 0 when valid, 1 when it has errors.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check: Option<PathBuf>,

    /// Run the router from FILE.
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,

    /// Name of the router to run, when the authority has several; with --check, the
    /// authority must define it.
    #[arg(long, value_name = "NAME")]
    router: Option<String>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check {
        let report = check::check_file(path, args.router.as_deref());
        print!("{}", report.render());
        return ExitCode::from(report.exit_code());
    }
    eprintln!("svrd: running the router is not available in this build yet; use --check FILE");
    ExitCode::from(EXIT_UNAVAILABLE)
}
