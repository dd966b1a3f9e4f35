//! Forwarded packets per second and latency through two routers (r1 seals, r2 opens),
//! over the memory backend, DPDK `net_ring` ports and AF_XDP on veth, each next to its
//! reference measured in the same run:
//! - memory and DPDK ring: the crypto-only rate of the same payload (one seal and one open
//!   per packet on one core, no I/O, no sessions), which bounds what the two workers can
//!   reach together;
//! - AF_XDP: dpdk-testpmd's `io` forwarding between the same two veth interfaces.
//!
//! The memory and ring legs run both workers and the generator on one thread and time the
//! workers' polls apart from the rest (see [`crate::pipeline`]).

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use svr_dataplane::crypto::mb::Width;
use svr_dataplane::crypto::{
    Direction, PayloadSecret, SessionKeys, open_fast_path, seal_fast_path,
};
use svr_dataplane::forward::{CryptoPath, EngineConfig};
use svr_dataplane::io::mem::{MemConfig, mem_pair};
use svr_dataplane::replay::ReplayWindow;
use svr_dataplane::session::SESSION_SUITE;

use crate::generator::{Generator, SizeMix};
use crate::pipeline::{Pipeline, RunSample, Wiring, boxed};
use crate::probe::HEADERS_LEN;
use crate::receiver::{Latency, Receiver, latency_of, new_histogram};
use crate::stats::Summary;
use crate::topology::{FORWARD, REVERSE, Router, engine_config, router_worker_with};

#[derive(clap::Args)]
pub struct Options {
    /// Legs to run: mem, dpdk (needs the dpdk feature and root), afxdp (needs root).
    #[arg(long, value_delimiter = ',', default_value = "mem")]
    pub backends: Vec<String>,
    /// Frame sizes in bytes, without the frame check sequence.
    #[arg(long, value_delimiter = ',', default_value = "64,1400", value_parser = crate::frame_size)]
    pub sizes: Vec<usize>,
    /// Crypto paths of the memory leg's workers: single (one packet at a time), burst (the
    /// multi-buffer engine at the widest width this CPU runs), or both. With both, each
    /// size is measured with one and then the other.
    #[arg(long, value_delimiter = ',', default_value = "single,burst")]
    pub crypto_paths: Vec<String>,
    /// Flows the generator cycles through.
    #[arg(long, value_parser = crate::at_least_one::<u16>, default_value_t = 4)]
    pub flows: u16,
    /// Length of one timed run, in milliseconds.
    #[arg(long, value_parser = crate::at_least_one::<u64>, default_value_t = 500)]
    pub run_ms: u64,
    /// Runs per leg and size; the report gives their median and spread.
    #[arg(long, value_parser = crate::at_least_one::<usize>, default_value_t = 5)]
    pub runs: usize,
    /// Short runs (100 ms, 2 runs) for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Output path of the JSON results.
    #[arg(long, default_value = "target/bench/forward.json")]
    pub json: PathBuf,
    /// Output path of the Markdown table.
    #[arg(long, default_value = "target/bench/forward.md")]
    pub markdown: PathBuf,
}

impl Options {
    fn timing(&self) -> (Duration, usize) {
        if self.quick {
            (Duration::from_millis(100), 2)
        } else {
            (Duration::from_millis(self.run_ms), self.runs)
        }
    }
}

/// One leg and size.
#[derive(Debug, Serialize)]
pub struct Row {
    pub backend: String,
    /// Crypto path of the workers: `single`, or `burst` and the HMAC lane width.
    pub crypto_path: String,
    pub frame_bytes: usize,
    pub flows: u16,
    /// Packets per second through both routers, wall clock of the whole loop.
    pub pipeline_pps: Summary,
    /// Packets per second of each worker over the time it spent polling (memory and DPDK
    /// legs; zero for AF_XDP, where both routers share one thread).
    pub r1_pps: Summary,
    pub r2_pps: Summary,
    /// Worker time per packet, both routers together, in nanoseconds (zero for AF_XDP).
    pub worker_ns_per_packet: f64,
    /// The reference, by leg: seal+open pairs per second (mem, dpdk) or testpmd's
    /// forwarded packets per second (afxdp).
    pub reference_pps: Summary,
    pub reference: String,
    /// mem and dpdk: worker time per packet over crypto time per packet (target at most
    /// 1.2); afxdp: svrd's rate over testpmd's (target at least 0.8).
    pub ratio: f64,
    pub latency: Latency,
    pub r1_burst: Latency,
    pub r2_burst: Latency,
    pub lost: u64,
    pub drops: u64,
    /// Latency CDF points (µs, fraction), for the plot.
    pub cdf: Vec<(f64, f64)>,
}

