//! The receiving side of the load generator: per-flow accounting of probes (received,
//! reordered, duplicated, lost) and a latency histogram.
//!
//! A probe is reordered when a later sequence number of its flow arrived before it, and a
//! duplicate when its sequence number was already seen within the last [`WINDOW`] numbers.
//! Loss is counted against what the sender reports it sent, once the run has drained.

use hdrhistogram::Histogram;
use serde::Serialize;

use crate::probe::Probe;

/// Sequence numbers behind the highest one seen for which duplicates are detected.
pub const WINDOW: u64 = 1024;
/// Largest latency the histogram records, in nanoseconds (10 s); larger values are clamped.
const MAX_LATENCY_NS: u64 = 10_000_000_000;

/// Per-flow sequence state.
#[derive(Debug, Clone, Default)]
struct FlowState {
    /// One more than the highest sequence number seen, or 0 before the first.
    next: u64,
    /// Bit `i` is set when sequence `next - 1 - i` was seen.
    seen: [u64; (WINDOW / 64) as usize],
    received: u64,
    reordered: u64,
    duplicates: u64,
}

impl FlowState {
    fn record(&mut self, sequence: u64) -> Arrival {
        if sequence >= self.next {
            self.shift(sequence + 1 - self.next);
            self.next = sequence + 1;
            self.set(0);
            self.received += 1;
            return Arrival::InOrder;
        }

        let behind = self.next - 1 - sequence;
        if behind < WINDOW && self.is_set(behind) {
            self.duplicates += 1;
            return Arrival::Duplicate;
        }
        if behind < WINDOW {
            self.set(behind);
        }
        self.received += 1;
        self.reordered += 1;
        Arrival::Reordered
    }

    /// Moves the window forward by `by` sequence numbers.
    fn shift(&mut self, by: u64) {
        if self.next == 0 {
            return;
        }
        if by >= WINDOW {
            self.seen = [0; (WINDOW / 64) as usize];
            return;
        }
        let words = (by / 64) as usize;
        let bits = (by % 64) as u32;
        let count = self.seen.len();
        for index in (0..count).rev() {
            let from = index.checked_sub(words);
            let high = from.map_or(0, |i| self.seen[i]);
            let low = from.and_then(|i| i.checked_sub(1)).map_or(0, |i| self.seen[i]);
            self.seen[index] = if bits == 0 { high } else { (high << bits) | (low >> (64 - bits)) };
        }
    }

    fn set(&mut self, behind: u64) {
        self.seen[(behind / 64) as usize] |= 1 << (behind % 64);
    }

    fn is_set(&self, behind: u64) -> bool {
        self.seen[(behind / 64) as usize] & (1 << (behind % 64)) != 0
    }
}

/// The arrival order of one probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Arrival {
    InOrder,
    Reordered,
    Duplicate,
}

/// Accounting of every probe received in one run.
#[derive(Debug)]
pub struct Receiver {
    flows: Vec<FlowState>,
    latency: Histogram<u64>,
    bytes: u64,
    unknown: u64,
}

/// Latency percentiles in microseconds.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Latency {
    pub p50_us: f64,
    pub p99_us: f64,
    pub p999_us: f64,
    pub max_us: f64,
    pub mean_us: f64,
}

/// Totals of a run.
#[derive(Debug, Clone, Copy, Default, Serialize)]
pub struct Totals {
    pub received: u64,
    pub lost: u64,
    pub reordered: u64,
    pub duplicates: u64,
    /// Frames that carried no probe of a known flow.
    pub unknown: u64,
    pub bytes: u64,
}

impl Receiver {
    /// Creates a receiver for flows `0..flows`.
    pub fn new(flows: u16) -> Receiver {
        Receiver {
            flows: vec![FlowState::default(); usize::from(flows)],
            latency: new_histogram(),
            bytes: 0,
            unknown: 0,
        }
    }

    /// Accounts one received frame at `now_ns`; returns how the probe arrived, or `None`
    /// when the frame carries no probe of a known flow.
    pub fn record_frame(&mut self, frame: &[u8], now_ns: u64) -> Option<Arrival> {
        let Some(probe) = Probe::from_frame(frame) else {
            self.unknown += 1;
            return None;
        };
        let arrival = self.record(&probe, now_ns);
        if arrival.is_some() {
            self.bytes += frame.len() as u64;
        }
        arrival
    }

