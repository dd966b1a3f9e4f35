//! Burst seal and open throughput per core: svrd's one-packet path, its multi-buffer engine
//! at each SHA-512 lane width, and, for sealing, Intel's ipsec-mb library through
//! `dpdk-test-crypto-perf`, all in one run.
//!
//! svrd's figures count payload bytes. Per packet it derives the IV with one AES block,
//! pads with PKCS#7 (a 1424-byte payload becomes 1440 bytes of ciphertext), encrypts with
//! AES-256-CBC and computes HMAC-SHA-384 or -512 over ciphertext and sequence field. The
//! library's figures come from the `crypto_aesni_mb` virtual device doing cipher-then-auth
//! over a buffer of exactly the payload size with the IV supplied, so it does slightly less
//! work per packet than svrd. Each round measures every case once, the library included,
//! so load from other processes spreads over all columns alike.
//!
//! Opening verifies the tag in constant time, decrypts and updates a replay window. Each
//! packet is first copied back from its sealed form, on both svrd paths alike. The library
//! has no open column, because its throughput test verifies only with a file of vectors.
//!
//! Every cell is reported twice: per second of wall-clock time, and per second of CPU time
//! of the thread doing the work (svrd's measuring thread, the library's worker lcore read
//! from `/proc/<pid>/task/<tid>/schedstat`). On a machine that other processes keep busy
//! the wall-clock figures depend on how much of the core each side got. The CPU-time
//! figures do not, though the caches and the clock are still shared with the other
//! processes.

use std::hint::black_box;
use std::io::Read;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::Serialize;
use svr_dataplane::crypto::mb::{OpenJob, SealJob, Width, open_burst_with, seal_burst_with};
use svr_dataplane::crypto::{
    Direction, PayloadSecret, SessionKeys, Suite, open_fast_path, seal_fast_path,
};
use svr_dataplane::replay::ReplayWindow;

use crate::stats::Summary;

/// Payload sizes measured by default, in bytes; the library needs multiples of the AES
/// block.
const SIZES: [usize; 5] = [64, 256, 512, 1024, 1424];

const SUITES: [Suite; 2] = [Suite::AesCbc256HmacSha384, Suite::AesCbc256HmacSha512];

#[derive(clap::Args)]
pub struct Options {
    /// Length of one timed run of svrd's code, in milliseconds.
    #[arg(long, default_value_t = 200)]
    run_ms: u64,
    /// Rounds; each measures every case once, and the report gives median and spread.
    #[arg(long, default_value_t = 5)]
    rounds: usize,
    /// Packets per burst handed to the engine.
    #[arg(long, default_value_t = 32)]
    burst: usize,
    /// Distinct sessions (key sets) the packets of a burst cycle through.
    #[arg(long, default_value_t = 32)]
    sessions: usize,
    /// Operations per buffer size in each library run.
    #[arg(long, default_value_t = 2_000_000)]
    library_ops: u64,
    /// The DPDK crypto benchmark; the library column is left out when it cannot run.
    #[arg(long, default_value = "dpdk-test-crypto-perf")]
    crypto_perf: String,
    /// Seconds to wait before each round for the machine to go quiet (other processes using
    /// under 10% of the CPUs for one second); 0 starts every round at once.
    #[arg(long, default_value_t = 0)]
    quiet_wait_s: u64,
    /// Keeps the first core spinning during svrd's runs. The library's EAL main thread
    /// spins on that core while its worker runs, which pushes other processes onto the
    /// worker's core. Spinning there too gives svrd the same competition.
    #[arg(long, default_value_t = true, action = clap::ArgAction::Set)]
    spin_first_core: bool,
    /// Payload sizes in bytes, multiples of 16 for the library.
    #[arg(long, value_delimiter = ',', default_values_t = SIZES)]
    sizes: Vec<usize>,
    /// Output path of the results as JSON.
    #[arg(long, default_value = "target/bench/mb.json")]
    json: PathBuf,
    /// Output path of the results as a Markdown table.
    #[arg(long, default_value = "target/bench/mb.md")]
    markdown: PathBuf,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Operation {
    Seal,
    Open,
}

impl Operation {
    fn name(self) -> &'static str {
        match self {
            Operation::Seal => "seal",
            Operation::Open => "open",
        }
    }
}

