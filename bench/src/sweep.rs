//! The offered-load sweep: latency and loss through svrd over AF_XDP from light load to
//! beyond saturation, which shows where queueing starts (the knee).

use std::path::PathBuf;
use std::time::Duration;

use crate::afxdp::Sweep;

#[derive(clap::Args)]
pub struct Options {
    /// Frame size in bytes, without the frame check sequence.
    #[arg(long, value_parser = crate::frame_size, default_value_t = 64)]
    pub size: usize,
    /// Flows the generator cycles through.
    #[arg(long, value_parser = crate::at_least_one::<u16>, default_value_t = 4)]
    pub flows: u16,
    /// Length of each load point, in milliseconds.
    #[arg(long, value_parser = crate::at_least_one::<u64>, default_value_t = 1000)]
    pub point_ms: u64,
    /// 300 ms points, for a smoke test.
    #[arg(long)]
    pub quick: bool,
    /// Output path of the JSON results.
    #[arg(long, default_value = "target/bench/sweep.json")]
    pub json: PathBuf,
    /// Output path of the Markdown table.
    #[arg(long, default_value = "target/bench/sweep.md")]
    pub markdown: PathBuf,
}

pub fn run(options: &Options) -> Result<(), String> {
    let point = Duration::from_millis(if options.quick { 300 } else { options.point_ms });
    let sweep = crate::afxdp::sweep(options.size, options.flows, point)?;
    let json = serde_json::to_string_pretty(&sweep).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)?;
    let markdown = markdown(&sweep);
    crate::write_file(&options.markdown, &markdown)?;
    println!("{markdown}");
    Ok(())
}

fn markdown(sweep: &Sweep) -> String {
    let mut out = format!(
        "{} B frames, {} flows; unpaced run received {:.0} pps; load average {:.2} before, {:.2} after.\n\n",
        sweep.frame_bytes,
        sweep.flows,
        sweep.saturation_pps,
        sweep.load_average.0,
        sweep.load_average.1
    );
    out.push_str("| offered pps | sent pps | received pps | loss % | p50 µs | p99 µs | p99.9 µs | max µs |\n");
    out.push_str("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |\n");
    for p in &sweep.points {
        out.push_str(&format!(
            "| {:.0} | {:.0} | {:.0} | {:.2} | {:.1} | {:.1} | {:.1} | {:.1} |\n",
            p.offered_pps,
            p.sent_pps,
            p.received_pps,
            p.loss_percent,
            p.latency.p50_us,
            p.latency.p99_us,
            p.latency.p999_us,
            p.latency.max_us
        ));
    }
    match sweep.knee_pps {
        Some(knee) => out.push_str(&format!("\nKnee at about {knee:.0} pps offered.\n")),
        None => out.push_str("\nNo knee within the offered range.\n"),
    }
    out
}
