//! svrd-demo: the two-router demo of `scripts/demo`, run in one process without root,
//! network namespaces or network access.
//!
//! Two svrd routers run on threads of this process, each through the daemon's own entry
//! point (`svr_control::daemon::run_with_ports`) with memory ports in place of AF_XDP
//! ports. A wire thread joins their two WAN links and inspects every frame, and a host
//! thread on each LAN sends or returns generated UDP traffic. The demo then shows what
//! the namespace demo shows: the key exchange, traffic with a metadata-key rotation, a
//! WAN without plaintext, and a path cut. docs/demo.md explains the output.

mod config;
mod lab;
mod lan;
mod pki;
mod report;
mod routers;
mod topology;
mod traffic;
mod wire;

use std::fs;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::{Parser, ValueEnum};
use svr_control::config::check;
use svr_control::mgmt::{Command, PeerPathSecurity};
use svr_control::printable::escape_control_keep_lines;

use lab::Lab;
use report::{Checks, family_line, intact, print_phase, step};
use routers::{Router, complete_paths, path};
use traffic::{FAMILIES, PAYLOAD_LEN, Phase, PhaseReport};
use wire::{WireCounts, link_name};

/// How long a sender keeps using the old key after a rotation, and a receiver accepts the
/// old key after the switch. The product's 30 s would outlast the traffic; 2 s puts both
/// the switch and the end of the old key inside the rotation phase.
const KEY_GRACE: Duration = Duration::from_secs(2);

/// When r1 rotates its metadata key, counted from the start of the rotation phase. The
/// phase lasts at least this plus twice [`KEY_GRACE`] plus a second.
const ROTATE_AT: Duration = Duration::from_secs(1);

/// Maximum wait for `MKEY_EXCH_COMP` on every path, as in the namespace demo.
const KEY_EXCHANGE_TIMEOUT: Duration = Duration::from_secs(60);

/// Maximum wait for the first datagrams to come back, while the routers and hosts resolve
/// each other.
const WARM_UP_TIMEOUT: Duration = Duration::from_secs(10);

/// Datagrams per second of each family while warming up.
const WARM_UP_RATE: u32 = 20;

/// Maximum wait for both routers to report the cut path down. BFD's detection time with
/// the default timers is 3 s.
const CUT_TIMEOUT: Duration = Duration::from_secs(15);

/// Maximum wait for the restored path to come back with its keys.
const RESTORE_TIMEOUT: Duration = Duration::from_secs(30);

/// Length of the traffic sent while a path is cut.
const CUT_TRAFFIC: Duration = Duration::from_secs(3);

/// The WAN link the demo cuts, an index of `topology::WAN_LINKS`, and its network-interface.
const CUT_LINK: usize = 1;
const CUT_INTERFACE: &str = "wan-b-net";

/// The drop reasons of svrd's dataplane that a key problem shows up as: a packet sealed
/// under a key the receiver no longer or not yet has, one whose HMAC does not verify, and
/// one replayed.
const KEY_DROP_REASONS: [&str; 4] = ["bad_tag", "no_key", "unknown_key_id", "replay"];

#[derive(Debug, Parser)]
#[command(
    name = "svrd-demo",
    version,
    about = "Run the two-router svrd demo in one process: two routers over memory links, \
             with generated traffic; needs no root"
)]
struct Args {
    /// Length in seconds of each of the two measured traffic phases, the first without
    /// and the second with a metadata-key rotation.
    #[arg(long, default_value_t = 6, value_parser = clap::value_parser!(u64).range(6..=120))]
    seconds: u64,

    /// UDP datagrams per second of each IP family from host1 to host5, each of 1000
    /// payload bytes; host5 sends every one back.
    #[arg(long, default_value_t = 500, value_parser = clap::value_parser!(u32).range(10..=5000))]
    rate: u32,

    /// After the checks, keep both routers running for svrctl until Ctrl-C or SIGTERM, then
    /// keep the work directory (configuration, certificates, svrd log) and print its path.
    #[arg(long)]
    keep: bool,

