//! Seal and open throughput per core, svrd against OpenSSL doing the same per-packet work.
//!
//! Both sides do, per packet: derive the IV with one AES block, AES-256-CBC with PKCS#7
//! padding, HMAC over ciphertext and sequence field. Opening verifies the tag in constant
//! time and then decrypts. Keys are expanded once, outside the timed loops. The two
//! implementations are measured in alternating runs so that drift in the machine's clock
//! or load affects both alike.

use std::hint::black_box;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use svr_dataplane::crypto::{
    Direction, OpenError, PayloadSecret, SessionKeys, Suite, open_fast_path, seal_fast_path,
};
use svr_dataplane::replay::ReplayWindow;

use crate::openssl_ref::OpensslSealer;
use crate::stats::Summary;

/// Payload sizes measured, in bytes. 1424 is a 1400-byte packet's payload rounded to the
/// AES block, the size the external anchors use.
const SIZES: [usize; 5] = [64, 256, 512, 1024, 1424];

#[derive(clap::Args)]
pub struct Options {
    /// Length of one timed run, in milliseconds.
    #[arg(long, default_value_t = 300)]
    run_ms: u64,
    /// Runs per implementation and case; the report gives their median and spread.
    #[arg(long, default_value_t = 7)]
    runs: usize,
    /// Which run of each cell the ratio and cycles per byte use: `median` on a quiet
    /// machine, `best` (the fastest run) when other work shares the cores, since a short
    /// run that was never preempted shows what the code costs.
    #[arg(long, value_enum, default_value_t = Statistic::Median)]
    statistic: Statistic,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/crypto.json")]
    json: PathBuf,
    /// Where to write the results as a Markdown table.
    #[arg(long, default_value = "target/bench/crypto.md")]
    markdown: PathBuf,
}

/// The run of a cell that stands for it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize)]
#[serde(rename_all = "lowercase")]
enum Statistic {
    Median,
    Best,
}

impl Statistic {
    fn pick(self, summary: &Summary) -> f64 {
        match self {
            Statistic::Median => summary.median,
            Statistic::Best => summary.max,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Statistic::Median => "median",
            Statistic::Best => "best",
        }
    }
}

#[derive(Serialize)]
struct Row {
    mac: &'static str,
    operation: &'static str,
    size: usize,
    svrd_gbps: Summary,
    openssl_gbps: Summary,
    svrd_cycles_per_byte: f64,
    openssl_cycles_per_byte: f64,
    ratio: f64,
}

#[derive(Serialize)]
struct Report {
    core: Option<usize>,
    core_ghz: f64,
    runs: usize,
    run_ms: u64,
    statistic: Statistic,
    sha512: &'static str,
    rows: Vec<Row>,
}

