//! The transmit side of the load generator: frames of several flows and sizes, each with a
//! probe, written into frames of any [`PacketIo`] backend, paced to a rate when asked.

use serde::Serialize;
use svr_dataplane::io::{Burst, MAX_BURST, PacketIo};

use crate::probe::{Addresses, FrameTemplate, IMIX};

/// Frame sizes a run sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub enum SizeMix {
    /// Every frame has this many bytes.
    Fixed(usize),
    /// The 7:4:1 mix of [`IMIX`].
    Imix,
}

impl SizeMix {
    /// Parses `64`, `1400` or `imix`.
    pub fn parse(text: &str) -> Result<SizeMix, String> {
        if text.eq_ignore_ascii_case("imix") {
            return Ok(SizeMix::Imix);
        }
        crate::frame_size(text).map(SizeMix::Fixed).map_err(|error| format!("{error}, or \"imix\""))
    }

    /// Returns the sizes of one cycle of the mix.
    pub fn sizes(self) -> Vec<usize> {
        match self {
            SizeMix::Fixed(size) => vec![size],
            SizeMix::Imix => IMIX.to_vec(),
        }
    }
}

/// Frames of `flows` flows in round-robin order, with per-flow sequence numbers.
#[derive(Debug)]
pub struct Generator {
    /// Templates by size (index into the mix) and then by flow.
    templates: Vec<Vec<FrameTemplate>>,
    sent: Vec<u64>,
    cursor: usize,
    tx_dropped: u64,
}

impl Generator {
    /// A generator of `flows` flows (at least one) with `addresses` and sizes from `mix`.
    pub fn new(addresses: &Addresses, flows: u16, mix: SizeMix) -> Generator {
        Generator::build(addresses, flows, mix, FrameTemplate::new)
    }

    /// A generator of the replies to [`new`](Self::new)'s flows, ports swapped.
    pub fn replies(addresses: &Addresses, flows: u16, mix: SizeMix) -> Generator {
        Generator::build(addresses, flows, mix, FrameTemplate::reply)
    }

    fn build(
        addresses: &Addresses,
        flows: u16,
        mix: SizeMix,
        template: fn(&Addresses, u16, usize) -> FrameTemplate,
    ) -> Generator {
        let flows = flows.max(1);
        let templates = mix
            .sizes()
            .into_iter()
            .map(|size| (0..flows).map(|flow| template(addresses, flow, size)).collect())
            .collect();
        Generator { templates, sent: vec![0; usize::from(flows)], cursor: 0, tx_dropped: 0 }
    }

    /// Packets taken from each flow so far.
    pub fn sent(&self) -> &[u64] {
        &self.sent
    }

    /// Frames the port's transmit queue had no room for.
    pub fn tx_dropped(&self) -> u64 {
        self.tx_dropped
    }

    /// Builds up to `count` frames (at most one burst) on `port` stamped with `now_ns` and
    /// sends them. Returns how many frames were built; fewer than `count` when the pool ran
    /// out.
    pub fn send(&mut self, port: &mut dyn PacketIo, count: usize, now_ns: u64) -> usize {
        let mut burst = Burst::new();
        let count = count.min(MAX_BURST);
        let flows = self.sent.len();
        let cycle = self.templates.len() * flows;
        for _ in 0..count {
            let Some(mut frame) = port.alloc() else { break };
            let flow = self.cursor % flows;
            let size = (self.cursor / flows) % self.templates.len();
            self.cursor = (self.cursor + 1) % cycle;
            let template = &self.templates[size][flow];
            frame.truncate(0);
            if frame.append(template.len()).is_err() {
                port.free(frame);
                break;
            }
            template.write(frame.data_mut(), self.sent[flow], now_ns);
            self.sent[flow] += 1;
            if let Err(frame) = burst.push(frame) {
                port.free(frame);
                break;
            }
        }
        let built = burst.len();
        let queued = port.tx_burst(&mut burst).unwrap_or(0);
        self.tx_dropped += (built - queued.min(built)) as u64;
        built
    }
}

/// Paces sending to a rate: how many packets are due at a time.
#[derive(Debug, Clone, Copy)]
pub struct Pacer {
    /// Packets per second, or `None` for as fast as the port takes them.
    rate: Option<f64>,
    start_ns: u64,
    released: u64,
}