    /// Run with a fault that some checks must report as FAIL, to see that they can.
    #[arg(long, value_enum)]
    fault: Option<Fault>,
}

/// A deliberate fault.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Fault {
    /// The security policy has `encrypt false`, so payloads cross the WAN in clear.
    UnencryptedPayload,
    /// From the first measured phase on, the wire flips a bit of every SVR packet.
    CorruptWan,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let stop = Arc::new(AtomicBool::new(false));
    for signal in [signal_hook::consts::SIGINT, signal_hook::consts::SIGTERM] {
        if let Err(error) = signal_hook::flag::register(signal, Arc::clone(&stop)) {
            eprintln!("svrd-demo: cannot handle signal {signal}: {error}");
            return ExitCode::FAILURE;
        }
    }
    let work = match WorkDir::create(args.keep) {
        Ok(work) => work,
        Err(error) => {
            eprintln!("svrd-demo: {error}");
            return ExitCode::FAILURE;
        }
    };
    let log = work.path.join("svrd.log");
    if let Err(error) = start_log(&log) {
        eprintln!("svrd-demo: {error}");
        return ExitCode::FAILURE;
    }

    let mut checks = Checks::default();
    let result = run(&args, &work.path, &stop, &mut checks);
    let failed = match &result {
        Ok(()) => !checks.all_passed(),
        Err(error) => {
            eprintln!("svrd-demo: {error}");
            true
        }
    };
    if failed {
        print_log_tail(&log);
    }
    if args.keep {
        println!("work directory kept: {}", work.path.display());
    }
    if result.is_err() {
        return ExitCode::FAILURE;
    }
    if checks.all_passed() { ExitCode::SUCCESS } else { ExitCode::FAILURE }
}

/// Writes the PKI and configuration into `work`, runs the lab, and stops it.
fn run(args: &Args, work: &Path, stop: &AtomicBool, checks: &mut Checks) -> Result<(), String> {
    step("certificates and configuration");
    let config = prepare(work, args.fault != Some(Fault::UnencryptedPayload))?;

    step("svrd r1 and r2 in this process, over memory ports");
    let marker = marker()?;
    let mut lab = Lab::start(&config, work, KEY_GRACE, marker.as_bytes())?;
    let svrctl = svrctl_program();
    println!(
        "r1 and r2 run svrd's daemon on threads of this process. Their management sockets \
         answer svrctl only while the demo runs{}:",
        if args.keep { ", and after the checks until Ctrl-C" } else { " (--keep holds them)" }
    );
    print_svrctl_commands(&svrctl, &lab);
    let mut result = exercise(&mut lab, args, stop, checks);
    if result.is_ok() {
        println!("{}", checks.summary());
        if args.keep {
            result = hold(&mut lab, &svrctl, stop);
        }
    }
    let errors = lab.stop();
    result?;
    if !errors.is_empty() {
        return Err(errors.join("; "));
    }
    Ok(())
}

/// Returns the svrctl to print in commands: the one built beside this program, or `svrctl`
/// from `PATH` with a note on how to build it.
fn svrctl_program() -> String {
    let beside = std::env::current_exe()
        .ok()
        .and_then(|program| program.parent().map(|dir| dir.join("svrctl")))
        .filter(|svrctl| svrctl.is_file());
    match beside {
        Some(svrctl) => svrctl.display().to_string(),
        None => {
            println!(
                "svrctl is not built beside svrd-demo; build it with \
                 cargo build --release -p svr-control --bin svrctl"
            );
            "svrctl".to_owned()
        }
    }
}

/// Prints svrctl command lines for both routers' management sockets.
fn print_svrctl_commands(svrctl: &str, lab: &Lab) {
    for (router, command) in [
        (&lab.r1, "show peers security"),
        (&lab.r2, "show peers security"),
        (&lab.r1, "show stats"),
        (&lab.r1, "show alarms"),
        (&lab.r1, "rotate security metadata-key"),
    ] {
        println!("  {svrctl} --socket {} {command}", router.socket.display());
    }
}

