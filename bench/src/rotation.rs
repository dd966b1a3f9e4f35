//! Latency through two routers while every session's payload key rotates, next to the same
//! traffic in steady state, in alternating runs of one process.
//!
//! Both routers run on memory ports in lockstep, as in the forwarding benchmark's memory
//! leg. Each round has a steady run and a rotating run of the same length. The rotating run
//! starts a payload-key rotation on every session of the ingress, so its packets carry the
//! new key in metadata until the egress acknowledges it, and the ingress switches keys once
//! the grace time has passed. Host5 sends a few replies after every forward burst in both
//! runs, so the two differ only in the rotation. Any key-related drop fails the benchmark,
//! since a rotation must not lose packets.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;
use svr_dataplane::io::mem::{MemConfig, mem_pair};

use crate::generator::{Generator, SizeMix};
use crate::pipeline::{Pipeline, Wiring, boxed};
use crate::receiver::{Latency, Receiver};
use crate::topology::{FORWARD, REVERSE, Router, engine_config, router_worker_with};

#[derive(clap::Args)]
pub struct Options {
    /// Frame sizes in bytes, without the frame check sequence.
    #[arg(long, value_delimiter = ',', default_value = "64,1400", value_parser = crate::frame_size)]
    pub sizes: Vec<usize>,
    /// Flows, and so sessions, that rotate together.
    #[arg(long, value_parser = crate::at_least_one::<u16>, default_value_t = 64)]
    pub flows: u16,
    /// Length of each steady and each rotating run, in milliseconds.
    #[arg(long, value_parser = crate::at_least_one::<u64>, default_value_t = 1000)]
    pub run_ms: u64,
    /// Rounds of one steady and one rotating run each.
    #[arg(long, value_parser = crate::at_least_one::<usize>, default_value_t = 3)]
    pub rounds: usize,
    /// Short runs for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Output path of the JSON results.
    #[arg(long, default_value = "target/bench/rotation.json")]
    pub json: PathBuf,
    /// Output path of the Markdown table.
    #[arg(long, default_value = "target/bench/rotation.md")]
    pub markdown: PathBuf,
}

/// Replies host5 sends after each forward burst of 32.
const REPLIES: usize = 4;

/// One frame size's figures.
#[derive(Debug, Serialize)]
pub struct Row {
    pub frame_bytes: usize,
    pub flows: u16,
    pub steady: Latency,
    pub rotating: Latency,
    /// p99 while rotating over p99 in steady state.
    pub p99_ratio: f64,
    /// Rotations the ingress started, and key switches both routers made.
    pub rotations_started: u64,
    pub key_switches: u64,
    pub steady_lost: u64,
    pub rotating_lost: u64,
    pub key_drops: u64,
}

pub fn run(options: &Options) -> Result<(), String> {
    let (run_time, rounds) = if options.quick {
        (Duration::from_millis(150), 1)
    } else {
        (Duration::from_millis(options.run_ms), options.rounds)
    };
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let row = measure(size, options.flows.max(1), run_time, rounds)?;
        println!(
            "rotation {size} B: p99 {:.1} us steady, {:.1} us rotating ({:.2}x); {} rotations, \
             {} key switches, {} key drops, lost {} / {}",
            row.steady.p99_us,
            row.rotating.p99_us,
            row.p99_ratio,
            row.rotations_started,
            row.key_switches,
            row.key_drops,
            row.steady_lost,
            row.rotating_lost,
        );
        rows.push(row);
    }
    let json = serde_json::to_string_pretty(&rows).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    crate::write_file(&options.markdown, &markdown(&rows))?;
    if let Some(row) = rows.iter().find(|row| row.key_drops > 0) {
        return Err(format!(
            "{} key-related drops during the {} B rotation runs",
            row.key_drops, row.frame_bytes
        ));
    }
    Ok(())
}