#[derive(Serialize)]
struct Row {
    mac: &'static str,
    operation: &'static str,
    size: usize,
    single_gbps: Summary,
    /// One entry per width this CPU runs, narrowest first.
    burst_gbps: Vec<(&'static str, Summary)>,
    library_gbps: Option<Summary>,
    /// Median of the widest width over the median of the library.
    widest_over_library: Option<f64>,
    /// Median of the widest width over the median of the one-packet path.
    widest_over_single: f64,
    /// The same cells per second of CPU time of the working thread.
    cpu: CpuRow,
}

/// Gbit/s per second of CPU time of the thread that did the work.
#[derive(Serialize)]
struct CpuRow {
    single_gbps: Summary,
    widest_gbps: Summary,
    library_gbps: Option<Summary>,
    widest_over_library: Option<f64>,
}

#[derive(Serialize)]
struct Report {
    core: Option<usize>,
    core_ghz: f64,
    rounds: usize,
    run_ms: u64,
    burst: usize,
    sessions: usize,
    library_ops: u64,
    /// Rounds that started on a quiet machine, out of `rounds`.
    quiet_rounds: usize,
    spin_first_core: bool,
    /// One-minute load average before and after the run.
    load_average: (f64, f64),
    rows: Vec<Row>,
}

/// Samples of one (suite, size, operation) cell, one per round.
#[derive(Default)]
struct Samples {
    single: Vec<Rate>,
    burst: Vec<Vec<Rate>>,
    library: Vec<Rate>,
}

/// Payload Gbit/s of one timed run, per second of wall-clock time and per second of CPU
/// time of the thread that did the work.
#[derive(Clone, Copy, Debug, PartialEq)]
struct Rate {
    wall: f64,
    cpu: f64,
}

impl Rate {
    fn of(bits: f64, wall: Duration, cpu: Duration) -> Rate {
        Rate {
            wall: bits / wall.as_secs_f64().max(1e-9) / 1e9,
            cpu: bits / cpu.as_secs_f64().max(1e-9) / 1e9,
        }
    }
}

/// Summarises one kind of figure of a set of rates.
fn summary(rates: &[Rate], figure: fn(&Rate) -> f64) -> Summary {
    Summary::of(&rates.iter().map(figure).collect::<Vec<f64>>())
}

/// Samples of one (suite, size) case for both operations.
struct CaseSamples {
    seal: Samples,
    open: Samples,
}

pub fn run(options: &Options) -> Result<(), String> {
    if options.burst == 0 || options.sessions == 0 || options.rounds == 0 {
        return Err("--burst, --sessions and --rounds must be at least 1".into());
    }
    if let Some(size) = options.sizes.iter().find(|s| **s == 0 || **s % 16 != 0) {
        return Err(format!("invalid size {size}: expected a positive multiple of 16"));
    }
    let load_before = crate::load_average();
    let core = crate::pin_to_last_core();
    let ghz = crate::clock::core_ghz();
    eprintln!(
        "{}, core clock estimated at {ghz:.2} GHz, load average {load_before:.2}",
        crate::pinning(core)
    );
    let widths: Vec<Width> = Width::ALL.into_iter().filter(|w| w.is_available()).collect();
    let run_time = Duration::from_millis(options.run_ms);

    let mut cases = Vec::new();
    for suite in SUITES {
        for &size in &options.sizes {
            let case = Case::new(suite, size, options)?;
            case.check_agreement(&widths)
                .map_err(|e| format!("{} {size} B: {e}", suite.mac().name()))?;
            cases.push(case);
        }
    }
    let empty = || Samples { burst: vec![Vec::new(); widths.len()], ..Samples::default() };
    let mut samples: Vec<CaseSamples> =
        cases.iter().map(|_| CaseSamples { seal: empty(), open: empty() }).collect();

    let mut library_works = true;
    let mut quiet_rounds = 0;
    for round in 0..options.rounds {
        if options.quiet_wait_s > 0 {
            let quiet = wait_for_quiet(Duration::from_secs(options.quiet_wait_s));
            quiet_rounds += usize::from(quiet);
            if !quiet {
                eprintln!("round {}: machine still busy, measuring anyway", round + 1);
            }
        }
        for (suite_index, suite) in SUITES.into_iter().enumerate() {
            if !library_works {
                break;
            }
            for (size_index, &size) in options.sizes.iter().enumerate() {
                match run_library(options, suite, size, core) {
                    Ok(rate) => {
                        samples[suite_index * options.sizes.len() + size_index]
                            .seal
                            .library
                            .push(rate);
                    }
                    Err(error) => {
                        eprintln!("library column left out: {error}");
                        library_works = false;
                        break;
                    }
                }
            }
        }
        let spinner = options.spin_first_core.then(Spinner::start);
        for (case, cells) in cases.iter_mut().zip(samples.iter_mut()) {
            for (operation, cell) in
                [(Operation::Seal, &mut cells.seal), (Operation::Open, &mut cells.open)]
            {
                cell.single.push(case.measure(operation, None, run_time)?);
                for (width, column) in widths.iter().zip(cell.burst.iter_mut()) {
                    column.push(case.measure(operation, Some(*width), run_time)?);
                }
            }
        }
        drop(spinner);
        eprintln!("round {} of {} done", round + 1, options.rounds);
    }

    let mut rows: Vec<Row> = Vec::new();
    for operation in [Operation::Seal, Operation::Open] {
        for (case, cells) in cases.iter().zip(&samples) {
            let cell = if operation == Operation::Seal { &cells.seal } else { &cells.open };
            rows.push(row(case, operation, cell, &widths));
        }
    }
    for row in &rows {
        eprintln!(
            "{:<12} {} {:>5} B  one-packet {:>6.2}  widest {:>6.2}  library {:>6.2} Gbit/s; \
             per CPU second widest {:>6.2}  library {:>6.2}",
            row.mac,
            row.operation,
            row.size,
            row.single_gbps.median,
            row.burst_gbps.last().map_or(0.0, |(_, s)| s.median),
            row.library_gbps.map_or(0.0, |s| s.median),
            row.cpu.widest_gbps.median,
            row.cpu.library_gbps.map_or(0.0, |s| s.median),
        );
    }
    let load_average = (load_before, crate::load_average());
    eprintln!("load average {:.2} before, {:.2} after", load_average.0, load_average.1);

    let report = Report {
        core,
        core_ghz: ghz,
        rounds: options.rounds,
        run_ms: options.run_ms,
        burst: options.burst,
        sessions: options.sessions,
        library_ops: options.library_ops,
        quiet_rounds,
        spin_first_core: options.spin_first_core,
        load_average,
        rows,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    let markdown = markdown(&report, &widths);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

fn row(case: &Case, operation: Operation, cell: &Samples, widths: &[Width]) -> Row {
    let wall = |r: &Rate| r.wall;
    let cpu = |r: &Rate| r.cpu;
    let single_gbps = summary(&cell.single, wall);
    let burst_gbps: Vec<(&'static str, Summary)> =
        widths.iter().zip(&cell.burst).map(|(w, s)| (w.name(), summary(s, wall))).collect();
    let library_gbps = (!cell.library.is_empty()).then(|| summary(&cell.library, wall));
    let widest = burst_gbps.last().map_or(0.0, |(_, s)| s.median);

    let widest_rates: &[Rate] = cell.burst.last().map_or(&[], |rates| rates);
    let widest_cpu = summary(widest_rates, cpu);
    let library_cpu = (!cell.library.is_empty()).then(|| summary(&cell.library, cpu));
    Row {
        mac: case.suite.mac().name(),
        operation: operation.name(),
        size: case.size,
        single_gbps,
        widest_over_library: library_gbps.map(|l| widest / l.median),
        widest_over_single: widest / single_gbps.median,
        burst_gbps,
        library_gbps,
        cpu: CpuRow {
            single_gbps: summary(&cell.single, cpu),
            widest_over_library: library_cpu.map(|l| widest_cpu.median / l.median),
            widest_gbps: widest_cpu,
            library_gbps: library_cpu,
        },
    }
}

/// One suite and payload size: the sessions, the payloads and a burst of buffers.
struct Case {
    suite: Suite,
    size: usize,
    sessions: Vec<SessionKeys>,
    plain: Vec<Vec<u8>>,
    buffers: Vec<Vec<u8>>,
    /// The payloads sealed by the one-packet path as packet 1, for the open runs.
    sealed: Vec<Vec<u8>>,
    windows: Vec<ReplayWindow>,
}

impl Case {
    fn new(suite: Suite, size: usize, options: &Options) -> Result<Case, String> {
        let sessions = (0..options.sessions)
            .map(|i| {
                PayloadSecret::generate()
                    .map(|secret| SessionKeys::derive(suite, i as u8, &secret))
                    .map_err(|e| e.to_string())
            })
            .collect::<Result<Vec<_>, _>>()?;
        let capacity = size + 16 + 8 + 64;
        let mut plain = Vec::new();
        for _ in 0..options.burst {
            let mut payload = vec![0u8; size];
            getrandom::fill(&mut payload).map_err(|e| e.to_string())?;
            plain.push(payload);
        }
        let buffers = vec![vec![0u8; capacity]; options.burst];
        let windows = vec![ReplayWindow::new(); options.burst];
        let mut case = Case { suite, size, sessions, plain, buffers, sealed: Vec::new(), windows };
        case.sealed = case.seal_each()?;
        Ok(case)
    }

    /// Seals every payload with the one-packet path as packet 1 of its session.
    fn seal_each(&self) -> Result<Vec<Vec<u8>>, String> {
        let mut sealed = Vec::new();
        for (i, payload) in self.plain.iter().enumerate() {
            let mut buf = self.buffers[i].clone();
            buf[..self.size].copy_from_slice(payload);
            let keys = &self.sessions[i % self.sessions.len()];
            let n = seal_fast_path(keys, Direction::Forward, 1, &mut buf, self.size)
                .map_err(|e| e.to_string())?;
            buf.truncate(n);
            sealed.push(buf);
        }
        Ok(sealed)
    }

    /// Checks that every width seals the burst exactly as the one-packet path does and
    /// opens it again, so the columns compare the same work.
    fn check_agreement(&self, widths: &[Width]) -> Result<(), String> {
        let expected = &self.sealed;
        for &width in widths {
            let mut bufs: Vec<Vec<u8>> = self
                .plain
                .iter()
                .zip(&self.buffers)
                .map(|(payload, buf)| {
                    let mut buf = buf.clone();
                    buf[..self.size].copy_from_slice(payload);
                    buf
                })
                .collect();
            let mut jobs: Vec<SealJob<'_>> = bufs
                .iter_mut()
                .enumerate()
                .map(|(i, buf)| {
                    let keys = &self.sessions[i % self.sessions.len()];
                    SealJob::new(keys, Direction::Forward, 1, buf, self.size)
                })
                .collect();
            seal_burst_with(width, &mut jobs);
            for (i, job) in jobs.iter().enumerate() {
                let n = match job.result() {
                    Some(Ok(n)) => n,
                    other => return Err(format!("{} packet {i}: {other:?}", width.name())),
                };
                if job.buf()[..n] != expected[i][..] {
                    return Err(format!("{} packet {i} differs from seal_fast_path", width.name()));
                }
            }

            let mut packets = expected.clone();
            let mut windows = vec![ReplayWindow::new(); packets.len()];
            let mut jobs: Vec<OpenJob<'_>> = packets
                .iter_mut()
                .zip(windows.iter_mut())
                .enumerate()
                .map(|(i, (packet, window))| {
                    let keys = &self.sessions[i % self.sessions.len()];
                    OpenJob::new(keys, Direction::Forward, window, packet)
                })
                .collect();
            open_burst_with(width, &mut jobs);
            for (i, job) in jobs.iter().enumerate() {
                let opened = match job.result() {
                    Some(Ok(n)) => &job.packet()[..n],
                    other => return Err(format!("{} open {i}: {other:?}", width.name())),
                };
                if opened != self.plain[i].as_slice() {
                    return Err(format!("{} packet {i} opened to other bytes", width.name()));
                }
            }
        }
        Ok(())
    }

    /// Runs `operation` on bursts for about `run_time`, one packet at a time when `width`
    /// is `None`; returns payload Gbit/s.
    fn measure(
        &mut self,
        operation: Operation,
        width: Option<Width>,
        run_time: Duration,
    ) -> Result<Rate, String> {
        match operation {
            Operation::Seal => self.measure_seal(width, run_time),
            Operation::Open => self.measure_open(width, run_time),
        }
    }

    /// Opens the sealed burst over and over, each time from a fresh copy and fresh windows.
    fn measure_open(&mut self, width: Option<Width>, run_time: Duration) -> Result<Rate, String> {
        let sessions = &self.sessions;
        let mut packets = 0u64;
        let cpu_start = thread_cpu_time()?;
        let start = Instant::now();
        while start.elapsed() < run_time {
            for _ in 0..8 {
                for ((buf, sealed), window) in
                    self.buffers.iter_mut().zip(&self.sealed).zip(self.windows.iter_mut())
                {
                    buf.clear();
                    buf.extend_from_slice(sealed);
                    *window = ReplayWindow::new();
                }
                match width {
                    None => {
                        for (i, (buf, window)) in
                            self.buffers.iter_mut().zip(self.windows.iter_mut()).enumerate()
                        {
                            let keys = &sessions[i % sessions.len()];
                            let n = open_fast_path(keys, Direction::Forward, window, buf)
                                .map_err(|e| e.to_string())?;
                            black_box(&buf[..n]);
                        }
                    }
                    Some(width) => {
                        let mut jobs: Vec<OpenJob<'_>> = self
                            .buffers
                            .iter_mut()
                            .zip(self.windows.iter_mut())
                            .enumerate()
                            .map(|(i, (buf, window))| {
                                let keys = &sessions[i % sessions.len()];
                                OpenJob::new(keys, Direction::Forward, window, buf)
                            })
                            .collect();
                        open_burst_with(width, &mut jobs);
                        if let Some(Err(error)) = jobs[0].result() {
                            return Err(error.to_string());
                        }
                        black_box(&jobs);
                    }
                }
                packets += self.buffers.len() as u64;
            }
        }
        let wall = start.elapsed();
        let cpu = thread_cpu_time()?.saturating_sub(cpu_start);
        Ok(Rate::of(packets as f64 * self.size as f64 * 8.0, wall, cpu))
    }

    /// Seals bursts for about `run_time`, one packet at a time when `width` is `None`;
    /// returns payload Gbit/s. Sealing in place re-encrypts the previous ciphertext, which
    /// costs the same as fresh plaintext.
    fn measure_seal(&mut self, width: Option<Width>, run_time: Duration) -> Result<Rate, String> {
        let capacity = self.size + 16 + 8 + 64;
        self.buffers.iter_mut().for_each(|buf| buf.resize(capacity, 0));
        let size = self.size;
        let sessions = &self.sessions;
        let mut number = 1u64;
        let mut packets = 0u64;
        let cpu_start = thread_cpu_time()?;
        let start = Instant::now();
        while start.elapsed() < run_time {
            for _ in 0..8 {
                match width {
                    None => {
                        for (i, buf) in self.buffers.iter_mut().enumerate() {
                            let keys = &sessions[i % sessions.len()];
                            let n = seal_fast_path(keys, Direction::Forward, number, buf, size)
                                .map_err(|e| e.to_string())?;
                            black_box(&buf[..n]);
                        }
                    }
                    Some(width) => {
                        let mut jobs: Vec<SealJob<'_>> = self
                            .buffers
                            .iter_mut()
                            .enumerate()
                            .map(|(i, buf)| {
                                let keys = &sessions[i % sessions.len()];
                                SealJob::new(keys, Direction::Forward, number, buf, size)
                            })
                            .collect();
                        seal_burst_with(width, &mut jobs);
                        if let Some(Err(error)) = jobs[0].result() {
                            return Err(error.to_string());
                        }
                        black_box(&jobs);
                    }
                }
                number += 1;
                packets += self.buffers.len() as u64;
            }
        }
        let wall = start.elapsed();
        let cpu = thread_cpu_time()?.saturating_sub(cpu_start);
        Ok(Rate::of(packets as f64 * size as f64 * 8.0, wall, cpu))
    }
}

/// A thread that spins on the first core until dropped.
struct Spinner {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Spinner {
    fn start() -> Spinner {
        use std::sync::atomic::{AtomicBool, Ordering};
        let stop = std::sync::Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            crate::pin_to_first_core();
            while !flag.load(Ordering::Relaxed) {
                std::hint::spin_loop();
            }
        });
        Spinner { stop, thread: Some(thread) }
    }
}

impl Drop for Spinner {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Waits up to `limit` for a second in which all CPUs together are less than 10% busy;
/// returns whether one came. The figures come from the aggregate line of `/proc/stat`.
fn wait_for_quiet(limit: Duration) -> bool {
    let start = Instant::now();
    while start.elapsed() < limit {
        let Some(before) = cpu_times() else { return false };
        std::thread::sleep(Duration::from_secs(1));
        let Some(after) = cpu_times() else { return false };
        let total = after.0.saturating_sub(before.0);
        let idle = after.1.saturating_sub(before.1);
        if total > 0 && (total - idle) * 10 < total {
            return true;
        }
    }
    false
}

/// Returns (total, idle) jiffies of all CPUs, idle counting iowait too.
fn cpu_times() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let line = stat.lines().next()?.strip_prefix("cpu ")?;
    let fields: Vec<u64> = line.split_whitespace().filter_map(|f| f.parse().ok()).collect();
    let idle = fields.get(3)? + fields.get(4)?;
    Some((fields.iter().sum(), idle))
}

/// Returns the CPU time the calling thread has used.
fn thread_cpu_time() -> Result<Duration, String> {
    crate::clock::thread_cpu_time().ok_or("failed to read the thread CPU time".to_string())
}

/// Runs the library over `size` for `suite`, its worker on `core`. Returns the wall-clock
/// rate parsed from the benchmark's CSV output, and the rate per second of the worker
/// lcore's CPU time sampled while the process runs.
fn run_library(
    options: &Options,
    suite: Suite,
    size: usize,
    core: Option<usize>,
) -> Result<Rate, String> {
    let (algorithm, key_len) = match suite {
        Suite::AesCbc256HmacSha384 => ("sha2-384-hmac", "48"),
        Suite::AesCbc256HmacSha512 => ("sha2-512-hmac", "64"),
    };
    let worker = core.unwrap_or(1);
    let prefix = format!("svrbench-mb-{}", std::process::id());
    let size_arg = size.to_string();
    let ops = options.library_ops.to_string();
    let lcores = format!("0@0,1@{worker}");
    let child = Command::new(&options.crypto_perf)
        .args(["--no-huge", "--no-pci", "-m", "512", "--file-prefix", &prefix])
        .args(["--lcores", &lcores, "--vdev", "crypto_aesni_mb", "--log-level", "error", "--"])
        .args(["--ptest", "throughput", "--devtype", "crypto_aesni_mb"])
        .args(["--optype", "cipher-then-auth", "--cipher-algo", "aes-cbc"])
        .args(["--cipher-op", "encrypt", "--cipher-key-sz", "32", "--cipher-iv-sz", "16"])
        .args(["--auth-algo", algorithm, "--auth-op", "generate"])
        .args(["--auth-key-sz", key_len, "--digest-sz", key_len])
        .args(["--buffer-sz", &size_arg, "--burst-sz", "32", "--total-ops", &ops])
        .args(["--silent", "--csv-friendly"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let result = child
        .map_err(|e| format!("{} failed to start: {e}", options.crypto_perf))
        .and_then(|child| watch_library(child, &options.crypto_perf));
    // The EAL leaves its runtime folder behind; it is this process's own prefix.
    let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{prefix}"));
    let (stdout, worker_cpu) = result?;
    let figures = parse_library_csv(&stdout)?;
    let &(_, gbps) = figures
        .iter()
        .find(|(s, _)| *s == size)
        .ok_or(format!("the crypto benchmark printed no result for {size} B"))?;
    let bits = options.library_ops as f64 * size as f64 * 8.0;
    let wall = Duration::from_secs_f64(bits / (gbps * 1e9).max(1e-9));
    Ok(Rate::of(bits, wall, worker_cpu))
}

/// Waits for the crypto benchmark to exit and samples the CPU time of its worker lcore every
/// millisecond meanwhile. Returns its standard output and the last CPU time sampled.
fn watch_library(
    mut child: std::process::Child,
    program: &str,
) -> Result<(String, Duration), String> {
    let read_all = |pipe: Option<Box<dyn Read + Send>>| {
        std::thread::spawn(move || {
            let mut text = String::new();
            if let Some(mut pipe) = pipe {
                let _ = pipe.read_to_string(&mut text);
            }
            text
        })
    };
    let stdout = read_all(child.stdout.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let stderr = read_all(child.stderr.take().map(|p| Box::new(p) as Box<dyn Read + Send>));
    let pid = child.id();
    let mut worker_cpu = None;
    let status = loop {
        if let Some(cpu) = worker_cpu_time(pid) {
            worker_cpu = Some(cpu);
        }
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => return Err(format!("{program}: failed to wait: {e}")),
        }
    };
    let stdout = stdout.join().unwrap_or_default();
    let stderr = stderr.join().unwrap_or_default();
    if !status.success() {
        let last = stderr.lines().last().unwrap_or("");
        return Err(format!("{program} exited with {status}: {last}"));
    }
    let worker_cpu =
        worker_cpu.ok_or(format!("no worker lcore thread found in {program} (pid {pid})"))?;
    Ok((stdout, worker_cpu))
}

/// Returns the CPU time of the DPDK worker lcore thread of process `pid`: the thread
/// whose name contains "worker" (`rte-worker-1` with the DPDK installed here), from the
/// first field of its `schedstat`, in nanoseconds.
fn worker_cpu_time(pid: u32) -> Option<Duration> {
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).ok()?;
    for task in tasks.flatten() {
        let path = task.path();
        let name = std::fs::read_to_string(path.join("comm")).unwrap_or_default();
        if !name.contains("worker") {
            continue;
        }
        let stat = std::fs::read_to_string(path.join("schedstat")).ok()?;
        let nanos: u64 = stat.split_whitespace().next()?.parse().ok()?;
        return Some(Duration::from_nanos(nanos));
    }
    None
}

/// Reads the (buffer size, Gbit/s) pairs of the throughput test's `--csv-friendly` table.
fn parse_library_csv(text: &str) -> Result<Vec<(usize, f64)>, String> {
    let header = text
        .lines()
        .find(|line| line.starts_with("#lcore id"))
        .ok_or("no CSV header in the crypto benchmark's output")?;
    let columns: Vec<&str> = header.split(',').collect();
    let column = |name: &str| {
        columns.iter().position(|c| *c == name).ok_or(format!("no {name} column in {header}"))
    };
    let size_column = column("Buffer Size(B)")?;
    let gbps_column = column("Throughput(Gbps)")?;

    let mut figures = Vec::new();
    for line in text.lines().filter(|l| l.chars().next().is_some_and(|c| c.is_ascii_digit())) {
        let fields: Vec<&str> = line.split(',').collect();
        if fields.len() != columns.len() {
            continue;
        }
        let size = fields[size_column].trim().parse::<usize>();
        let gbps = fields[gbps_column].trim().parse::<f64>();
        match (size, gbps) {
            (Ok(size), Ok(gbps)) => figures.push((size, gbps)),
            _ => return Err(format!("invalid result line in the crypto benchmark: {line}")),
        }
    }
    if figures.is_empty() {
        return Err("the crypto benchmark printed no results".into());
    }
    Ok(figures)
}

fn markdown(report: &Report, widths: &[Width]) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Core {:?}, clock estimated at {:.2} GHz; {} rounds ({} started quiet), {} ms per \
         svrd run (first core spinning: {}), {} library ops per size; bursts of {} packets \
         over {} sessions; Gbit/s of payload, median (min-max).\n\n",
        report.core,
        report.core_ghz,
        report.rounds,
        report.quiet_rounds,
        report.run_ms,
        report.spin_first_core,
        report.library_ops,
        report.burst,
        report.sessions
    ));
    out.push_str("| MAC | op | payload B | one-packet |");
    for width in widths {
        out.push_str(&format!(" burst {} |", width.name()));
    }
    out.push_str(" ipsec-mb | widest / ipsec-mb | widest / one-packet |\n");
    out.push_str("| --- | --- | ---: | ---: |");
    for _ in widths {
        out.push_str(" ---: |");
    }
    out.push_str(" ---: | ---: | ---: |\n");
    let cell = |s: &Summary| format!("{:.2} ({:.2}-{:.2})", s.median, s.min, s.max);
    for row in &report.rows {
        let single = cell(&row.single_gbps);
        out.push_str(&format!("| {} | {} | {} | {single} |", row.mac, row.operation, row.size));
        for (_, summary) in &row.burst_gbps {
            out.push_str(&format!(" {} |", cell(summary)));
        }
        let library = row.library_gbps.as_ref().map_or("n/a".to_string(), cell);
        let ratio = row.widest_over_library.map_or("n/a".to_string(), |r| format!("{r:.2}"));
        out.push_str(&format!(" {library} | {ratio} | {:.2} |\n", row.widest_over_single));
    }

    out.push_str(&format!(
        "\nPer second of CPU time of the working thread (load average {:.2} before, {:.2} \
         after):\n\n",
        report.load_average.0, report.load_average.1
    ));
    out.push_str(
        "| MAC | op | payload B | one-packet | widest burst | ipsec-mb | widest / ipsec-mb |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: |\n");
    for row in &report.rows {
        let library = row.cpu.library_gbps.as_ref().map_or("n/a".to_string(), cell);
        let ratio = row.cpu.widest_over_library.map_or("n/a".to_string(), |r| format!("{r:.2}"));
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {library} | {ratio} |\n",
            row.mac,
            row.operation,
            row.size,
            cell(&row.cpu.single_gbps),
            cell(&row.cpu.widest_gbps),
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn library_csv_parses() {
        let text = "Allocated pool\n#lcore id,Buffer Size(B),Burst Size,Enqueued,Dequeued,\
                    Failed Enq,Failed Deq,Ops(Millions),Throughput(Gbps),Cycles/Buf\n\n\
                    1,64,32,1000000,1000000,0,0,3.582,1.834,725.793\n\
                    1,1424,32,1000000,1000000,0,0,0.637,7.262,4078.523\n";
        assert_eq!(parse_library_csv(text).unwrap(), vec![(64, 1.834), (1424, 7.262)]);
    }

    #[test]
    fn library_csv_without_header() {
        assert!(parse_library_csv("1,64,32\n").unwrap_err().contains("no CSV header"));
    }

    #[test]
    fn library_csv_bad_number() {
        let text = "#lcore id,Buffer Size(B),Throughput(Gbps)\n1,64,fast\n";
        assert!(parse_library_csv(text).unwrap_err().contains("invalid result line"));
    }

    #[test]
    fn library_csv_without_rows() {
        let text = "#lcore id,Buffer Size(B),Throughput(Gbps)\n";
        assert!(parse_library_csv(text).unwrap_err().contains("no results"));
    }
}