/// Keeps the routers running, with no traffic, until a signal sets `stop`, so that svrctl
/// can inspect them. Returns an error if a router stops first.
fn hold(lab: &mut Lab, svrctl: &str, stop: &AtomicBool) -> Result<(), String> {
    step("routers held for svrctl until Ctrl-C or SIGTERM; no traffic runs now");
    print_svrctl_commands(svrctl, lab);
    while !stop.load(Ordering::Relaxed) {
        for router in [&mut lab.r1, &mut lab.r2] {
            if let Some(error) = router.exited() {
                return Err(format!("svrd {} stopped while held: {error}", router.name));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    println!("stopping r1 and r2");
    Ok(())
}

/// Writes the CA, the router certificates and the configuration, and checks the
/// configuration for both routers as `svrd --check` does. Returns the configuration's path.
fn prepare(work: &Path, encrypt: bool) -> Result<PathBuf, String> {
    let pki_dir = work.join("pki");
    fs::create_dir(&pki_dir).map_err(|e| format!("{}: {e}", pki_dir.display()))?;
    pki::write(&pki_dir, &[topology::R1.router, topology::R2.router])?;
    let config = work.join("authority.cfg");
    fs::write(&config, config::authority(&pki_dir, encrypt))
        .map_err(|e| format!("{}: {e}", config.display()))?;
    let mut summary = String::new();
    for router in [topology::R1.router, topology::R2.router] {
        let report = check::check_file(&config, Some(router));
        if report.exit_code() != 0 {
            return Err(format!("the configuration is invalid for {router}:\n{}", report.render()));
        }
        summary = report.summary();
    }
    println!("CA and router certificates in {}; {summary}", pki_dir.display());
    if !encrypt {
        println!("fault: the security policy has encrypt false, payloads are not encrypted");
    }
    Ok(config)
}

/// Runs the steps of the demo on the running lab.
fn exercise(
    lab: &mut Lab,
    args: &Args,
    stop: &AtomicBool,
    checks: &mut Checks,
) -> Result<(), String> {
    wait_for_keys(lab, stop, checks)?;

    step("traffic host1 -> host5, UDP over IPv4 and IPv6; host5 sends each datagram back");
    let warm_up =
        Phase { id: 0, duration: WARM_UP_TIMEOUT, rate: WARM_UP_RATE, until_answered: true };
    let warm_up = run_phase(lab, warm_up, stop)?;
    if warm_up.families.iter().any(|family| family.returned == 0) {
        return Err(format!(
            "no datagram of {} came back from host5 within {} s",
            if warm_up.families[0].returned == 0 { FAMILIES[0] } else { FAMILIES[1] },
            WARM_UP_TIMEOUT.as_secs()
        ));
    }
    println!(
        "first datagrams back after {} ms (the routers and hosts resolved each other)",
        warm_up.sending.as_millis()
    );
    if args.fault == Some(Fault::CorruptWan) {
        lab.wire.corrupt_svr(true);
        println!("fault: the wire now flips a bit of every SVR packet");
    }

    let duration = Duration::from_secs(args.seconds);
    let measured = |id| Phase { id, duration, rate: args.rate, until_answered: false };
    println!(
        "{} s at {} datagrams/s of each family, {PAYLOAD_LEN} bytes each, a new session every \
         {} datagrams",
        args.seconds,
        args.rate,
        traffic::DATAGRAMS_PER_SESSION
    );
    let baseline = run_phase(lab, measured(1), stop)?;
    for (name, family) in FAMILIES.iter().zip(&baseline.families) {
        checks.check(
            &format!("traffic {name}"),
            intact(family),
            &family_line(family, baseline.sending),
        );
    }

    let (index_before, index_after) =
        rotate_under_traffic(lab, measured(2), &baseline, stop, checks)?;
    inspect_wan(&lab.wire.counts(), checks);
    let cut = Phase { duration: CUT_TRAFFIC, ..measured(3) };
    cut_path(lab, cut, stop, checks)?;
    check_drop_counters(lab, checks)?;
    check_alarms(lab, checks)?;

    step("summary");
    println!("{}", report::throughput_line(&baseline));
    println!("metadata rekey index on r1: {index_before} before, {index_after} after the rotation");
    Ok(())
}

/// Waits until both routers report `MKEY_EXCH_COMP` on both paths, and prints their
/// `show peers security`.
fn wait_for_keys(lab: &mut Lab, stop: &AtomicBool, checks: &mut Checks) -> Result<(), String> {
    step("key exchange: diffie-hellman-ml-kem, DH 2048, ML-KEM-768, CA-signed certificates");
    let started = Instant::now();
    let mut counts = [(0, 0), (0, 0)];
    let ready = wait_until(KEY_EXCHANGE_TIMEOUT, stop, || {
        for router in [&mut lab.r1, &mut lab.r2] {
            if let Some(error) = router.exited() {
                return Err(format!("svrd {} stopped: {error}", router.name));
            }
        }
        for (count, router) in counts.iter_mut().zip([&lab.r1, &lab.r2]) {
            *count = router.peer_paths().map(|paths| complete_paths(&paths)).unwrap_or((0, 0));
        }
        Ok(counts.iter().all(|&(complete, total)| total == 2 && complete == 2))
    })?;
    for router in [&lab.r1, &lab.r2] {
        println!("-- {}: show peers security", router.name);
        match router.request(&Command::ShowPeersSecurity) {
            Ok(reply) => print!("{}", escape_control_keep_lines(&reply.text)),
            Err(error) => println!("show peers security failed: {error}"),
        }
    }
    checks.check(
        "peer keys",
        ready,
        &format!(
            "MKEY_EXCH_COMP on {}/{} paths of r1 and {}/{} of r2 after {:.1} s (2/2 expected \
             within {} s)",
            counts[0].0,
            counts[0].1,
            counts[1].0,
            counts[1].1,
            started.elapsed().as_secs_f64(),
            KEY_EXCHANGE_TIMEOUT.as_secs()
        ),
    );
    if !ready {
        return Err("the peers did not complete the key exchange".into());
    }
    Ok(())
}

/// Runs `phase` with a metadata-key rotation on r1 [`ROTATE_AT`] into it, and checks that
/// the key changed and that the rotation lost nothing.
fn rotate_under_traffic(
    lab: &mut Lab,
    phase: Phase,
    baseline: &PhaseReport,
    stop: &AtomicBool,
    checks: &mut Checks,
) -> Result<(u64, u64), String> {
    step("metadata key rotation under the same traffic");
    let index_before = lab.r1.metadata_key_index()?;
    let drops_before = key_drops(lab)?;
    let report = lab.host1.run(phase)?;
    sleep(ROTATE_AT, stop)?;
    let rotation = lab.r1.request(&Command::RotateMetadataKey);
    match &rotation {
        Ok(reply) => print!(
            "rotate security metadata-key on r1 at {} s: {}",
            ROTATE_AT.as_secs(),
            reply.text
        ),
        Err(error) => println!("rotate security metadata-key on r1 failed: {error}"),
    }
    let rotated = wait_report(&report, phase.duration + WARM_UP_TIMEOUT, stop)?;
    print_phase(&rotated);

    let index_after = lab.r1.metadata_key_index()?;
    let r2_paths = lab.r2.peer_paths()?;
    let sealing: Vec<String> = r2_paths.iter().map(|p| p.peer_key_index.to_string()).collect();
    let r2_uses_new =
        !r2_paths.is_empty() && r2_paths.iter().all(|p| u64::from(p.peer_key_index) == index_after);
    checks.check(
        "metadata key rotation",
        rotation.is_ok() && index_after > index_before && r2_uses_new,
        &format!(
            "r1 metadata rekey index {index_before} -> {index_after}; r2 seals metadata for r1 \
             with index {} on its paths",
            sealing.join(", ")
        ),
    );

    let drops_after = key_drops(lab)?;
    let new_drops: Vec<String> = drops_after
        .iter()
        .zip(&drops_before)
        .filter(|(after, before)| after.2 > before.2)
        .map(|(after, before)| format!("{} {} +{}", after.0, after.1, after.2 - before.2))
        .collect();
    let altered: u64 = rotated.families.iter().map(|f| f.altered + f.duplicates).sum();
    checks.check(
        "no loss to the rotation",
        rotated.sent() > 0
            && rotated.lost() <= baseline.lost()
            && altered == 0
            && new_drops.is_empty(),
        &format!(
            "{} of {} datagrams lost with the rotation, {} of {} without; key drops during the \
             phase: {}",
            rotated.lost(),
            rotated.sent(),
            baseline.lost(),
            baseline.sent(),
            if new_drops.is_empty() { "none".to_owned() } else { new_drops.join(", ") }
        ),
    );
    Ok((index_before, index_after))
}

/// Checks what crossed the WAN so far: no frame with the plaintext marker, and SVR
/// packets.
fn inspect_wan(counts: &WireCounts, checks: &mut Checks) {
    step("WAN inspection: every frame between the routers, searched whole");
    let mut per_path = Vec::new();
    for (link, directions) in counts.links.iter().enumerate() {
        for (direction, count) in directions.iter().enumerate() {
            let from_to = if direction == 0 { "r1->r2" } else { "r2->r1" };
            let mut dropped = String::new();
            for (number, what) in [
                (count.cut, "dropped by a cut"),
                (count.corrupted, "corrupted"),
                (count.overflow, "lost to a full ring"),
            ] {
                if number > 0 {
                    dropped.push_str(&format!("; {number} {what}"));
                }
            }
            println!(
                "  {} {from_to}: {} frames, {} bytes: {} SVR, {} BFD, {} ARP/ND, {} other; \
                 marker in {}{dropped}",
                link_name(link),
                count.frames,
                count.bytes,
                count.svr,
                count.bfd,
                count.discovery,
                count.other,
                count.marker_frames
            );
            per_path.push(format!("{} {from_to} {}", link_name(link), count.svr));
        }
    }
    let frames = counts.total(|c| c.frames);
    let marker_frames = counts.total(|c| c.marker_frames);
    checks.check(
        "no plaintext on the WAN",
        frames > 0 && marker_frames == 0,
        &format!("the datagrams' plaintext marker found in {marker_frames} of {frames} frames"),
    );
    let svr = counts.total(|c| c.svr);
    let other = counts.total(|c| c.other);
    checks.check(
        "SVR packets on the WAN",
        svr > 0 && other == 0,
        &format!(
            "{svr} UDP packets between waypoints with ports 16384-65535 ({}); {other} frames \
             neither SVR, BFD nor ARP/ND",
            per_path.join("; ")
        ),
    );
}

/// Cuts wan-b at the wire, sends traffic while it is down, restores it, and checks that
/// the traffic kept flowing over wan-a and that the path came back with its keys.
fn cut_path(
    lab: &mut Lab,
    phase: Phase,
    stop: &AtomicBool,
    checks: &mut Checks,
) -> Result<(), String> {
    step("path cut: the wire drops wan-b, then carries it again");
    let before = path_state(&lab.r1)?;
    lab.wire.set_up(CUT_LINK, false);
    let cut_at = Instant::now();
    let down = wait_until(CUT_TIMEOUT, stop, || {
        Ok(path_state(&lab.r1)?.status == "down" && path_state(&lab.r2)?.status == "down")
    })?;
    println!(
        "wan-b {} on r1 and r2 after {:.1} s",
        if down { "down" } else { "still up" },
        cut_at.elapsed().as_secs_f64()
    );

    let wire_before = lab.wire.counts();
    let during = run_phase(lab, phase, stop)?;
    let wire_during = lab.wire.counts().since(&wire_before);
    print_phase(&during);
    let svr_a: u64 = wire_during.links[0].iter().map(|c| c.svr).sum();
    let svr_b: u64 = wire_during.links[CUT_LINK].iter().map(|c| c.svr).sum();
    println!("SVR packets while wan-b was cut: {svr_a} on wan-a, {svr_b} sent into wan-b");

    lab.wire.set_up(CUT_LINK, true);
    let restored_at = Instant::now();
    let up = wait_until(RESTORE_TIMEOUT, stop, || {
        let state = path_state(&lab.r1)?;
        Ok(state.status == "up" && state.security_status == "MKEY_EXCH_COMP")
    })?;
    let after = path_state(&lab.r1)?;
    println!(
        "wan-b {} after {:.1} s: {}",
        if up { "back" } else { "not back" },
        restored_at.elapsed().as_secs_f64(),
        describe(&after)
    );

    let same_keys = after.key_index == before.key_index
        && after.peer_key_index == before.peer_key_index
        && after.security_status == before.security_status;
    let all_back = during.families.iter().all(intact);
    checks.check(
        "path cut",
        down && all_back && svr_b == 0 && svr_a > 0 && up && same_keys,
        &format!(
            "wan-b went down and came back as '{}', keys as before ('{}'); {} of {} datagrams \
             back during the cut",
            describe(&after),
            describe(&before),
            during.sent() - during.lost(),
            during.sent()
        ),
    );
    Ok(())
}

/// Prints the drop counters of both routers and checks that none counted a key reason.
fn check_drop_counters(lab: &Lab, checks: &mut Checks) -> Result<(), String> {
    step("drop counters");
    let mut key_drops = Vec::new();
    for router in [&lab.r1, &lab.r2] {
        let counters = router.drop_counters()?;
        let nonzero: Vec<String> = counters
            .iter()
            .filter(|(_, count)| *count > 0)
            .map(|(name, count)| format!("{name} {count}"))
            .collect();
        println!(
            "  {}: {}",
            router.name,
            if nonzero.is_empty() { "no drops".to_owned() } else { nonzero.join(", ") }
        );
        for (name, count) in counters {
            if KEY_DROP_REASONS.contains(&name.as_str()) && count > 0 {
                key_drops.push(format!("{} {name} {count}", router.name));
            }
        }
    }
    checks.check(
        "key drop counters",
        key_drops.is_empty(),
        &format!(
            "{} on r1 and r2: {}",
            KEY_DROP_REASONS.join(", "),
            if key_drops.is_empty() { "all 0".to_owned() } else { key_drops.join(", ") }
        ),
    );
    Ok(())
}

/// Prints the active alarms of both routers and checks that there are none: the demo's
/// certificates are far from expiry, and every peer and path is up.
fn check_alarms(lab: &Lab, checks: &mut Checks) -> Result<(), String> {
    step("alarms");
    let mut active = Vec::new();
    for router in [&lab.r1, &lab.r2] {
        let alarms = router.alarms()?;
        if alarms.is_empty() {
            println!("  {}: no active alarm", router.name);
        }
        for alarm in alarms {
            println!("  {}: {alarm}", router.name);
            active.push(format!("{} {alarm}", router.name));
        }
    }
    checks.check(
        "no alarms",
        active.is_empty(),
        &format!(
            "show alarms on r1 and r2: {}",
            if active.is_empty() { "none active".to_owned() } else { active.join("; ") }
        ),
    );
    Ok(())
}

/// Returns the key-reason drop counters of both routers, as (router, reason, count).
fn key_drops(lab: &Lab) -> Result<Vec<(&'static str, String, u64)>, String> {
    let mut drops = Vec::new();
    for router in [&lab.r1, &lab.r2] {
        for (name, count) in router.drop_counters()? {
            if KEY_DROP_REASONS.contains(&name.as_str()) {
                drops.push((router.name, name, count));
            }
        }
    }
    Ok(drops)
}

/// Returns the row of the cut path on `router`.
fn path_state(router: &Router) -> Result<PeerPathSecurity, String> {
    let paths = router.peer_paths()?;
    path(&paths, CUT_INTERFACE)
        .cloned()
        .ok_or_else(|| format!("svrd {} shows no path on {CUT_INTERFACE}", router.name))
}

fn describe(path: &PeerPathSecurity) -> String {
    format!(
        "{} {} key index {} peer key index {}",
        path.status, path.security_status, path.key_index, path.peer_key_index
    )
}

/// Runs `phase` on host1 and waits for its report.
fn run_phase(lab: &Lab, phase: Phase, stop: &AtomicBool) -> Result<PhaseReport, String> {
    let report = lab.host1.run(phase)?;
    wait_report(&report, phase.duration + WARM_UP_TIMEOUT, stop)
}

fn wait_report(
    report: &Receiver<PhaseReport>,
    timeout: Duration,
    stop: &AtomicBool,
) -> Result<PhaseReport, String> {
    let deadline = Instant::now() + timeout;
    loop {
        match report.recv_timeout(Duration::from_millis(100)) {
            Ok(report) => return Ok(report),
            Err(RecvTimeoutError::Disconnected) => return Err("host1's thread stopped".into()),
            Err(RecvTimeoutError::Timeout) => {}
        }
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        if Instant::now() >= deadline {
            return Err(format!("host1 sent no report within {} s", timeout.as_secs()));
        }
    }
}

/// Calls `condition` every 200 ms until it returns true or `timeout` passes; returns
/// whether it did.
fn wait_until(
    timeout: Duration,
    stop: &AtomicBool,
    mut condition: impl FnMut() -> Result<bool, String>,
) -> Result<bool, String> {
    let deadline = Instant::now() + timeout;
    loop {
        if condition()? {
            return Ok(true);
        }
        if Instant::now() >= deadline {
            return Ok(false);
        }
        sleep(Duration::from_millis(200), stop)?;
    }
}

/// Sleeps for `duration`, or returns an error as soon as a signal sets `stop`.
fn sleep(duration: Duration, stop: &AtomicBool) -> Result<(), String> {
    let deadline = Instant::now() + duration;
    while Instant::now() < deadline {
        if stop.load(Ordering::Relaxed) {
            return Err("interrupted".into());
        }
        std::thread::sleep((deadline - Instant::now()).min(Duration::from_millis(50)));
    }
    Ok(())
}

/// Returns the plaintext every datagram carries, new each run.
fn marker() -> Result<String, String> {
    let mut bytes = [0u8; 8];
    getrandom::fill(&mut bytes).map_err(|e| format!("random marker: {e}"))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("svrdemo-plaintext-{hex}"))
}

/// Sends svrd's log, at `RUST_LOG` level (default info), to `path`.
fn start_log(path: &Path) -> Result<(), String> {
    let file = fs::File::create(path).map_err(|e| format!("{}: {e}", path.display()))?;
    tracing_subscriber::fmt()
        .with_ansi(false)
        .with_thread_names(true)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(Mutex::new(file))
        .try_init()
        .map_err(|e| format!("cannot start the log: {e}"))
}

/// Prints the last lines of the log, which the work directory's removal is about to
/// delete.
fn print_log_tail(path: &Path) {
    let Ok(text) = fs::read_to_string(path) else {
        return;
    };
    let lines: Vec<&str> = text.lines().collect();
    println!("-- last lines of the svrd log ({} lines in all)", lines.len());
    for line in &lines[lines.len().saturating_sub(20)..] {
        println!("  {}", escape_control_keep_lines(line));
    }
}

/// The demo's temporary directory, mode 0700, removed on drop unless kept.
struct WorkDir {
    path: PathBuf,
    keep: bool,
}

impl WorkDir {
    fn create(keep: bool) -> Result<WorkDir, String> {
        let base = std::env::temp_dir();
        for _ in 0..16 {
            let mut suffix = [0u8; 6];
            getrandom::fill(&mut suffix).map_err(|e| format!("random directory name: {e}"))?;
            let suffix: String = suffix.iter().map(|b| format!("{b:02x}")).collect();
            let path = base.join(format!("svrd-demo.{suffix}"));
            match fs::DirBuilder::new().mode(0o700).create(&path) {
                Ok(()) => return Ok(WorkDir { path, keep }),
                Err(error) if error.kind() == std::io::ErrorKind::AlreadyExists => continue,
                Err(error) => return Err(format!("{}: {error}", path.display())),
            }
        }
        Err(format!("cannot create a work directory in {}", base.display()))
    }
}

impl Drop for WorkDir {
    fn drop(&mut self) {
        if !self.keep {
            let _ = fs::remove_dir_all(&self.path);
        }
    }
}