#[derive(Serialize)]
struct Report {
    core: Option<usize>,
    /// One-minute load average before and after the runs.
    load_average: (f64, f64),
    runs: usize,
    run_ms: u64,
    rows: Vec<Row>,
}

pub fn run(options: &Options) -> Result<(), String> {
    let (run_time, runs) = options.timing();
    let load_before = crate::load_average();
    let mut rows = Vec::new();
    let mut core = None;
    for backend in &options.backends {
        match backend.as_str() {
            "mem" => {
                core = crate::pin_to_last_core();
                let paths: Vec<CryptoPath> = options
                    .crypto_paths
                    .iter()
                    .map(|name| parse_crypto_path(name))
                    .collect::<Result<_, _>>()?;
                for &size in &options.sizes {
                    for &path in &paths {
                        rows.push(memory_leg(size, options.flows, run_time, runs, path)?);
                    }
                }
            }
            "dpdk" => rows.extend(dpdk_legs(options, run_time, runs)?),
            "afxdp" => rows.extend(crate::afxdp::forward_legs(options, run_time, runs)?),
            other => return Err(format!("unknown backend {other:?}: expected mem, dpdk or afxdp")),
        }
    }
    for row in &rows {
        eprintln!(
            "{:<6} {:<15} {:>5} B  {:>10.0} pps  r1 {:>10.0}  r2 {:>10.0}  ref {:>10.0} ({})  ratio {:.2}  p99 {:.1} us",
            row.backend,
            row.crypto_path,
            row.frame_bytes,
            row.pipeline_pps.median,
            row.r1_pps.median,
            row.r2_pps.median,
            row.reference_pps.median,
            row.reference,
            row.ratio,
            row.latency.p99_us
        );
    }

    let load_average = (load_before, crate::load_average());
    eprintln!("load average {:.2} before, {:.2} after", load_average.0, load_average.1);
    let report = Report { core, load_average, runs, run_ms: run_time.as_millis() as u64, rows };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    let markdown = markdown(&report.rows);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

/// Reads a `--crypto-paths` entry.
fn parse_crypto_path(name: &str) -> Result<CryptoPath, String> {
    match name {
        "single" => Ok(CryptoPath::Single),
        "burst" => Ok(CryptoPath::Burst(Width::detect())),
        other => Err(format!("unknown crypto path {other:?}: expected single or burst")),
    }
}

/// Returns the report name of a crypto path.
pub fn crypto_path_name(path: CryptoPath) -> String {
    match path {
        CryptoPath::Single => "single".into(),
        CryptoPath::Burst(width) => format!("burst {}", width.name()),
    }
}

/// Runs the memory leg for one frame size, with the workers on crypto path `path`.
pub fn memory_leg(
    size: usize,
    flows: u16,
    run_time: Duration,
    runs: usize,
    path: CryptoPath,
) -> Result<Row, String> {
    let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
    let pair = || mem_pair(&config).map_err(|e| e.to_string());
    let (host1, r1_lan) = pair()?;
    let (r1_wan, r2_wan) = pair()?;
    let (r2_lan, host5) = pair()?;
    let sessions = usize::from(flows).max(16) * 2;
    let engine = EngineConfig { crypto: path, ..engine_config(sessions) };
    let mut pipeline = Pipeline {
        r1: router_worker_with(Router::Ingress, boxed(r1_lan), boxed(r1_wan), engine),
        r2: router_worker_with(Router::Egress, boxed(r2_lan), boxed(r2_wan), engine),
        wiring: Wiring::Paired { host1, host5 },
    };
    measure_leg("mem", &mut pipeline, size, flows, run_time, runs)
}

/// Runs `pipeline` and the crypto-only reference in alternating runs.
pub fn measure_leg(
    backend: &str,
    pipeline: &mut Pipeline,
    size: usize,
    flows: u16,
    run_time: Duration,
    runs: usize,
) -> Result<Row, String> {
    let drops_before = total_drops(pipeline);
    let crypto_path = crypto_path_name(pipeline.r1.worker.engine().config().crypto);
    let mix = SizeMix::Fixed(size);
    let mut forward = Generator::new(&FORWARD, flows, mix);
    let mut reverse = Generator::replies(&REVERSE, flows, mix);
    pipeline.warm_up(&mut forward, &mut reverse).map_err(|e| format!("{backend} {size} B: {e}"))?;
    let warm_sent = forward.sent().to_vec();

    let payload = size.saturating_sub(HEADERS_LEN);
    let mut reference = CryptoOnly::new(payload)?;
    // The warm-up went to a receiver of its own, so loss below covers the timed runs only.
    let mut sink = Receiver::new(flows);
    let mut samples: Vec<RunSample> = Vec::new();
    let mut crypto = Vec::new();
    for _ in 0..runs {
        samples.push(pipeline.run(&mut forward, &mut sink, run_time));
        crypto.push(reference.measure(run_time)?);
    }

    let sent_in_runs: Vec<u64> =
        forward.sent().iter().zip(&warm_sent).map(|(all, warm)| all - warm).collect();
    let totals = sink.totals(&sent_in_runs);
    let lost = totals.lost;
    let drops = total_drops(pipeline) - drops_before;

    let rate = |count: u64, time: Duration| count as f64 / time.as_secs_f64().max(1e-9);
    let pipeline_pps: Vec<f64> = samples.iter().map(|s| rate(s.delivered, s.wall)).collect();
    let r1_pps: Vec<f64> = samples.iter().map(|s| rate(s.delivered, s.r1_busy)).collect();
    let r2_pps: Vec<f64> = samples.iter().map(|s| rate(s.delivered, s.r2_busy)).collect();
    let delivered: u64 = samples.iter().map(|s| s.delivered).sum();
    let busy: Duration = samples.iter().map(|s| s.r1_busy + s.r2_busy).sum();
    let worker_ns = busy.as_nanos() as f64 / delivered.max(1) as f64;
    let reference_pps = Summary::of(&crypto);
    let crypto_ns = 1e9 / reference_pps.median.max(1.0);

    let mut r1_bursts = new_histogram();
    let mut r2_bursts = new_histogram();
    for sample in &samples {
        let _ = r1_bursts.add(&sample.r1_bursts);
        let _ = r2_bursts.add(&sample.r2_bursts);
    }
    Ok(Row {
        backend: backend.into(),
        crypto_path,
        frame_bytes: size,
        flows,
        pipeline_pps: Summary::of(&pipeline_pps),
        r1_pps: Summary::of(&r1_pps),
        r2_pps: Summary::of(&r2_pps),
        worker_ns_per_packet: worker_ns,
        reference_pps,
        reference: "seal+open".into(),
        ratio: worker_ns / crypto_ns,
        latency: sink.latency(),
        r1_burst: latency_of(&r1_bursts),
        r2_burst: latency_of(&r2_bursts),
        lost,
        drops,
        cdf: crate::receiver::cdf_points(sink.histogram()),
    })
}

fn ns_or_dash(ns: f64) -> String {
    if ns == 0.0 { "—".into() } else { format!("{ns:.0}") }
}

/// Packets both routers dropped so far.
fn total_drops(pipeline: &mut Pipeline) -> u64 {
    pipeline.r1.worker.engine().counters().total_drops()
        + pipeline.r2.worker.engine().counters().total_drops()
}

/// One seal and one open per packet of a session's payload, with no I/O or lookup.
struct CryptoOnly {
    keys: SessionKeys,
    window: ReplayWindow,
    buffer: Vec<u8>,
    payload: usize,
    number: u64,
}

impl CryptoOnly {
    fn new(payload: usize) -> Result<CryptoOnly, String> {
        let secret = PayloadSecret::generate().map_err(|e| e.to_string())?;
        let mut buffer = vec![0u8; payload + 16 + 8 + 64];
        buffer.iter_mut().enumerate().for_each(|(i, b)| *b = i as u8);
        Ok(CryptoOnly {
            keys: SessionKeys::derive(SESSION_SUITE, 0, &secret),
            window: ReplayWindow::new(),
            buffer,
            payload,
            number: 0,
        })
    }

    /// Seal+open pairs per second over `run_time`.
    fn measure(&mut self, run_time: Duration) -> Result<f64, String> {
        const BATCH: u64 = 64;
        let start = Instant::now();
        let mut packets = 0u64;
        while start.elapsed() < run_time {
            for _ in 0..BATCH {
                self.number += 1;
                let sealed = seal_fast_path(
                    &self.keys,
                    Direction::Forward,
                    self.number,
                    &mut self.buffer,
                    self.payload,
                )
                .map_err(|e| e.to_string())?;
                let opened = open_fast_path(
                    &self.keys,
                    Direction::Forward,
                    &mut self.window,
                    &mut self.buffer[..sealed],
                )
                .map_err(|e| e.to_string())?;
                black_box(&self.buffer[..opened]);
            }
            packets += BATCH;
        }
        Ok(packets as f64 / start.elapsed().as_secs_f64())
    }
}

#[cfg(feature = "dpdk")]
fn dpdk_legs(options: &Options, run_time: Duration, runs: usize) -> Result<Vec<Row>, String> {
    crate::dpdk::forward_legs(options, run_time, runs)
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_legs(_options: &Options, _run_time: Duration, _runs: usize) -> Result<Vec<Row>, String> {
    Err("the dpdk leg needs svr-bench built with --features dpdk".into())
}

fn markdown(rows: &[Row]) -> String {
    let mut out = String::new();
    out.push_str(
        "| backend | crypto | frame B | pipeline pps | r1 pps | r2 pps | worker ns/pkt | reference | reference pps | ratio | p50 µs | p99 µs | p99.9 µs | max µs | lost |\n",
    );
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in rows {
        out.push_str(&format!(
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} | {} |\n",
            row.backend,
            row.crypto_path,
            row.frame_bytes,
            summary_k(&row.pipeline_pps),
            summary_k(&row.r1_pps),
            summary_k(&row.r2_pps),
            ns_or_dash(row.worker_ns_per_packet),
            row.reference,
            summary_k(&row.reference_pps),
            row.ratio,
            row.latency.p50_us,
            row.latency.p99_us,
            row.latency.p999_us,
            row.latency.max_us,
            row.lost,
        ));
    }

    out.push_str(&path_comparison(rows));

    out.push_str("\nTime of one `poll_once` that received frames, per worker, in µs:\n\n");
    out.push_str("| backend | crypto | frame B | worker | p50 | p99 | p99.9 | max |\n");
    out.push_str("| --- | --- | ---: | --- | ---: | ---: | ---: | ---: |\n");
    for row in rows.iter().filter(|row| row.r1_burst.max_us > 0.0) {
        for (worker, burst) in [("r1", &row.r1_burst), ("r2", &row.r2_burst)] {
            out.push_str(&format!(
                "| {} | {} | {} | {} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
                row.backend,
                row.crypto_path,
                row.frame_bytes,
                worker,
                burst.p50_us,
                burst.p99_us,
                burst.p999_us,
                burst.max_us
            ));
        }
    }
    out
}

/// Compares the burst path with the one-packet path, for each backend and size measured
/// both ways: worker time per packet of the burst path over that of the one-packet path.
fn path_comparison(rows: &[Row]) -> String {
    let mut out = String::new();
    for single in rows.iter().filter(|row| row.crypto_path == "single") {
        let burst = rows.iter().find(|row| {
            row.backend == single.backend
                && row.frame_bytes == single.frame_bytes
                && row.crypto_path.starts_with("burst")
        });
        let Some(burst) = burst else { continue };
        if out.is_empty() {
            out.push_str("\nWorker time per packet, burst path over one-packet path:\n\n");
            out.push_str("| backend | frame B | burst | time ratio | ratio to crypto-only, single | burst |\n");
            out.push_str("| --- | ---: | --- | ---: | ---: | ---: |\n");
        }
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} | {:.2} | {:.2} |\n",
            single.backend,
            single.frame_bytes,
            burst.crypto_path,
            burst.worker_ns_per_packet / single.worker_ns_per_packet.max(1e-9),
            single.ratio,
            burst.ratio,
        ));
    }
    out
}

/// Formats a rate summary in thousands as `median (min-max)`, or a dash when nothing was
/// measured.
pub fn summary_k(summary: &Summary) -> String {
    if summary.median == 0.0 {
        return "—".into();
    }
    format!("{:.0}k ({:.0}-{:.0})", summary.median / 1e3, summary.min / 1e3, summary.max / 1e3)
}