    /// Accounts one probe received at `now_ns`.
    pub fn record(&mut self, probe: &Probe, now_ns: u64) -> Option<Arrival> {
        let Some(flow) = self.flows.get_mut(usize::from(probe.flow)) else {
            self.unknown += 1;
            return None;
        };
        let arrival = flow.record(probe.sequence);
        if arrival != Arrival::Duplicate {
            let latency = now_ns.saturating_sub(probe.sent_ns).clamp(1, MAX_LATENCY_NS);
            // The value is clamped into the histogram's range, so recording cannot fail.
            let _ = self.latency.record(latency);
        }
        Some(arrival)
    }

    /// Totals, with loss counted against `sent[flow]` packets sent per flow.
    pub fn totals(&self, sent: &[u64]) -> Totals {
        let mut totals = Totals { unknown: self.unknown, bytes: self.bytes, ..Totals::default() };
        for (index, flow) in self.flows.iter().enumerate() {
            totals.received += flow.received;
            totals.reordered += flow.reordered;
            totals.duplicates += flow.duplicates;
            let expected = sent.get(index).copied().unwrap_or(0);
            totals.lost += expected.saturating_sub(flow.received);
        }
        totals
    }

    /// Returns the latency histogram, in nanoseconds.
    pub fn histogram(&self) -> &Histogram<u64> {
        &self.latency
    }

    /// Latency percentiles.
    pub fn latency(&self) -> Latency {
        latency_of(&self.latency)
    }
}

/// Creates an empty latency histogram: 1 ns to 10 s at three significant digits.
pub fn new_histogram() -> Histogram<u64> {
    // The bounds are constants that hdrhistogram accepts (low >= 1, high >= 2 * low,
    // sigfig <= 5), so creation cannot fail; the fallback keeps the function total.
    Histogram::new_with_bounds(1, MAX_LATENCY_NS, 3)
        .or_else(|_| Histogram::new(3))
        .unwrap_or_else(|_| unreachable_histogram())
}

#[expect(clippy::panic, reason = "only reached if hdrhistogram rejects constant bounds")]
fn unreachable_histogram() -> Histogram<u64> {
    panic!("hdrhistogram rejected constant bounds")
}

/// Percentiles of a nanosecond histogram, in microseconds.
pub fn latency_of(histogram: &Histogram<u64>) -> Latency {
    if histogram.is_empty() {
        return Latency::default();
    }
    let us = |ns: u64| ns as f64 / 1000.0;
    Latency {
        p50_us: us(histogram.value_at_quantile(0.50)),
        p99_us: us(histogram.value_at_quantile(0.99)),
        p999_us: us(histogram.value_at_quantile(0.999)),
        max_us: us(histogram.max()),
        mean_us: histogram.mean() / 1000.0,
    }
}

/// Points of the latency CDF: (latency in µs, fraction of packets at or below it).
pub fn cdf_points(histogram: &Histogram<u64>) -> Vec<(f64, f64)> {
    let total = histogram.len();
    if total == 0 {
        return Vec::new();
    }
    let mut points = Vec::new();
    let mut seen = 0u64;
    for value in histogram.iter_recorded() {
        seen += value.count_since_last_iteration();
        points.push((value.value_iterated_to() as f64 / 1000.0, seen as f64 / total as f64));
    }
    points
}

#[cfg(test)]
mod tests {
    use super::*;

    fn probe(flow: u16, sequence: u64, sent_ns: u64) -> Probe {
        Probe { flow, sequence, sent_ns }
    }

    fn receive(receiver: &mut Receiver, flow: u16, sequences: &[u64]) -> Vec<Arrival> {
        sequences.iter().filter_map(|&s| receiver.record(&probe(flow, s, 0), 1000)).collect()
    }

    #[test]
    fn receiver_in_order_no_loss() {
        let mut receiver = Receiver::new(1);
        let arrivals = receive(&mut receiver, 0, &[0, 1, 2, 3, 4]);
        assert!(arrivals.iter().all(|a| *a == Arrival::InOrder));
        let totals = receiver.totals(&[5]);
        assert_eq!(totals.received, 5);
        assert_eq!(totals.lost, 0);
        assert_eq!(totals.reordered, 0);
        assert_eq!(totals.duplicates, 0);
    }

