//! Key-exchange handshakes per second for every algorithm and size, and Diffie-Hellman
//! agreements per second against OpenSSL's finite-field DH in the same run.
//!
//! A handshake is the whole ESKM exchange between two routers, as the simulation harness
//! runs it with the real crypto: certificate exchange, salts, peer key (DH and/or
//! ML-KEM), metadata keys and acknowledgements, every message signed with ECDSA P-256 and
//! verified. Its rate counts the CPU of both routers on one core. A DH agreement is one
//! side's share of a DH exchange: a fresh key pair, the check of the peer's value and the
//! shared secret; that is the work `openssl speed ffdh` measures, done here through the
//! openssl crate on the same MODP groups.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use openssl::bn::BigNum;
use openssl::dh::Dh;
use serde::Serialize;
use svr_control::kex::dh::{DhGroup, DhKeyPair};
use svr_control::kex::sim::{Sim, SimConfig};
use svr_control::kex::{KexAlgorithm, MlKemLevel};

use crate::stats::Summary;

#[derive(clap::Args)]
pub struct Options {
    /// Length of one timed run, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    run_ms: u64,
    /// Runs per case; the report gives their median and spread.
    #[arg(long, default_value_t = 3)]
    runs: usize,
    /// Where to write the results as JSON.
    #[arg(long, default_value = "target/bench/handshake.json")]
    json: PathBuf,
    /// Where to write the results as a Markdown table.
    #[arg(long, default_value = "target/bench/handshake.md")]
    markdown: PathBuf,
}

#[derive(Serialize)]
struct HandshakeRow {
    algorithm: String,
    per_second: Summary,
}

#[derive(Serialize)]
struct AgreementRow {
    group: u16,
    svrd_per_second: Summary,
    openssl_per_second: Summary,
    ratio: f64,
}

pub fn run(options: &Options) -> Result<(), String> {
    let core = crate::pin_to_last_core();
    eprintln!("{}", crate::pinning(core));
    let run_time = Duration::from_millis(options.run_ms);

    let algorithms = [
        KexAlgorithm::DiffieHellman(DhGroup::Modp1024),
        KexAlgorithm::DiffieHellman(DhGroup::Modp2048),
        KexAlgorithm::DiffieHellman(DhGroup::Modp4096),
        KexAlgorithm::MlKem(MlKemLevel::MlKem512),
        KexAlgorithm::MlKem(MlKemLevel::MlKem768),
        KexAlgorithm::MlKem(MlKemLevel::MlKem1024),
        KexAlgorithm::Hybrid(DhGroup::Modp2048, MlKemLevel::MlKem768),
        KexAlgorithm::Hybrid(DhGroup::Modp4096, MlKemLevel::MlKem1024),
    ];
    let mut handshakes = Vec::new();
    for algorithm in algorithms {
        let samples = (0..options.runs)
            .map(|run| handshakes_per_second(algorithm, run as u64, run_time))
            .collect::<Result<Vec<_>, _>>()?;
        let row =
            HandshakeRow { algorithm: algorithm.to_string(), per_second: Summary::of(&samples) };
        eprintln!("{:<28} {:>9.1} handshakes/s", row.algorithm, row.per_second.median);
        handshakes.push(row);
    }

    let mut agreements = Vec::new();
    for group in DhGroup::ALL {
        let mut ours = Vec::new();
        let mut theirs = Vec::new();
        for _ in 0..options.runs {
            ours.push(svrd_agreements_per_second(group, run_time)?);
            theirs.push(openssl_agreements_per_second(group, run_time).map_err(|e| e.to_string())?);
        }
        let (svrd, openssl) = (Summary::of(&ours), Summary::of(&theirs));
        let row = AgreementRow {
            group: group.bits(),
            ratio: svrd.median / openssl.median,
            svrd_per_second: svrd,
            openssl_per_second: openssl,
        };
        eprintln!(
            "MODP-{:<5} svrd {:>8.1}/s  openssl {:>8.1}/s  ratio {:.2}",
            row.group, row.svrd_per_second.median, row.openssl_per_second.median, row.ratio
        );
        agreements.push(row);
    }

    let json =
        serde_json::json!({ "core": core, "handshakes": handshakes, "dh_agreements": agreements });
    crate::write_file(
        &options.json,
        &serde_json::to_string_pretty(&json).map_err(|e| e.to_string())?,
    )?;
    let markdown = markdown(&handshakes, &agreements, options);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

/// Runs complete two-router exchanges back to back for about `run_time`.
fn handshakes_per_second(
    algorithm: KexAlgorithm,
    seed: u64,
    run_time: Duration,
) -> Result<f64, String> {
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < run_time || count == 0 {
        let mut sim = Sim::new(SimConfig::new(seed * 1_000_003 + count, algorithm))
            .map_err(|e| e.to_string())?;
        if sim.run_until_complete(Duration::from_secs(60)).is_none() {
            return Err(format!("{algorithm}: exchange did not complete"));
        }
        count += 1;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn svrd_agreements_per_second(group: DhGroup, run_time: Duration) -> Result<f64, String> {
    let mut rng = rand::rng();
    let peer = DhKeyPair::generate(group, &mut rng);
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < run_time || count == 0 {
        let ours = DhKeyPair::generate(group, &mut rng);
        let secret = ours.agree(peer.public(), &mut rng).map_err(|e| e.to_string())?;
        std::hint::black_box(&secret);
        count += 1;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn openssl_agreements_per_second(
    group: DhGroup,
    run_time: Duration,
) -> Result<f64, openssl::error::ErrorStack> {
    let prime = || match group.bits() {
        1024 => BigNum::get_rfc2409_prime_1024(),
        2048 => BigNum::get_rfc3526_prime_2048(),
        _ => BigNum::get_rfc3526_prime_4096(),
    };
    let params = || Dh::from_pqg(prime()?, None, BigNum::from_u32(2)?);
    let peer = params()?.generate_key()?;
    let peer_public = peer.public_key().to_owned()?;
    let start = Instant::now();
    let mut count = 0u64;
    while start.elapsed() < run_time || count == 0 {
        let ours = params()?.generate_key()?;
        std::hint::black_box(ours.compute_key(&peer_public)?);
        count += 1;
    }
    Ok(count as f64 / start.elapsed().as_secs_f64())
}

fn markdown(handshakes: &[HandshakeRow], agreements: &[AgreementRow], options: &Options) -> String {
    let mut out =
        format!("{} runs of {} ms per case; median (min-max).\n\n", options.runs, options.run_ms);
    out.push_str("| algorithm | full handshakes/s (both routers, one core) |\n| --- | ---: |\n");
    for row in handshakes {
        let s = row.per_second;
        out.push_str(&format!(
            "| {} | {:.1} ({:.1}-{:.1}) |\n",
            row.algorithm, s.median, s.min, s.max
        ));
    }
    out.push_str("\n| group | svrd DH agreements/s | OpenSSL FFDH agreements/s | ratio |\n| --- | ---: | ---: | ---: |\n");
    for row in agreements {
        let (a, b) = (row.svrd_per_second, row.openssl_per_second);
        out.push_str(&format!(
            "| MODP-{} | {:.1} ({:.1}-{:.1}) | {:.1} ({:.1}-{:.1}) | {:.2} |\n",
            row.group, a.median, a.min, a.max, b.median, b.min, b.max, row.ratio
        ));
    }
    out
}
