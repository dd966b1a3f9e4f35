//! The AF_XDP legs. The load generator runs on AF_XDP sockets in one namespace. The other
//! namespace runs either svrd's two routers or, as the reference, dpdk-testpmd's `io`
//! forwarding between the same two veth interfaces. The routers r1 and r2 poll on one
//! thread, with their LANs on AF_XDP sockets and their WANs a memory pair. See
//! [`crate::netns`] for the topology.
//!
//! The forwarder is pinned to the last core and the generator to the first, so on a
//! 2-core machine each has one core. The kernel's veth work mostly runs on the core of the
//! thread that sends.

use std::fs::File;
use std::net::IpAddr;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;
use serde::Serialize;
use svr_dataplane::forward::CryptoPath;
use svr_dataplane::io::afxdp::{XdpAttachment, XdpFilter, XdpMode, Xsk, XskConfig};
use svr_dataplane::io::mem::{MemConfig, mem_pair};
use svr_dataplane::worker::Worker;

use crate::forward::{Options as ForwardOptions, Row};
use crate::generator::{Generator, SizeMix};
use crate::loadgen::{LoadConfig, LoadResult, run_load};
use crate::netns::Topology;
use crate::pipeline::{boxed, discard, drain};
use crate::receiver::{Latency, Receiver};
use crate::stats::Summary;
use crate::topology::{FORWARD, REVERSE, Router, RouterWorker, router_worker};

/// The topology with the generator's two sockets open.
pub struct Rig {
    pub topology: Topology,
    /// Sends as host1 (and receives r1's replies, which are discarded).
    pub host1: Xsk,
    /// Receives as host5, and sends host5's replies during the warm-up.
    pub host5: Xsk,
    _attachments: Vec<Arc<XdpAttachment>>,
}

impl Rig {
    /// Creates the namespaces and opens the generator's sockets.
    pub fn new() -> Result<Rig, String> {
        let topology = Topology::create()?;
        let (host1, host5) = topology.in_generator(|| {
            Ok::<_, String>((open_socket(&topology.host1_if)?, open_socket(&topology.host5_if)?))
        })??;
        Ok(Rig { host1: host1.0, host5: host5.0, _attachments: vec![host1.1, host5.1], topology })
    }
}

/// Attaches svrd's XDP program to `interface` (native mode, else generic) with a LAN
/// filter that passes every IPv4 frame to the socket, and opens the socket on queue 0.
fn open_socket(interface: &str) -> Result<(Xsk, Arc<XdpAttachment>), String> {
    let filter = XdpFilter::Lan { local_addrs: Vec::<IpAddr>::new() };
    let attachment = XdpAttachment::attach(interface, XdpMode::Native, &filter, 1)
        .or_else(|_| XdpAttachment::attach(interface, XdpMode::Skb, &filter, 1))
        .map_err(|e| format!("attach XDP to {interface}: {e}"))?;
    let attachment = Arc::new(attachment);
    let xsk = Xsk::open(&XskConfig::default(), &attachment)
        .map_err(|e| format!("AF_XDP socket on {interface}: {e}"))?;
    Ok((xsk, attachment))
}

/// svrd's two routers polling on one pinned thread.
pub struct SvrdForwarder {
    stop: Arc<AtomicBool>,
    /// Nanoseconds r1 and r2 spent in `poll_once` calls that received frames: each
    /// router's own work, as if it ran alone on its core.
    busy: Arc<[AtomicU64; 2]>,
    handle: Option<JoinHandle<(Worker, Worker)>>,
    _epochs: Vec<svr_dataplane::epoch::EpochPublisher>,
    _attachments: Vec<Arc<XdpAttachment>>,
}

