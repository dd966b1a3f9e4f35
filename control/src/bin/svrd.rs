//! svrd: the router daemon. Runs one router of an SSR-style configuration, or checks a
//! configuration file.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Parser;
use svr_control::config::check;
use svr_control::daemon::{self, Options, Signals};

/// Default management socket.
const DEFAULT_SOCKET: &str = "/run/svrd/svrd.sock";

#[derive(Debug, Parser)]
#[command(name = "svrd", version, about = "Secure Vector Routing router daemon")]
struct Args {
    /// Check FILE (SSR configuration text), print every error and warning, and exit:
    /// 0 when valid, 1 when it has errors.
    #[arg(long, value_name = "FILE", conflicts_with = "config")]
    check: Option<PathBuf>,

    /// Run the router from FILE.
    #[arg(long, value_name = "FILE", required_unless_present = "check")]
    config: Option<PathBuf>,

    /// Name of the router to run, when the authority has several; with --check, the
    /// authority must define it.
    #[arg(long, value_name = "NAME")]
    router: Option<String>,

    /// Directory for the generated certificate and key (default /var/lib/svrd/ROUTER).
    #[arg(long, value_name = "DIR")]
    state_dir: Option<PathBuf>,

    /// Management socket that svrctl connects to.
    #[arg(long, value_name = "PATH", default_value = DEFAULT_SOCKET)]
    socket: PathBuf,

    /// Seconds a sender keeps using an old key after it has the new one, and a receiver
    /// still accepts it after the switch. The product uses 30; shorter values are for
    /// tests that cannot wait that long.
    #[arg(long, value_name = "SECONDS", default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..=3600))]
    key_grace_seconds: u64,

    /// TCTI of a TPM 2.0 that seals the generated private keys (the peering key and the
    /// ML-KEM decapsulation keys), for example device:/dev/tpmrm0 or
    /// swtpm:host=127.0.0.1,port=2321. Without it those keys are files of mode 0600.
    #[arg(long, value_name = "TCTI")]
    tpm: Option<String>,

    /// Seconds between fetches of every certificate-revocation-list, in place of its
    /// polling-interval (whose unit is hours). For tests that cannot wait that long.
    #[arg(long, value_name = "SECONDS", value_parser = clap::value_parser!(u64).range(1..=604800))]
    crl_poll_seconds: Option<u64>,
}

fn main() -> ExitCode {
    let args = Args::parse();
    if let Some(path) = &args.check {
        let report = check::check_file(path, args.router.as_deref());
        print!("{}", report.render());
        return ExitCode::from(report.exit_code());
    }
    let Some(config) = args.config.clone() else {
        eprintln!("svrd: --config FILE or --check FILE is required");
        return ExitCode::from(2);
    };

    // A configuration with errors is reported in full here, as --check would, rather
    // than as a count from inside the daemon.
    if let Err(svr_control::config::LoadError::Invalid { .. }) = svr_control::config::load(&config)
    {
        let report = check::check_file(&config, args.router.as_deref());
        eprint!("{}", report.render());
        return ExitCode::FAILURE;
    }

    tracing_subscriber::fmt()
        .with_ansi(std::io::stderr().is_terminal())
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        .init();

    let signals = Signals::default();
    for (signal, flag) in [
        (signal_hook::consts::SIGTERM, &signals.stop),
        (signal_hook::consts::SIGINT, &signals.stop),
        (signal_hook::consts::SIGHUP, &signals.reload),
    ] {
        if let Err(error) = signal_hook::flag::register(signal, std::sync::Arc::clone(flag)) {
            eprintln!("svrd: cannot handle signal {signal}: {error}");
            return ExitCode::FAILURE;
        }
    }

    let options = Options {
        config,
        router: args.router,
        state_dir: args.state_dir,
        socket: args.socket,
        key_grace: Duration::from_secs(args.key_grace_seconds),
        tpm: args.tpm,
        crl_poll: args.crl_poll_seconds.map(Duration::from_secs),
    };
    match daemon::run(&options, &signals) {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            // Printed once, without the log's timestamp and colour, as the last line.
            eprintln!("svrd: {error}");
            ExitCode::FAILURE
        }
    }
}