/// Runs `rounds` of a steady and a rotating run at frame size `size`.
fn measure(size: usize, flows: u16, run_time: Duration, rounds: usize) -> Result<Row, String> {
    let config = MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 };
    let pair = || mem_pair(&config).map_err(|e| e.to_string());
    let (host1, r1_lan) = pair()?;
    let (r1_wan, r2_wan) = pair()?;
    let (r2_lan, host5) = pair()?;
    // A grace time well inside one run, so every rotating run includes the switch.
    let mut engine = engine_config(usize::from(flows).max(16) * 2);
    engine.rotation_grace = run_time / 4;
    let mut pipeline = Pipeline {
        r1: router_worker_with(Router::Ingress, boxed(r1_lan), boxed(r1_wan), engine),
        r2: router_worker_with(Router::Egress, boxed(r2_lan), boxed(r2_wan), engine),
        wiring: Wiring::Paired { host1, host5 },
    };
    let mix = SizeMix::Fixed(size);
    let mut forward = Generator::new(&FORWARD, flows, mix);
    let mut reverse = Generator::replies(&REVERSE, flows, mix);
    pipeline.warm_up(&mut forward, &mut reverse).map_err(|e| format!("{size} B: {e}"))?;

    let counters = |pipeline: &mut Pipeline| {
        let r1 = pipeline.r1.worker.engine().counters().clone();
        let r2 = pipeline.r2.worker.engine().counters().clone();
        (r1, r2)
    };
    let (r1_before, r2_before) = counters(&mut pipeline);
    let mut steady = Receiver::new(flows);
    let mut rotating = Receiver::new(flows);
    let (mut steady_sent, mut rotating_sent) = (vec![0; flows.into()], vec![0; flows.into()]);
    for _ in 0..rounds {
        let before = forward.sent().to_vec();
        pipeline.run_with_replies(&mut forward, &mut reverse, REPLIES, &mut steady, run_time);
        add_sent(&mut steady_sent, forward.sent(), &before);

        let before = forward.sent().to_vec();
        pipeline.r1.worker.engine().rotate_all(Instant::now());
        pipeline.run_with_replies(&mut forward, &mut reverse, REPLIES, &mut rotating, run_time);
        add_sent(&mut rotating_sent, forward.sent(), &before);
    }
    let (r1_after, r2_after) = counters(&mut pipeline);

    let steady_latency = steady.latency();
    let rotating_latency = rotating.latency();
    Ok(Row {
        frame_bytes: size,
        flows,
        steady: steady_latency,
        rotating: rotating_latency,
        p99_ratio: rotating_latency.p99_us / steady_latency.p99_us.max(1e-9),
        rotations_started: r1_after.rotations_started - r1_before.rotations_started,
        key_switches: (r1_after.key_switches + r2_after.key_switches)
            - (r1_before.key_switches + r2_before.key_switches),
        steady_lost: steady.totals(&steady_sent).lost,
        rotating_lost: rotating.totals(&rotating_sent).lost,
        key_drops: (r1_after.key_drops() + r2_after.key_drops())
            - (r1_before.key_drops() + r2_before.key_drops()),
    })
}

/// Adds what each flow sent since `before` to `total`.
fn add_sent(total: &mut [u64], now: &[u64], before: &[u64]) {
    for ((total, now), before) in total.iter_mut().zip(now).zip(before) {
        *total += now - before;
    }
}

fn markdown(rows: &[Row]) -> String {
    let mut text = String::from(
        "| frame B | flows | steady p50/p99/p99.9 us | rotating p50/p99/p99.9 us | p99 ratio | \
         rotations | key switches | lost steady/rotating | key drops |\n\
         | ---: | ---: | --- | --- | ---: | ---: | ---: | --- | ---: |\n",
    );
    for row in rows {
        let l = |l: &Latency| format!("{:.1}/{:.1}/{:.1}", l.p50_us, l.p99_us, l.p999_us);
        text.push_str(&format!(
            "| {} | {} | {} | {} | {:.2} | {} | {} | {}/{} | {} |\n",
            row.frame_bytes,
            row.flows,
            l(&row.steady),
            l(&row.rotating),
            row.p99_ratio,
            row.rotations_started,
            row.key_switches,
            row.steady_lost,
            row.rotating_lost,
            row.key_drops,
        ));
    }
    text
}