pub fn run(options: &Options) -> Result<(), String> {
    let core = crate::pin_to_last_core();
    let ghz = crate::clock::core_ghz();
    let sha512 = svr_dataplane::crypto::sha512_variant();
    eprintln!(
        "{}, core clock estimated at {ghz:.2} GHz, SHA-512 variant {sha512}",
        crate::pinning(core)
    );
    let pick = |summary: &Summary| options.statistic.pick(summary);

    let run_time = Duration::from_millis(options.run_ms);
    let mut rows = Vec::new();
    for suite in [Suite::AesCbc256HmacSha384, Suite::AesCbc256HmacSha512] {
        for &size in &SIZES {
            for operation in [Operation::Seal, Operation::Open] {
                let mut case = Case::new(suite, size).map_err(|e| e.to_string())?;
                case.check_agreement().map_err(|e| format!("{} {size}: {e}", suite_name(suite)))?;
                let mut ours = Vec::new();
                let mut theirs = Vec::new();
                for _ in 0..options.runs {
                    ours.push(case.measure(operation, Side::Svrd, run_time)?);
                    theirs.push(case.measure(operation, Side::Openssl, run_time)?);
                }
                let svrd_gbps = Summary::of(&ours);
                let openssl_gbps = Summary::of(&theirs);
                let row = Row {
                    mac: suite_name(suite),
                    operation: operation.name(),
                    size,
                    svrd_cycles_per_byte: ghz * 8.0 / pick(&svrd_gbps),
                    openssl_cycles_per_byte: ghz * 8.0 / pick(&openssl_gbps),
                    ratio: pick(&svrd_gbps) / pick(&openssl_gbps),
                    svrd_gbps,
                    openssl_gbps,
                };
                eprintln!(
                    "{:<12} {:<4} {:>5} B  svrd {:>6.2} Gbit/s  openssl {:>6.2} Gbit/s  ratio {:.2}",
                    row.mac,
                    row.operation,
                    size,
                    pick(&row.svrd_gbps),
                    pick(&row.openssl_gbps),
                    row.ratio
                );
                rows.push(row);
            }
        }
    }

    let report = Report {
        core,
        core_ghz: ghz,
        runs: options.runs,
        run_ms: options.run_ms,
        statistic: options.statistic,
        sha512,
        rows,
    };
    let json = serde_json::to_string_pretty(&report).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    let markdown = markdown(&report);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

#[derive(Clone, Copy)]
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

#[derive(Clone, Copy)]
enum Side {
    Svrd,
    Openssl,
}

/// One suite and payload size, with both implementations keyed and buffers ready.
struct Case {
    size: usize,
    keys: SessionKeys,
    openssl: OpensslSealer,
    plain: Vec<u8>,
    work: Vec<u8>,
    svrd_sealed: Vec<u8>,
    openssl_sealed: Vec<u8>,
}

impl Case {
    fn new(suite: Suite, size: usize) -> Result<Case, Box<dyn std::error::Error>> {
        let keys = SessionKeys::derive(suite, 0, &PayloadSecret::generate()?);
        let mut aes_key = [0u8; 32];
        let mut mac_key = [0u8; 64];
        getrandom::fill(&mut aes_key).map_err(|e| e.to_string())?;
        getrandom::fill(&mut mac_key).map_err(|e| e.to_string())?;
        let openssl = OpensslSealer::new(&aes_key, &mac_key[..suite.tag_len()], suite.tag_len())?;

        let mut plain = vec![0u8; size];
        getrandom::fill(&mut plain).map_err(|e| e.to_string())?;
        let capacity = size + 16 + 8 + 64;
        let mut case = Case {
            size,
            keys,
            openssl,
            plain,
            work: vec![0; capacity],
            svrd_sealed: vec![0; capacity],
            openssl_sealed: vec![0; capacity],
        };

        case.svrd_sealed[..size].copy_from_slice(&case.plain);
        let n = seal_fast_path(&case.keys, Direction::Forward, 1, &mut case.svrd_sealed, size)?;
        case.svrd_sealed.truncate(n);
        let n = case.openssl.seal(1, &case.plain, &mut case.openssl_sealed)?;
        case.openssl_sealed.truncate(n);
        Ok(case)
    }

    /// Checks that both sides seal to the same length and open what they sealed, so the
    /// figures compare the same work.
    fn check_agreement(&mut self) -> Result<(), String> {
        if self.svrd_sealed.len() != self.openssl_sealed.len() {
            return Err(format!(
                "sealed lengths differ: svrd {}, openssl {}",
                self.svrd_sealed.len(),
                self.openssl_sealed.len()
            ));
        }
        let mut out = vec![0u8; self.size + 32];
        let opened =
            self.openssl.open(&self.openssl_sealed.clone(), &mut out).map_err(|e| e.to_string())?;
        if opened.map(|n| &out[..n]) != Some(&self.plain[..]) {
            return Err("openssl did not open its own packet".into());
        }
        self.work.clear();
        self.work.extend_from_slice(&self.svrd_sealed);
        let n = svrd_open(&self.keys, &mut self.work).map_err(|e| e.to_string())?;
        if self.work[..n] != self.plain[..] {
            return Err("svrd did not open its own packet".into());
        }
        Ok(())
    }

    /// Runs one operation for about `run_time`; returns payload Gbit/s.
    fn measure(
        &mut self,
        operation: Operation,
        side: Side,
        run_time: Duration,
    ) -> Result<f64, String> {
        const BATCH: u64 = 256;
        let start = Instant::now();
        let mut packets = 0u64;
        let mut number = 1u64;
        while start.elapsed() < run_time {
            for _ in 0..BATCH {
                number += 1;
                self.once(operation, side, number)?;
            }
            packets += BATCH;
        }
        let seconds = start.elapsed().as_secs_f64();
        Ok(packets as f64 * self.size as f64 * 8.0 / seconds / 1e9)
    }

    fn once(&mut self, operation: Operation, side: Side, number: u64) -> Result<(), String> {
        let size = self.size;
        match (operation, side) {
            (Operation::Seal, Side::Svrd) => {
                // Sealing in place re-encrypts the previous ciphertext, which costs the same.
                self.work.resize(self.svrd_sealed.len(), 0);
                let n =
                    seal_fast_path(&self.keys, Direction::Forward, number, &mut self.work, size)
                        .map_err(|e| e.to_string())?;
                black_box(&self.work[..n]);
            }
            (Operation::Seal, Side::Openssl) => {
                self.work.resize(self.openssl_sealed.len(), 0);
                let n = self
                    .openssl
                    .seal(number, &self.plain, &mut self.work)
                    .map_err(|e| e.to_string())?;
                black_box(&self.work[..n]);
            }
            (Operation::Open, Side::Svrd) => {
                // Opening is destructive, so each packet starts from a copy.
                self.work.clear();
                self.work.extend_from_slice(&self.svrd_sealed);
                let n = svrd_open(&self.keys, &mut self.work).map_err(|e| e.to_string())?;
                black_box(&self.work[..n]);
            }
            (Operation::Open, Side::Openssl) => {
                self.work.resize(size + 32, 0);
                let opened = self
                    .openssl
                    .open(&self.openssl_sealed, &mut self.work)
                    .map_err(|e| e.to_string())?
                    .ok_or("openssl rejected its own packet")?;
                black_box(&self.work[..opened]);
            }
        }
        Ok(())
    }
}

/// The open path of a session packet, with a fresh window standing in for the session's.
fn svrd_open(keys: &SessionKeys, packet: &mut [u8]) -> Result<usize, OpenError> {
    open_fast_path(keys, Direction::Forward, &mut ReplayWindow::new(), packet)
}

fn suite_name(suite: Suite) -> &'static str {
    suite.mac().name()
}

fn markdown(report: &Report) -> String {
    let mut out = String::new();
    out.push_str(&format!(
        "Core {:?}, clock estimated at {:.2} GHz, SHA-512 variant {}; {} runs of {} ms per \
         cell; median (min-max); cycles per byte and ratio from the {} run.\n\n",
        report.core,
        report.core_ghz,
        report.sha512,
        report.runs,
        report.run_ms,
        report.statistic.name()
    ));
    out.push_str("| MAC | op | payload B | svrd Gbit/s | OpenSSL Gbit/s | svrd c/B | OpenSSL c/B | ratio |\n");
    out.push_str("| --- | --- | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for row in &report.rows {
        out.push_str(&format!(
            "| {} | {} | {} | {:.2} ({:.2}-{:.2}) | {:.2} ({:.2}-{:.2}) | {:.2} | {:.2} | {:.2} |\n",
            row.mac,
            row.operation,
            row.size,
            row.svrd_gbps.median,
            row.svrd_gbps.min,
            row.svrd_gbps.max,
            row.openssl_gbps.median,
            row.openssl_gbps.min,
            row.openssl_gbps.max,
            row.svrd_cycles_per_byte,
            row.openssl_cycles_per_byte,
            row.ratio
        ));
    }
    out
}
