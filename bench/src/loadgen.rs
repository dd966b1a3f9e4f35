//! The load generator: sends probe frames at a rate (or as fast as the port takes them)
//! on one port of any backend and accounts what comes back on another, bounded by a
//! packet count and a duration. Its `loadgen` subcommand runs it over AF_XDP (through
//! svrd's two routers between namespaces the bench creates, or over one bare veth link)
//! or over DPDK (a `net_ring` loopback port, which measures the generator itself).

use std::path::PathBuf;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;
use svr_dataplane::io::{Burst, PacketIo};

use crate::generator::{Generator, Pacer, SizeMix};
use crate::probe::now_ns;
use crate::receiver::{Latency, Receiver, Totals, cdf_points};

/// Hard bounds of one load run, whatever the options ask.
pub const MAX_DURATION: Duration = Duration::from_secs(60);
pub const MAX_PACKETS: u64 = 200_000_000;

/// What one run sends.
#[derive(Debug, Clone, Copy)]
pub struct LoadConfig {
    /// Packets per second, or `None` for as fast as the port takes them.
    pub rate: Option<f64>,
    pub duration: Duration,
    pub max_packets: u64,
    /// Time to keep receiving after the last packet was sent.
    pub drain: Duration,
}

/// What one run measured.
#[derive(Debug, Clone, Serialize)]
pub struct LoadResult {
    /// The rate asked for, or `None` when unpaced.
    pub offered_pps: Option<f64>,
    pub sent: u64,
    /// Frames the transmit port had no room for; they count as lost as well.
    pub tx_dropped: u64,
    pub seconds: f64,
    pub sent_pps: f64,
    pub received_pps: f64,
    pub received_gbps: f64,
    pub totals: Totals,
    pub latency: Latency,
    #[serde(skip)]
    pub histogram: Option<Histogram<u64>>,
}

impl LoadResult {
    /// Latency CDF points of the run.
    pub fn cdf(&self) -> Vec<(f64, f64)> {
        self.histogram.as_ref().map(cdf_points).unwrap_or_default()
    }
}

/// Sends from `generator` on `tx` and receives on `rx` (or on `tx` when `None`, for a
/// loopback port) for one run.
pub fn run_load(
    tx: &mut dyn PacketIo,
    mut rx: Option<&mut dyn PacketIo>,
    generator: &mut Generator,
    config: &LoadConfig,
) -> LoadResult {
    let flows = generator.sent().len() as u16;
    let mut receiver = Receiver::new(flows);
    let sent_before = generator.sent().to_vec();
    let dropped_before = generator.tx_dropped();
    let duration = config.duration.min(MAX_DURATION);
    let max_packets = config.max_packets.min(MAX_PACKETS);

    let start = now_ns();
    let end = start + duration.as_nanos() as u64;
    let mut pacer = Pacer::new(config.rate, start);
    let mut sent = 0u64;
    let mut burst = Burst::new();
    loop {
        let now = now_ns();
        if now >= end || sent >= max_packets {
            break;
        }
        let due = pacer.due(now).min((max_packets - sent) as usize);
        if due > 0 {
            let built = generator.send(tx, due, now);
            pacer.unsent(due - built);
            sent += built as u64;
        }
        let port: &mut dyn PacketIo = match rx.as_deref_mut() {
            Some(port) => port,
            None => tx,
        };
        receive_once(port, &mut receiver, &mut burst);
    }
    let sent_end = now_ns();

    let drain_end = sent_end + config.drain.as_nanos() as u64;
    while now_ns() < drain_end {
        let port: &mut dyn PacketIo = match rx.as_deref_mut() {
            Some(port) => port,
            None => tx,
        };
        receive_once(port, &mut receiver, &mut burst);
    }

    let sent_per_flow: Vec<u64> =
        generator.sent().iter().zip(&sent_before).map(|(now, before)| now - before).collect();
    let totals = receiver.totals(&sent_per_flow);
    let seconds = (sent_end - start) as f64 / 1e9;
    let per_second = |count: u64| count as f64 / seconds.max(1e-9);
    LoadResult {
        offered_pps: config.rate,
        sent: sent_per_flow.iter().sum(),
        tx_dropped: generator.tx_dropped() - dropped_before,
        seconds,
        sent_pps: per_second(sent_per_flow.iter().sum()),
        received_pps: per_second(totals.received),
        received_gbps: per_second(totals.bytes) * 8.0 / 1e9,
        totals,
        latency: receiver.latency(),
        histogram: Some(receiver.histogram().clone()),
    }
}

/// Receives one burst into `receiver`.
fn receive_once(port: &mut dyn PacketIo, receiver: &mut Receiver, burst: &mut Burst) {
    if port.rx_burst(burst).unwrap_or(0) == 0 {
        return;
    }
    let now = now_ns();
    for frame in burst.drain() {
        receiver.record_frame(frame.data(), now);
        port.free(frame);
    }
}