impl SvrdForwarder {
    /// Opens r1's and r2's LAN sockets in the forwarder namespace and starts polling.
    pub fn start(topology: &Topology, flows: u16) -> Result<SvrdForwarder, String> {
        let (r1_lan, r2_lan) = topology.in_forwarder(|| {
            Ok::<_, String>((open_socket(&topology.r1_lan_if)?, open_socket(&topology.r2_lan_if)?))
        })??;
        let (r1_wan, r2_wan) = mem_pair(&MemConfig::default()).map_err(|e| e.to_string())?;
        let sessions = usize::from(flows).max(16) * 2;
        let RouterWorker { worker: mut r1, epoch: r1_epoch } =
            router_worker(Router::Ingress, boxed(r1_lan.0), boxed(r1_wan), sessions);
        let RouterWorker { worker: mut r2, epoch: r2_epoch } =
            router_worker(Router::Egress, boxed(r2_lan.0), boxed(r2_wan), sessions);

        let stop = Arc::new(AtomicBool::new(false));
        let flag = Arc::clone(&stop);
        let busy = Arc::new([AtomicU64::new(0), AtomicU64::new(0)]);
        let counters = Arc::clone(&busy);
        let handle = thread::Builder::new()
            .name("svrb-forwarder".into())
            .spawn(move || {
                crate::pin_to_last_core();
                while !flag.load(Ordering::Relaxed) {
                    for (worker, counter) in [&mut r1, &mut r2].into_iter().zip(counters.iter()) {
                        let start = Instant::now();
                        if worker.poll_once(start) > 0 {
                            let spent = u64::try_from(start.elapsed().as_nanos()).unwrap_or(0);
                            counter.fetch_add(spent, Ordering::Relaxed);
                        }
                    }
                }
                (r1, r2)
            })
            .map_err(|e| format!("forwarder thread: {e}"))?;
        Ok(SvrdForwarder {
            stop,
            busy,
            handle: Some(handle),
            _epochs: vec![r1_epoch, r2_epoch],
            _attachments: vec![r1_lan.1, r2_lan.1],
        })
    }

    /// Returns the nanoseconds r1 and r2 have spent in `poll_once` calls that received
    /// frames so far.
    pub fn busy_ns(&self) -> [u64; 2] {
        [self.busy[0].load(Ordering::Relaxed), self.busy[1].load(Ordering::Relaxed)]
    }

    /// Stops the thread and returns both routers' drop counts.
    pub fn stop(mut self) -> Result<u64, String> {
        self.stop.store(true, Ordering::Relaxed);
        let handle = self.handle.take().ok_or("forwarder already stopped")?;
        let (mut r1, mut r2) = handle.join().map_err(|_| "forwarder thread panicked")?;
        Ok(r1.engine().counters().total_drops() + r2.engine().counters().total_drops())
    }
}

impl Drop for SvrdForwarder {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(handle) = self.handle.take() {
            let _ = handle.join();
        }
    }
}

/// Completes the metadata handshake of every flow through the running forwarder.
pub fn warm_up(rig: &mut Rig, flows: u16, mix: SizeMix) -> Result<Generator, String> {
    let mut forward = Generator::new(&FORWARD, flows, mix);
    let mut reverse = Generator::replies(&REVERSE, flows, mix);
    let mut sink = Receiver::new(flows);
    let mut delivered = 0;
    for round in 0..3 {
        let mut left = usize::from(flows);
        while left > 0 {
            let sent = if round == 1 {
                reverse.send(&mut rig.host5, left.min(32), crate::probe::now_ns())
            } else {
                forward.send(&mut rig.host1, left.min(32), crate::probe::now_ns())
            };
            if sent == 0 {
                return Err("no free frame on a generator socket during warm-up".into());
            }
            left -= sent;
            thread::sleep(Duration::from_millis(5));
        }
        thread::sleep(Duration::from_millis(50));
        discard(&mut rig.host1);
        delivered += drain(&mut rig.host5, &mut sink);
    }
    if delivered != 2 * u64::from(flows) {
        return Err(format!("warm-up delivered {delivered} of {} packets", 2 * flows));
    }
    Ok(forward)
}

