//! The generated traffic: host1 sends UDP datagrams of both IP families to host5 at a fixed
//! rate, host5 sends each one back unchanged, and host1 counts what returned.
//!
//! Each datagram's payload is [`PAYLOAD_LEN`] bytes:
//!
//! ```text
//!  phase (u32) | sequence number (u64) | send time, ns into the phase (u64) | marker...
//! ```
//!
//! The rest of the payload repeats the run's plaintext marker, which the wire looks for in
//! every WAN frame. Every [`DATAGRAMS_PER_SESSION`]th datagram leaves from a new source
//! port, so that new sessions start while keys rotate.

use std::net::IpAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::mpsc::{Receiver, Sender, TryRecvError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use svr_dataplane::forward::FiveTuple;
use svr_dataplane::forward::checksum::{self, protocol};
use svr_dataplane::forward::parse::parse_frame;

use crate::lan::Lan;

/// Length of each datagram's UDP payload in bytes.
pub const PAYLOAD_LEN: usize = 1000;

/// Length of the header before the marker: phase, sequence number and send time.
const HEADER_LEN: usize = 20;

/// Datagrams of one family sent from one source port, one session's worth.
pub const DATAGRAMS_PER_SESSION: u64 = 100;

/// host5's UDP port, which sends every datagram back.
pub const ECHO_PORT: u16 = 9000;

/// First source port of host1's datagrams.
const FIRST_SOURCE_PORT: u16 = 20000;

/// Source ports host1 cycles through.
const SOURCE_PORTS: u64 = 20000;

/// How long host1 waits for the last replies after it sent the last datagram of a phase.
const DRAIN: Duration = Duration::from_secs(1);

/// Maximum sleep of a host thread between polls, so that it reads commands and the stop
/// flag soon.
const IDLE_WAIT: Duration = Duration::from_millis(5);

/// The two IP families, as indexes of the per-family arrays.
pub const FAMILIES: [&str; 2] = ["IPv4", "IPv6"];

/// The payload fill of a run: the marker repeated.
#[derive(Debug, Clone)]
pub struct Fill(Arc<[u8]>);

impl Fill {
    pub fn new(marker: &[u8]) -> Fill {
        let fill: Vec<u8> = marker.iter().copied().cycle().take(PAYLOAD_LEN - HEADER_LEN).collect();
        Fill(fill.into())
    }

    fn payload(&self, phase: u32, sequence: u64, sent_ns: u64) -> Vec<u8> {
        let mut payload = Vec::with_capacity(PAYLOAD_LEN);
        payload.extend_from_slice(&phase.to_be_bytes());
        payload.extend_from_slice(&sequence.to_be_bytes());
        payload.extend_from_slice(&sent_ns.to_be_bytes());
        payload.extend_from_slice(&self.0);
        payload
    }

    /// Returns whether `payload` has the length and fill of this run's datagrams.
    fn intact(&self, payload: &[u8]) -> bool {
        payload.len() == PAYLOAD_LEN && payload[HEADER_LEN..] == self.0[..]
    }
}

/// The header fields of a received datagram.
struct Header {
    phase: u32,
    sequence: u64,
    sent_ns: u64,
}

fn header(payload: &[u8]) -> Option<Header> {
    let bytes = payload.get(..HEADER_LEN)?;
    Some(Header {
        phase: u32::from_be_bytes(bytes[0..4].try_into().ok()?),
        sequence: u64::from_be_bytes(bytes[4..12].try_into().ok()?),
        sent_ns: u64::from_be_bytes(bytes[12..20].try_into().ok()?),
    })
}

/// A UDP datagram received by a host.
struct Datagram {
    tuple: FiveTuple,
    payload: Vec<u8>,
    /// Whether the UDP checksum verified.
    checksum_ok: bool,
}

fn datagram(frame: &[u8], to: [IpAddr; 2], port: u16) -> Option<Datagram> {
    let parsed = parse_frame(frame).ok()?;
    let tuple = parsed.tuple;
    if tuple.protocol != protocol::UDP
        || !to.contains(&tuple.destination)
        || tuple.destination_port != port && port != 0
    {
        return None;
    }
    let udp = frame.get(parsed.l4_start..parsed.end)?;
    let checksum_ok = checksum::verify_l4(tuple.source, tuple.destination, protocol::UDP, udp);
    let payload = frame.get(parsed.payload_start..parsed.end)?.to_vec();
    Some(Datagram { tuple, payload, checksum_ok })
}

fn family(address: IpAddr) -> usize {
    usize::from(address.is_ipv6())
}

/// One phase of traffic for host1 to send.
#[derive(Debug, Clone, Copy)]
pub struct Phase {
    /// Distinguishes this phase's datagrams from late replies to an earlier one.
    pub id: u32,
    /// How long datagrams are sent.
    pub duration: Duration,
    /// Datagrams per second of each family.
    pub rate: u32,
    /// End the phase as soon as a datagram of each family came back (the warm-up that
    /// has the routers resolve the hosts).
    pub until_answered: bool,
}

/// Outcome of one family's datagrams in a phase.
#[derive(Debug, Clone, Default)]
pub struct FamilyReport {
    pub sent: u64,
    /// Datagrams host5 received, counted by host5.
    pub delivered: u64,
    /// Distinct datagrams that came back.
    pub returned: u64,
    pub duplicates: u64,
    /// Datagrams that came back with another length or fill, or a bad checksum, at either
    /// host.
    pub altered: u64,
    /// Datagrams not sent because the gateway was unresolved or the port was full.
    pub unsent: u64,
    /// Round-trip times of the returned datagrams, in microseconds.
    pub round_trips_us: Vec<u64>,
}

impl FamilyReport {
    pub fn lost(&self) -> u64 {
        self.sent.saturating_sub(self.returned)
    }

    /// Returns the `p`th percentile round-trip time in microseconds (0 < p <= 100).
    pub fn percentile_us(&self, p: f64) -> Option<u64> {
        let mut sorted = self.round_trips_us.clone();
        sorted.sort_unstable();
        let rank = ((p / 100.0) * sorted.len() as f64).ceil() as usize;
        sorted.get(rank.clamp(1, sorted.len().max(1)) - 1).copied()
    }
}

/// Outcome of a phase.
#[derive(Debug, Clone, Default)]
pub struct PhaseReport {
    pub families: [FamilyReport; 2],
    /// Time from the first datagram to the last.
    pub sending: Duration,
}

impl PhaseReport {
    pub fn lost(&self) -> u64 {
        self.families.iter().map(FamilyReport::lost).sum()
    }

    pub fn sent(&self) -> u64 {
        self.families.iter().map(|family| family.sent).sum()
    }
}

/// Counters host5 keeps, by family.
#[derive(Debug, Default)]
pub struct EchoCounters {
    pub received: [AtomicU64; 2],
    pub altered: [AtomicU64; 2],
    pub unsent: [AtomicU64; 2],
}

impl EchoCounters {
    fn snapshot(&self) -> [[u64; 3]; 2] {
        let read = |index: usize| {
            [
                self.received[index].load(Ordering::Relaxed),
                self.altered[index].load(Ordering::Relaxed),
                self.unsent[index].load(Ordering::Relaxed),
            ]
        };
        [read(0), read(1)]
    }
}

/// A request to host1's thread.
enum Request {
    Run(Phase, Sender<PhaseReport>),
}

/// host1: sends phases of traffic on request.
pub struct Generator {
    requests: Sender<Request>,
    thread: Option<JoinHandle<()>>,
}

/// host5: sends every datagram to its echo port back.
pub struct Echo {
    pub counters: Arc<EchoCounters>,
    thread: Option<JoinHandle<()>>,
}

impl Generator {
    /// Starts host1 on `lan`, sending to `peer` (host5's two addresses).
    pub fn start(
        lan: Lan,
        peer: [IpAddr; 2],
        fill: Fill,
        echo: Arc<EchoCounters>,
        stop: Arc<AtomicBool>,
    ) -> std::io::Result<Generator> {
        let (requests, receiver) = std::sync::mpsc::channel();
        let mut host = GeneratorHost { lan, peer, fill, echo, requests: receiver, stop };
        let thread = std::thread::Builder::new().name("host1".into()).spawn(move || host.run())?;
        Ok(Generator { requests, thread: Some(thread) })
    }

    /// Starts `phase`; its report arrives on the returned receiver when it ends.
    pub fn run(&self, phase: Phase) -> Result<Receiver<PhaseReport>, String> {
        let (reply, report) = std::sync::mpsc::channel();
        self.requests
            .send(Request::Run(phase, reply))
            .map_err(|_| "host1's thread has stopped".to_string())?;
        Ok(report)
    }

    /// Waits for the thread to end; the caller sets the stop flag first.
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Echo {
    /// Starts host5 on `lan`.
    pub fn start(lan: Lan, fill: Fill, stop: Arc<AtomicBool>) -> std::io::Result<Echo> {
        let counters = Arc::new(EchoCounters::default());
        let mut host = EchoHost { lan, fill, counters: Arc::clone(&counters), stop };
        let thread = std::thread::Builder::new().name("host5".into()).spawn(move || host.run())?;
        Ok(Echo { counters, thread: Some(thread) })
    }

    /// Waits for the thread to end; the caller sets the stop flag first.
    pub fn join(&mut self) {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

struct EchoHost {
    lan: Lan,
    fill: Fill,
    counters: Arc<EchoCounters>,
    stop: Arc<AtomicBool>,
}

impl EchoHost {
    fn run(&mut self) {
        let own = [IpAddr::V4(self.lan.addresses().v4), IpAddr::V6(self.lan.addresses().v6)];
        let mut frames = Vec::new();
        let mut buffer = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            self.lan.resolve_gateways(Instant::now());
            if self.lan.receive(&mut frames) == 0 {
                self.lan.wait(IDLE_WAIT);
                continue;
            }
            for frame in frames.drain(..) {
                let Some(datagram) = datagram(&frame, own, ECHO_PORT) else {
                    continue;
                };
                let index = family(datagram.tuple.destination);
                self.counters.received[index].fetch_add(1, Ordering::Relaxed);
                if !datagram.checksum_ok || !self.fill.intact(&datagram.payload) {
                    self.counters.altered[index].fetch_add(1, Ordering::Relaxed);
                }
                let reply = datagram.tuple.reversed();
                if !self.lan.send_udp(&reply, &datagram.payload, &mut buffer) {
                    self.counters.unsent[index].fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }
}

struct GeneratorHost {
    lan: Lan,
    peer: [IpAddr; 2],
    fill: Fill,
    echo: Arc<EchoCounters>,
    requests: Receiver<Request>,
    stop: Arc<AtomicBool>,
}

/// The state of the phase host1 is sending.
struct Running {
    phase: Phase,
    reply: Sender<PhaseReport>,
    started: Instant,
    report: PhaseReport,
    /// Whether each datagram of each family came back yet.
    returned: [Vec<bool>; 2],
    echo_before: [[u64; 3]; 2],
    sending_done: Option<Instant>,
}

impl GeneratorHost {
    fn run(&mut self) {
        let mut running: Option<Running> = None;
        let mut frames = Vec::new();
        let mut buffer = Vec::new();
        while !self.stop.load(Ordering::Relaxed) {
            let now = Instant::now();
            self.lan.resolve_gateways(now);
            if running.is_none() {
                match self.requests.try_recv() {
                    Ok(Request::Run(phase, reply)) => running = Some(self.begin(phase, reply)),
                    Err(TryRecvError::Empty) => {}
                    Err(TryRecvError::Disconnected) => return,
                }
            }

            let received = self.lan.receive(&mut frames);
            let arrived = Instant::now();
            for frame in frames.drain(..) {
                self.returned(&frame, running.as_mut(), arrived);
            }
            let Some(phase) = running.as_mut() else {
                if received == 0 {
                    self.lan.wait(IDLE_WAIT);
                }
                continue;
            };
            self.send_due(phase, now, &mut buffer);
            if self.finished(phase, now) {
                if let Some(done) = running.take() {
                    self.end(done);
                }
                continue;
            }
            if received == 0 {
                self.lan.wait(Duration::from_micros(500));
            }
        }
    }

    fn begin(&self, phase: Phase, reply: Sender<PhaseReport>) -> Running {
        let capacity = (phase.duration.as_secs_f64() * f64::from(phase.rate)).ceil() as usize + 1;
        Running {
            phase,
            reply,
            started: Instant::now(),
            report: PhaseReport::default(),
            returned: [Vec::with_capacity(capacity), Vec::with_capacity(capacity)],
            echo_before: self.echo.snapshot(),
            sending_done: None,
        }
    }

    /// Sends the datagrams due by `now` for each family.
    fn send_due(&mut self, running: &mut Running, now: Instant, buffer: &mut Vec<u8>) {
        if running.sending_done.is_some() {
            return;
        }
        let elapsed = now.duration_since(running.started);
        let until = elapsed.min(running.phase.duration);
        let due = (until.as_secs_f64() * f64::from(running.phase.rate)) as u64 + 1;
        for index in 0..2 {
            while running.report.families[index].sent < due {
                let sequence = running.report.families[index].sent;
                self.send_one(running, index, sequence, buffer);
            }
        }
        if elapsed >= running.phase.duration {
            running.sending_done = Some(now);
            running.report.sending = elapsed;
        }
    }

    fn send_one(
        &mut self,
        running: &mut Running,
        index: usize,
        sequence: u64,
        buffer: &mut Vec<u8>,
    ) {
        let session =
            (u64::from(running.phase.id) * 1000 + sequence / DATAGRAMS_PER_SESSION) % SOURCE_PORTS;
        let source = match self.peer[index] {
            IpAddr::V4(_) => IpAddr::V4(self.lan.addresses().v4),
            IpAddr::V6(_) => IpAddr::V6(self.lan.addresses().v6),
        };
        let tuple = FiveTuple {
            source,
            destination: self.peer[index],
            source_port: FIRST_SOURCE_PORT + session as u16,
            destination_port: ECHO_PORT,
            protocol: protocol::UDP,
        };
        let sent_ns = running.started.elapsed().as_nanos() as u64;
        let payload = self.fill.payload(running.phase.id, sequence, sent_ns);
        let family = &mut running.report.families[index];
        family.sent += 1;
        running.returned[index].push(false);
        if !self.lan.send_udp(&tuple, &payload, buffer) {
            family.unsent += 1;
        }
    }

    /// Counts a frame that came back.
    fn returned(&self, frame: &[u8], running: Option<&mut Running>, now: Instant) {
        let own = [IpAddr::V4(self.lan.addresses().v4), IpAddr::V6(self.lan.addresses().v6)];
        let Some(datagram) = datagram(frame, own, 0) else {
            return;
        };
        let Some(running) = running else {
            return;
        };
        let index = family(datagram.tuple.source);
        let Some(header) = header(&datagram.payload) else {
            running.report.families[index].altered += 1;
            return;
        };
        // A late reply to an earlier phase is not counted.
        if header.phase != running.phase.id {
            return;
        }

        let family = &mut running.report.families[index];
        if !datagram.checksum_ok || !self.fill.intact(&datagram.payload) {
            family.altered += 1;
            return;
        }
        let Some(seen) = usize::try_from(header.sequence)
            .ok()
            .and_then(|sequence| running.returned[index].get_mut(sequence))
        else {
            family.altered += 1;
            return;
        };
        if *seen {
            family.duplicates += 1;
            return;
        }

        *seen = true;
        family.returned += 1;
        let now_ns = now.duration_since(running.started).as_nanos() as u64;
        family.round_trips_us.push(now_ns.saturating_sub(header.sent_ns) / 1000);
    }

    fn finished(&self, running: &Running, now: Instant) -> bool {
        let report = &running.report;
        if running.phase.until_answered && report.families.iter().all(|f| f.returned > 0) {
            return true;
        }
        let Some(done) = running.sending_done else {
            return false;
        };
        let all_back = report.families.iter().all(|f| f.returned == f.sent);
        all_back || now.duration_since(done) >= DRAIN
    }

    fn end(&self, mut running: Running) {
        if running.sending_done.is_none() {
            running.report.sending = running.started.elapsed();
        }
        let after = self.echo.snapshot();
        let families = running.report.families.iter_mut().zip(after).zip(running.echo_before);
        for ((family, now), before) in families {
            family.delivered = now[0] - before[0];
            family.altered += now[1] - before[1];
            family.unsent += now[2] - before[2];
        }
        let _ = running.reply.send(running.report);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fill_payload_round_trip() {
        let fill = Fill::new(b"marker-0123");
        let payload = fill.payload(3, 42, 1_000_000);
        assert_eq!(payload.len(), PAYLOAD_LEN);
        assert!(fill.intact(&payload));
        let parsed = header(&payload).unwrap();
        assert_eq!((parsed.phase, parsed.sequence, parsed.sent_ns), (3, 42, 1_000_000));

        let mut altered = payload.clone();
        altered[PAYLOAD_LEN - 1] ^= 1;
        assert!(!fill.intact(&altered));
        assert!(!fill.intact(&payload[..PAYLOAD_LEN - 1]));
    }

    #[test]
    fn percentiles_of_round_trips() {
        let report =
            FamilyReport { round_trips_us: (1..=100).rev().collect(), ..Default::default() };
        assert_eq!(report.percentile_us(50.0), Some(50));
        assert_eq!(report.percentile_us(99.0), Some(99));
        assert_eq!(report.percentile_us(100.0), Some(100));
        assert_eq!(FamilyReport::default().percentile_us(50.0), None);
    }
}