#[derive(clap::Args)]
pub struct Options {
    /// afxdp (veth in namespaces the bench creates) or dpdk (a net_ring loopback port).
    #[arg(long, default_value = "afxdp")]
    pub backend: String,
    /// With afxdp: through svrd's two routers (svrd) or over one bare veth link (veth).
    #[arg(long, default_value = "svrd")]
    pub path: String,
    /// Packets per second; 0 sends as fast as the port takes them.
    #[arg(long, default_value_t = 100_000.0)]
    pub rate: f64,
    /// Flows, each with its own UDP source port and sequence numbers.
    #[arg(long, value_parser = crate::at_least_one::<u16>, default_value_t = 4)]
    pub flows: u16,
    /// Frame size in bytes (without the frame check sequence), or imix.
    #[arg(long, default_value = "64")]
    pub size: String,
    /// Seconds to send for (at most 60).
    #[arg(long, default_value_t = 2.0)]
    pub seconds: f64,
    /// Packets to send at most.
    #[arg(long, default_value_t = 10_000_000)]
    pub count: u64,
    /// Output path of the JSON result.
    #[arg(long, default_value = "target/bench/loadgen.json")]
    pub json: PathBuf,
}

impl Options {
    /// The run these options ask for.
    pub fn load_config(&self) -> LoadConfig {
        LoadConfig {
            rate: (self.rate > 0.0).then_some(self.rate),
            duration: Duration::from_secs_f64(self.seconds.clamp(0.0, MAX_DURATION.as_secs_f64())),
            max_packets: self.count,
            drain: Duration::from_millis(200),
        }
    }
}

pub fn run(options: &Options) -> Result<(), String> {
    let mix = SizeMix::parse(&options.size)?;
    let config = options.load_config();
    let result = match options.backend.as_str() {
        "afxdp" => crate::afxdp::loadgen(&options.path, options.flows, mix, &config)?,
        "dpdk" => dpdk_loadgen(options.flows, mix, &config)?,
        other => return Err(format!("unknown backend {other:?}: expected afxdp or dpdk")),
    };
    print_result(&result);
    let json = serde_json::to_string_pretty(&result).map_err(|e| e.to_string())?;
    crate::write_file(&options.json, &json)
}

/// Prints one run's figures on stderr.
pub fn print_result(result: &LoadResult) {
    let t = &result.totals;
    eprintln!(
        "sent {} ({:.0} pps, {} dropped at the port)  received {} ({:.0} pps, {:.2} Gbit/s)  lost {}  reordered {}  duplicates {}",
        result.sent,
        result.sent_pps,
        result.tx_dropped,
        t.received,
        result.received_pps,
        result.received_gbps,
        t.lost,
        t.reordered,
        t.duplicates
    );
    let l = &result.latency;
    eprintln!(
        "latency p50 {:.1} us  p99 {:.1} us  p99.9 {:.1} us  max {:.1} us",
        l.p50_us, l.p99_us, l.p999_us, l.max_us
    );
}

#[cfg(feature = "dpdk")]
fn dpdk_loadgen(flows: u16, mix: SizeMix, config: &LoadConfig) -> Result<LoadResult, String> {
    crate::dpdk::loadgen(flows, mix, config)
}

#[cfg(not(feature = "dpdk"))]
fn dpdk_loadgen(_flows: u16, _mix: SizeMix, _config: &LoadConfig) -> Result<LoadResult, String> {
    Err("the dpdk backend needs svr-bench built with --features dpdk".into())
}

#[cfg(test)]
mod tests {
    use svr_dataplane::io::mem::{MemConfig, mem_pair};

    use super::*;
    use crate::topology::FORWARD;

    #[test]
    fn load_over_memory_pair_loses_nothing() {
        let (mut tx, mut rx) = mem_pair(&MemConfig::default()).unwrap();
        let mut generator = Generator::new(&FORWARD, 3, SizeMix::Imix);
        let config = LoadConfig {
            rate: Some(200_000.0),
            duration: Duration::from_millis(50),
            max_packets: 5000,
            drain: Duration::from_millis(10),
        };
        let result = run_load(&mut tx, Some(&mut rx), &mut generator, &config);
        assert!(result.sent > 1000, "sent only {}", result.sent);
        assert_eq!(result.totals.received, result.sent);
        assert_eq!(result.totals.lost, 0);
        assert_eq!(result.totals.reordered, 0);
        assert!(result.latency.max_us > 0.0);
    }

    #[test]
    fn load_stops_at_count() {
        let (mut tx, mut rx) = mem_pair(&MemConfig::default()).unwrap();
        let mut generator = Generator::new(&FORWARD, 1, SizeMix::Fixed(64));
        let config = LoadConfig {
            rate: None,
            duration: Duration::from_secs(5),
            max_packets: 100,
            drain: Duration::from_millis(5),
        };
        let result = run_load(&mut tx, Some(&mut rx), &mut generator, &config);
        assert_eq!(result.sent, 100);
        assert_eq!(result.totals.received, 100);
        assert!(result.seconds < 1.0, "a 100-packet run took {} s", result.seconds);
    }

    #[test]
    fn load_counts_loss() {
        // A receive ring of 8 and no reader during sending: most packets are dropped.
        let config = MemConfig { frames: 256, frame_size: 2048, ring_size: 8 };
        let (mut tx, mut rx) = mem_pair(&config).unwrap();
        let mut generator = Generator::new(&FORWARD, 1, SizeMix::Fixed(64));
        let config = LoadConfig {
            rate: None,
            duration: Duration::from_secs(1),
            max_packets: 32,
            drain: Duration::from_millis(5),
        };
        let result = run_load(&mut tx, Some(&mut rx), &mut generator, &config);
        assert_eq!(result.sent, 32);
        assert_eq!(result.tx_dropped, 24);
        assert_eq!(result.totals.received, 8);
        assert_eq!(result.totals.lost, 24);
    }
}