/// Measures the AF_XDP leg: svrd and testpmd for each size.
pub fn forward_legs(
    options: &ForwardOptions,
    run_time: Duration,
    runs: usize,
) -> Result<Vec<Row>, String> {
    crate::pin_to_first_core();
    let mut rows = Vec::new();
    for &size in &options.sizes {
        let mut rig = Rig::new()?;
        let config = LoadConfig {
            rate: None,
            duration: run_time,
            max_packets: u64::MAX,
            drain: Duration::from_millis(100),
        };

        let forwarder = SvrdForwarder::start(&rig.topology, options.flows)?;
        let mut generator = warm_up(&mut rig, options.flows, SizeMix::Fixed(size))?;
        let mut svrd = Vec::with_capacity(runs);
        let mut worker_pps = Vec::with_capacity(runs);
        for _ in 0..runs {
            let before = forwarder.busy_ns();
            let result = run_load(&mut rig.host1, Some(&mut rig.host5), &mut generator, &config);
            let after = forwarder.busy_ns();
            let rate = |router: usize| {
                let busy = after[router].saturating_sub(before[router]) as f64 / 1e9;
                result.totals.received as f64 / busy.max(1e-9)
            };
            worker_pps.push([rate(0), rate(1)]);
            svrd.push(result);
        }
        let drops = forwarder.stop()?;
        for result in &svrd {
            eprint!("svrd {size} B: ");
            crate::loadgen::print_result(result);
        }

        let log_dir = options.json.parent().unwrap_or(std::path::Path::new("."));
        let testpmd = testpmd_runs(&mut rig, size, options.flows, &config, runs, log_dir)?;
        rows.push(afxdp_row(size, options.flows, &svrd, &worker_pps, &testpmd, drops));
    }
    Ok(rows)
}

fn afxdp_row(
    size: usize,
    flows: u16,
    svrd: &[LoadResult],
    worker_pps: &[[f64; 2]],
    testpmd: &[LoadResult],
    drops: u64,
) -> Row {
    let received: Vec<f64> = svrd.iter().map(|r| r.received_pps).collect();
    let r1: Vec<f64> = worker_pps.iter().map(|rates| rates[0]).collect();
    let r2: Vec<f64> = worker_pps.iter().map(|rates| rates[1]).collect();
    let reference: Vec<f64> = testpmd.iter().map(|r| r.received_pps).collect();
    let pipeline_pps = Summary::of(&received);
    let reference_pps = Summary::of(&reference);
    let best = svrd.iter().max_by(|a, b| a.received_pps.total_cmp(&b.received_pps));
    Row {
        backend: "afxdp".into(),
        crypto_path: crate::forward::crypto_path_name(CryptoPath::default()),
        frame_bytes: size,
        flows,
        r1_pps: Summary::of(&r1),
        r2_pps: Summary::of(&r2),
        // Each router's time includes the kernel's work for its own AF_XDP socket, which
        // runs in its system calls.
        worker_ns_per_packet: 1e9 / Summary::of(&r1).median.max(1.0)
            + 1e9 / Summary::of(&r2).median.max(1.0),
        reference: "testpmd io".into(),
        ratio: pipeline_pps.median / reference_pps.median.max(1.0),
        latency: median_latency(svrd),
        r1_burst: Latency::default(),
        r2_burst: Latency::default(),
        lost: svrd.iter().map(|r| r.totals.lost).sum(),
        drops,
        cdf: best.map(LoadResult::cdf).unwrap_or_default(),
        pipeline_pps,
        reference_pps,
    }
}

/// Returns the latency of the run with the median received rate.
fn median_latency(results: &[LoadResult]) -> Latency {
    let mut sorted: Vec<&LoadResult> = results.iter().collect();
    sorted.sort_by(|a, b| a.received_pps.total_cmp(&b.received_pps));
    sorted.get(sorted.len() / 2).map(|r| r.latency).unwrap_or_default()
}

/// dpdk-testpmd forwarding in the forwarder namespace, stopped on drop.
struct Testpmd {
    child: Child,
    prefix: String,
}

impl Testpmd {
    /// Starts testpmd's `io` forwarding between the two forwarder-side interfaces, for at
    /// most `limit`.
    fn start(topology: &Topology, log: &str, limit: Duration) -> Result<Testpmd, String> {
        let prefix = format!("svrb{}", std::process::id());
        let log_file = File::create(log).map_err(|e| format!("{log}: {e}"))?;
        let errors = log_file.try_clone().map_err(|e| e.to_string())?;
        let seconds = limit.as_secs().max(1).to_string();
        let vdev0 = format!("--vdev=net_af_xdp0,iface={}", topology.r1_lan_if);
        let vdev1 = format!("--vdev=net_af_xdp1,iface={}", topology.r2_lan_if);
        #[rustfmt::skip]
        let args = [
            "netns", "exec", &topology.forwarder_ns, "timeout", "-s", "INT", &seconds,
            "dpdk-testpmd", "-l", "0-1", "--no-huge", "--no-pci", "-m", "512",
            "--file-prefix", &prefix, &vdev0, &vdev1, "--",
            "--forward-mode=io", "--stats-period=1", "--total-num-mbufs=16384",
        ];
        let child = Command::new("ip")
            .args(args)
            .stdin(Stdio::null())
            .stdout(log_file)
            .stderr(errors)
            .spawn()
            .map_err(|e| format!("start dpdk-testpmd: {e}"))?;
        Ok(Testpmd { child, prefix })
    }
}