impl Pacer {
    /// Creates a pacer that starts at `start_ns`.
    pub fn new(rate: Option<f64>, start_ns: u64) -> Pacer {
        Pacer { rate: rate.filter(|r| *r > 0.0), start_ns, released: 0 }
    }

    /// Packets due at `now_ns` (at most one burst), counted as released.
    pub fn due(&mut self, now_ns: u64) -> usize {
        let Some(rate) = self.rate else {
            return MAX_BURST;
        };
        let elapsed = now_ns.saturating_sub(self.start_ns) as f64 / 1e9;
        let target = (elapsed * rate) as u64;
        let due = target.saturating_sub(self.released).min(MAX_BURST as u64);
        self.released += due;
        due as usize
    }

    /// Reports that only `sent` of the last `due` packets went out, so the rest are due
    /// again.
    pub fn unsent(&mut self, count: usize) {
        self.released = self.released.saturating_sub(count as u64);
    }
}

#[cfg(test)]
mod tests {
    use svr_dataplane::io::mem::{MemConfig, mem_pair};

    use super::*;
    use crate::probe::Probe;
    use crate::topology::FORWARD;

    fn receive_all(port: &mut dyn PacketIo) -> Vec<Vec<u8>> {
        let mut frames = Vec::new();
        let mut burst = Burst::new();
        while port.rx_burst(&mut burst).unwrap() > 0 {
            for frame in burst.drain() {
                frames.push(frame.data().to_vec());
                port.free(frame);
            }
        }
        frames
    }

    #[test]
    fn generator_round_robin_flows() {
        let (mut tx, mut rx) = mem_pair(&MemConfig::default()).unwrap();
        let mut generator = Generator::new(&FORWARD, 3, SizeMix::Fixed(64));
        assert_eq!(generator.send(&mut tx, 7, 55), 7);
        let probes: Vec<Probe> =
            receive_all(&mut rx).iter().map(|f| Probe::from_frame(f).unwrap()).collect();
        let flows: Vec<u16> = probes.iter().map(|p| p.flow).collect();
        assert_eq!(flows, [0, 1, 2, 0, 1, 2, 0]);
        let sequences: Vec<u64> = probes.iter().map(|p| p.sequence).collect();
        assert_eq!(sequences, [0, 0, 0, 1, 1, 1, 2]);
        assert!(probes.iter().all(|p| p.sent_ns == 55));
        assert_eq!(generator.sent(), [3, 2, 2]);
    }

    #[test]
    fn generator_imix_sizes() {
        let (mut tx, mut rx) = mem_pair(&MemConfig::default()).unwrap();
        let mut generator = Generator::new(&FORWARD, 1, SizeMix::Imix);
        generator.send(&mut tx, 12, 0);
        let sizes: Vec<usize> = receive_all(&mut rx).iter().map(Vec::len).collect();
        assert_eq!(sizes, IMIX);
    }

    #[test]
    fn generator_counts_tx_drops() {
        let config = MemConfig { frames: 64, frame_size: 2048, ring_size: 4 };
        let (mut tx, _rx) = mem_pair(&config).unwrap();
        let mut generator = Generator::new(&FORWARD, 1, SizeMix::Fixed(64));
        assert_eq!(generator.send(&mut tx, 10, 0), 10);
        assert_eq!(generator.tx_dropped(), 6);
        assert_eq!(generator.sent(), [10]);
    }

    #[test]
    fn size_mix_parse() {
        assert_eq!(SizeMix::parse("64"), Ok(SizeMix::Fixed(64)));
        assert_eq!(SizeMix::parse("IMIX"), Ok(SizeMix::Imix));
        assert!(SizeMix::parse("big").is_err());
        assert!(SizeMix::parse("100000").is_err());
        assert!(SizeMix::parse("0").is_err());
    }

    #[test]
    fn pacer_releases_at_rate() {
        let mut pacer = Pacer::new(Some(1000.0), 0);
        assert_eq!(pacer.due(0), 0);
        assert_eq!(pacer.due(10_000_000), 10, "10 ms at 1000 pps");
        assert_eq!(pacer.due(10_000_000), 0);
        assert_eq!(pacer.due(1_000_000_000), MAX_BURST, "capped at one burst");
        pacer.unsent(5);
        assert_eq!(pacer.due(1_000_000_000), MAX_BURST);
    }

    #[test]
    fn pacer_unlimited() {
        let mut pacer = Pacer::new(None, 0);
        assert_eq!(pacer.due(0), MAX_BURST);
    }
}