    #[test]
    fn receiver_gap_counts_loss() {
        let mut receiver = Receiver::new(1);
        receive(&mut receiver, 0, &[0, 1, 4, 5]);
        let totals = receiver.totals(&[7]);
        assert_eq!(totals.received, 4);
        assert_eq!(totals.lost, 3, "2, 3 and 6 never arrived");
        assert_eq!(totals.reordered, 0);
    }

    #[test]
    fn receiver_late_packet_is_reordered() {
        let mut receiver = Receiver::new(1);
        let arrivals = receive(&mut receiver, 0, &[0, 2, 1, 3]);
        assert_eq!(arrivals[2], Arrival::Reordered);
        let totals = receiver.totals(&[4]);
        assert_eq!(totals.received, 4);
        assert_eq!(totals.lost, 0, "a reordered packet is not lost");
        assert_eq!(totals.reordered, 1);
    }

    #[test]
    fn receiver_duplicate_detected() {
        let mut receiver = Receiver::new(1);
        let arrivals = receive(&mut receiver, 0, &[0, 1, 1, 2, 0]);
        assert_eq!(arrivals[2], Arrival::Duplicate);
        assert_eq!(arrivals[4], Arrival::Duplicate);
        let totals = receiver.totals(&[3]);
        assert_eq!(totals.received, 3);
        assert_eq!(totals.duplicates, 2);
        assert_eq!(totals.reordered, 0);
    }

    #[test]
    fn receiver_window_shift_keeps_history() {
        let mut receiver = Receiver::new(1);
        // Every even number, across several words of the window, then the odd ones late.
        let evens: Vec<u64> = (0..300).map(|i| i * 2).collect();
        receive(&mut receiver, 0, &evens);
        let odds: Vec<u64> = (0..299).map(|i| i * 2 + 1).collect();
        let arrivals = receive(&mut receiver, 0, &odds);
        assert!(arrivals.iter().all(|a| *a == Arrival::Reordered));
        let again = receive(&mut receiver, 0, &[3, 64, 65, 130, 597]);
        assert!(again.iter().all(|a| *a == Arrival::Duplicate), "{again:?}");
    }

    #[test]
    fn receiver_flows_independent() {
        let mut receiver = Receiver::new(2);
        receive(&mut receiver, 0, &[0, 1, 2]);
        receive(&mut receiver, 1, &[0, 2]);
        let totals = receiver.totals(&[3, 3]);
        assert_eq!(totals.received, 5);
        assert_eq!(totals.lost, 1);
    }

    #[test]
    fn receiver_unknown_flow_counted() {
        let mut receiver = Receiver::new(1);
        assert_eq!(receiver.record(&probe(5, 0, 0), 10), None);
        assert_eq!(receiver.record_frame(&[0u8; 60], 10), None);
        assert_eq!(receiver.totals(&[0]).unknown, 2);
    }

    #[test]
    fn receiver_latency_percentiles() {
        let mut receiver = Receiver::new(1);
        for sequence in 0..1000u64 {
            // Latencies 1 µs to 1000 µs, one of each.
            let sent = 1_000_000_000;
            receiver.record(&probe(0, sequence, sent), sent + (sequence + 1) * 1000);
        }
        let latency = receiver.latency();
        assert!((latency.p50_us - 500.0).abs() < 2.0, "p50 {}", latency.p50_us);
        assert!((latency.p99_us - 990.0).abs() < 2.0, "p99 {}", latency.p99_us);
        assert!((latency.max_us - 1000.0).abs() < 2.0, "max {}", latency.max_us);
        assert!(latency.p50_us <= latency.p99_us);
        assert!(latency.p99_us <= latency.p999_us);
    }

    #[test]
    fn receiver_duplicate_not_in_histogram() {
        let mut receiver = Receiver::new(1);
        receiver.record(&probe(0, 0, 0), 1000);
        receiver.record(&probe(0, 0, 0), 9_000_000);
        assert_eq!(receiver.histogram().len(), 1);
    }

    #[test]
    fn cdf_ends_at_one() {
        let mut histogram = new_histogram();
        for value in [1000u64, 2000, 2000, 50_000] {
            histogram.record(value).unwrap();
        }
        let points = cdf_points(&histogram);
        assert!(!points.is_empty());
        assert!(points.windows(2).all(|w| w[0].0 <= w[1].0 && w[0].1 <= w[1].1));
        assert!((points.last().unwrap().1 - 1.0).abs() < 1e-9);
    }
}