impl Drop for Testpmd {
    fn drop(&mut self) {
        // `ip netns exec` execs `timeout`, which passes SIGINT on to testpmd.
        let pid = Pid::from_raw(self.child.id() as i32);
        let _ = kill(pid, Signal::SIGINT);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                break;
            }
            thread::sleep(Duration::from_millis(50));
        }
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        let _ = std::fs::remove_dir_all(format!("/var/run/dpdk/{}", self.prefix));
    }
}

/// Runs the load through testpmd, with its log in `log_dir`; the generator starts fresh
/// because testpmd keeps no sessions.
fn testpmd_runs(
    rig: &mut Rig,
    size: usize,
    flows: u16,
    config: &LoadConfig,
    runs: usize,
    log_dir: &std::path::Path,
) -> Result<Vec<LoadResult>, String> {
    // The kernel frees a closed socket's queue with a delay; a bind right away can fail.
    thread::sleep(Duration::from_millis(1500));
    std::fs::create_dir_all(log_dir).map_err(|e| format!("{}: {e}", log_dir.display()))?;
    let log = log_dir.join(format!("testpmd-afxdp-{size}.log")).display().to_string();
    let limit = Duration::from_secs(30) + config.duration * runs as u32 * 2;
    let _testpmd = Testpmd::start(&rig.topology, &log, limit)?;

    let mut generator = Generator::new(&FORWARD, flows, SizeMix::Fixed(size));
    let mut probe_sink = Receiver::new(flows);
    let ready_by = Instant::now() + Duration::from_secs(20);
    loop {
        generator.send(&mut rig.host1, 8, crate::probe::now_ns());
        thread::sleep(Duration::from_millis(100));
        if drain(&mut rig.host5, &mut probe_sink) > 0 {
            break;
        }
        if Instant::now() > ready_by {
            return Err(format!("dpdk-testpmd forwarded nothing within 20 s; see {log}"));
        }
    }
    thread::sleep(Duration::from_millis(200));
    discard(&mut rig.host5);

    let results: Vec<LoadResult> = (0..runs)
        .map(|_| run_load(&mut rig.host1, Some(&mut rig.host5), &mut generator, config))
        .collect();
    for result in &results {
        eprint!("testpmd {size} B: ");
        crate::loadgen::print_result(result);
    }
    Ok(results)
}

/// Runs the `loadgen` subcommand over AF_XDP.
pub fn loadgen(
    path: &str,
    flows: u16,
    mix: SizeMix,
    config: &LoadConfig,
) -> Result<LoadResult, String> {
    crate::pin_to_first_core();
    let mut rig = Rig::new()?;
    match path {
        "svrd" => {
            let forwarder = SvrdForwarder::start(&rig.topology, flows)?;
            let mut generator = warm_up(&mut rig, flows, mix)?;
            let result = run_load(&mut rig.host1, Some(&mut rig.host5), &mut generator, config);
            let drops = forwarder.stop()?;
            if drops > 0 {
                eprintln!("routers dropped {drops} packets");
            }
            Ok(result)
        }
        "veth" => {
            let (mut far_end, _attachment) =
                rig.topology.in_forwarder(|| open_socket(&rig.topology.r1_lan_if))??;
            let mut generator = Generator::new(&FORWARD, flows, mix);
            Ok(run_load(&mut rig.host1, Some(&mut far_end), &mut generator, config))
        }
        other => Err(format!("unknown path {other:?}: expected svrd or veth")),
    }
}

/// One point of the offered-load sweep.
#[derive(Debug, Serialize)]
pub struct SweepPoint {
    pub offered_pps: f64,
    pub sent_pps: f64,
    pub received_pps: f64,
    pub loss_percent: f64,
    pub latency: Latency,
}

/// The sweep's result.
#[derive(Debug, Serialize)]
pub struct Sweep {
    /// One-minute load average before and after the sweep.
    pub load_average: (f64, f64),
    pub frame_bytes: usize,
    pub flows: u16,
    /// Received rate of an unpaced run.
    pub saturation_pps: f64,
    pub points: Vec<SweepPoint>,
    /// The lowest offered load whose p99 is over four times the lightest load's, or that
    /// loses over 0.1 % of its packets.
    pub knee_pps: Option<f64>,
}

/// Offered loads as fractions of the saturation rate.
const SWEEP_FRACTIONS: [f64; 11] = [0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0];
/// Offered loads above saturation.
const OVERLOAD_FRACTIONS: [f64; 2] = [1.1, 1.3];

/// Latency against offered load through svrd over AF_XDP, from light load to beyond
/// saturation.
pub fn sweep(size: usize, flows: u16, point_time: Duration) -> Result<Sweep, String> {
    crate::pin_to_first_core();
    let load_before = crate::load_average();
    let mut rig = Rig::new()?;
    let forwarder = SvrdForwarder::start(&rig.topology, flows)?;
    let mut generator = warm_up(&mut rig, flows, SizeMix::Fixed(size))?;

    let unpaced = LoadConfig {
        rate: None,
        duration: point_time,
        max_packets: u64::MAX,
        drain: Duration::from_millis(100),
    };
    let saturation = run_load(&mut rig.host1, Some(&mut rig.host5), &mut generator, &unpaced);
    let saturation_pps = saturation.received_pps;

    let mut points = Vec::new();
    for fraction in SWEEP_FRACTIONS.iter().chain(&OVERLOAD_FRACTIONS) {
        let rate = saturation_pps * fraction;
        let config = LoadConfig { rate: Some(rate), ..unpaced };
        let result = run_load(&mut rig.host1, Some(&mut rig.host5), &mut generator, &config);
        let loss = result.totals.lost as f64 / result.sent.max(1) as f64 * 100.0;
        eprintln!(
            "offered {:>9.0} pps  received {:>9.0} pps  loss {:>6.2} %  p50 {:>8.1} us  p99 {:>8.1} us",
            rate, result.received_pps, loss, result.latency.p50_us, result.latency.p99_us
        );
        points.push(SweepPoint {
            offered_pps: rate,
            sent_pps: result.sent_pps,
            received_pps: result.received_pps,
            loss_percent: loss,
            latency: result.latency,
        });
    }
    forwarder.stop()?;

    let knee_pps = knee(&points);
    let load_average = (load_before, crate::load_average());
    Ok(Sweep { load_average, frame_bytes: size, flows, saturation_pps, points, knee_pps })
}

/// Finds the knee of a sweep, as [`Sweep::knee_pps`] defines it.
pub fn knee(points: &[SweepPoint]) -> Option<f64> {
    let base = points.first()?.latency.p99_us.max(1.0);
    points
        .iter()
        .find(|p| p.latency.p99_us > 4.0 * base || p.loss_percent > 0.1)
        .map(|p| p.offered_pps)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(offered: f64, p99: f64, loss: f64) -> SweepPoint {
        SweepPoint {
            offered_pps: offered,
            sent_pps: offered,
            received_pps: offered,
            loss_percent: loss,
            latency: Latency { p99_us: p99, ..Latency::default() },
        }
    }

    #[test]
    fn knee_at_latency_rise() {
        let points = [point(1e4, 10.0, 0.0), point(2e4, 12.0, 0.0), point(3e4, 50.0, 0.0)];
        assert_eq!(knee(&points), Some(3e4));
    }

    #[test]
    fn knee_at_loss() {
        let points = [point(1e4, 10.0, 0.0), point(2e4, 11.0, 0.5)];
        assert_eq!(knee(&points), Some(2e4));
    }

    #[test]
    fn knee_absent_when_flat() {
        let points = [point(1e4, 10.0, 0.0), point(2e4, 11.0, 0.0)];
        assert_eq!(knee(&points), None);
    }
}
