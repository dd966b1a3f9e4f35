//! Two router workers driven in lockstep on one thread, with the generator feeding host1's
//! side and a [`Receiver`] draining host5's, for the in-process forwarding legs.
//!
//! Each step sends at most one burst, polls r1, moves what r1 sent, polls r2 and drains
//! what r2 sent. Only the two `poll_once` calls are timed as worker time, so the
//! generator, the receiver and any copying between loopback ports stay outside the
//! per-worker figures.
//!
//! Two wirings:
//! - [`Wiring::Paired`]: memory port pairs; host1 and host5 hold the far ends of the
//!   routers' LAN pairs, and the two WAN ports are one pair.
//! - [`Wiring::Loopback`]: every router port transmits into its own receive queue, as a
//!   DPDK `net_ring` port does. After each poll the bench takes what the router sent and
//!   copies it into the next port, so a router never receives its own output.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;
use svr_dataplane::io::mem::MemPort;
use svr_dataplane::io::{Burst, PacketIo};
use svr_dataplane::worker::Port;

use crate::generator::Generator;
use crate::probe::now_ns;
use crate::receiver::{Receiver, new_histogram};
use crate::topology::{LAN, RouterWorker, WAN};

/// The connection of the routers' ports.
pub enum Wiring {
    Paired {
        host1: MemPort,
        host5: MemPort,
    },
    #[cfg_attr(
        not(feature = "dpdk"),
        expect(dead_code, reason = "only the DPDK ring leg has loopback ports")
    )]
    Loopback,
}

/// The two routers and their wiring.
pub struct Pipeline {
    pub r1: RouterWorker,
    pub r2: RouterWorker,
    pub wiring: Wiring,
}

/// The measurements of one timed run.
#[derive(Debug)]
pub struct RunSample {
    pub delivered: u64,
    pub wall: Duration,
    pub r1_busy: Duration,
    pub r2_busy: Duration,
    /// Time of each `poll_once` that received frames, in nanoseconds.
    pub r1_bursts: Histogram<u64>,
    pub r2_bursts: Histogram<u64>,
}

impl Pipeline {
    /// Completes the metadata handshake of every flow: one packet each way and one more
    /// forward, after which neither router adds metadata. Returns an error when a packet
    /// did not arrive or a router dropped one.
    pub fn warm_up(
        &mut self,
        forward: &mut Generator,
        reverse: &mut Generator,
    ) -> Result<(), String> {
        let flows = forward.sent().len();
        let mut sink = Receiver::new(flows as u16);
        let drops_before = (
            self.r1.worker.engine().counters().total_drops(),
            self.r2.worker.engine().counters().total_drops(),
        );
        for round in 0..3 {
            let mut left = flows;
            while left > 0 {
                let count = left.min(32);
                let sent = if round == 1 {
                    self.send_reverse(reverse, count)
                } else {
                    self.send_forward(forward, count)
                };
                if sent == 0 {
                    return Err("no free frame on a host port during warm-up".into());
                }
                left -= sent;
                for _ in 0..4 {
                    self.step(&mut sink, None);
                }
            }
        }
        for _ in 0..8 {
            self.step(&mut sink, None);
        }

        let r1 = self.r1.worker.engine().counters().total_drops() - drops_before.0;
        let r2 = self.r2.worker.engine().counters().total_drops() - drops_before.1;
        if r1 + r2 > 0 {
            return Err(format!("routers dropped packets during warm-up: r1 {r1}, r2 {r2}"));
        }
        let delivered = sink.totals(forward.sent()).received;
        if delivered != 2 * flows as u64 {
            return Err(format!("warm-up delivered {delivered} of {} packets", 2 * flows));
        }
        Ok(())
    }

    /// Sends bursts for `run` and returns what was delivered, with every probe's latency
    /// recorded in `sink`.
    pub fn run(
        &mut self,
        generator: &mut Generator,
        sink: &mut Receiver,
        run: Duration,
    ) -> RunSample {
        self.run_inner(generator, None, sink, run)
    }

    /// Like [`Pipeline::run`], with `replies` packets from host5 after every forward burst,
    /// so the egress can acknowledge metadata, as a payload-key rotation needs.
    pub fn run_with_replies(
        &mut self,
        forward: &mut Generator,
        reverse: &mut Generator,
        replies: usize,
        sink: &mut Receiver,
        run: Duration,
    ) -> RunSample {
        self.run_inner(forward, Some((reverse, replies)), sink, run)
    }

    fn run_inner(
        &mut self,
        forward: &mut Generator,
        mut reverse: Option<(&mut Generator, usize)>,
        sink: &mut Receiver,
        run: Duration,
    ) -> RunSample {
        let mut sample = RunSample {
            delivered: 0,
            wall: Duration::ZERO,
            r1_busy: Duration::ZERO,
            r2_busy: Duration::ZERO,
            r1_bursts: new_histogram(),
            r2_bursts: new_histogram(),
        };
        let start = Instant::now();
        while start.elapsed() < run {
            self.send_forward(forward, 32);
            if let Some((generator, replies)) = reverse.as_mut() {
                self.send_reverse(generator, *replies);
            }
            sample.delivered += self.step(sink, Some(&mut sample));
        }
        for _ in 0..4 {
            sample.delivered += self.step(sink, Some(&mut sample));
        }
        sample.wall = start.elapsed();
        sample
    }

    /// Sends `count` packets in bursts, stepping after each, and returns how many reached
    /// host5. With a generator of at least `count` flows, each is the first of its flow.
    pub fn first_packets(
        &mut self,
        generator: &mut Generator,
        sink: &mut Receiver,
        count: usize,
    ) -> u64 {
        let mut sent = 0;
        let mut delivered = 0;
        while sent < count {
            let now = self.send_forward(generator, (count - sent).min(32));
            if now == 0 {
                break;
            }
            sent += now;
            delivered += self.step(sink, None);
        }
        for _ in 0..16 {
            delivered += self.step(sink, None);
        }
        delivered
    }

    /// Sends up to `count` forward frames from host1.
    fn send_forward(&mut self, generator: &mut Generator, count: usize) -> usize {
        let now = now_ns();
        match &mut self.wiring {
            Wiring::Paired { host1, .. } => generator.send(host1, count, now),
            Wiring::Loopback => match self.r1.worker.port(LAN) {
                Some(port) => generator.send(port.as_mut(), count, now),
                None => 0,
            },
        }
    }

    /// Sends up to `count` replies from host5.
    fn send_reverse(&mut self, generator: &mut Generator, count: usize) -> usize {
        let now = now_ns();
        match &mut self.wiring {
            Wiring::Paired { host5, .. } => generator.send(host5, count, now),
            Wiring::Loopback => match self.r2.worker.port(LAN) {
                Some(port) => generator.send(port.as_mut(), count, now),
                None => 0,
            },
        }
    }

    /// Polls both routers once and moves their output; returns probes delivered to host5.
    fn step(&mut self, sink: &mut Receiver, mut sample: Option<&mut RunSample>) -> u64 {
        let t0 = Instant::now();
        let got = self.r1.worker.poll_once(t0);
        let t1 = Instant::now();
        if let Some(sample) = sample.as_deref_mut() {
            sample.r1_busy += t1 - t0;
            if got > 0 {
                let _ = sample.r1_bursts.record(((t1 - t0).as_nanos() as u64).max(1));
            }
        }
        if let Wiring::Loopback = self.wiring {
            self.move_loopback_after_r1();
        }

        let t2 = Instant::now();
        let got = self.r2.worker.poll_once(t2);
        let t3 = Instant::now();
        if let Some(sample) = sample {
            sample.r2_busy += t3 - t2;
            if got > 0 {
                let _ = sample.r2_bursts.record(((t3 - t2).as_nanos() as u64).max(1));
            }
        }

        match &mut self.wiring {
            Wiring::Paired { host1, host5 } => {
                discard(host1);
                drain(host5, sink)
            }
            Wiring::Loopback => {
                let Pipeline { r1, r2, .. } = self;
                if let (Some(from), Some(to)) = (r2.worker.port(WAN), r1.worker.port(WAN)) {
                    // Two different workers, so the borrows do not overlap; copy through a
                    // staging buffer because both ports live in different structs.
                    copy_frames(from.as_mut(), to.as_mut());
                }
                match r2.worker.port(LAN) {
                    Some(port) => drain(port.as_mut(), sink),
                    None => 0,
                }
            }
        }
    }

    fn move_loopback_after_r1(&mut self) {
        let Pipeline { r1, r2, .. } = self;
        if let (Some(from), Some(to)) = (r1.worker.port(WAN), r2.worker.port(WAN)) {
            copy_frames(from.as_mut(), to.as_mut());
        }
        if let Some(port) = r1.worker.port(LAN) {
            discard(port.as_mut());
        }
    }
}

/// Receives every waiting frame on `port` into `sink`; returns how many carried probes.
pub fn drain(port: &mut dyn PacketIo, sink: &mut Receiver) -> u64 {
    let mut burst = Burst::new();
    let mut delivered = 0;
    while port.rx_burst(&mut burst).unwrap_or(0) > 0 {
        let now = now_ns();
        for frame in burst.drain() {
            if sink.record_frame(frame.data(), now).is_some() {
                delivered += 1;
            }
            port.free(frame);
        }
    }
    delivered
}

/// Frees every waiting frame on `port`.
pub fn discard(port: &mut dyn PacketIo) {
    let mut burst = Burst::new();
    while port.rx_burst(&mut burst).unwrap_or(0) > 0 {
        port.free_burst(&mut burst);
    }
}

/// Moves every waiting frame of `from` into a frame of `to`'s pool and sends it.
fn copy_frames(from: &mut dyn PacketIo, to: &mut dyn PacketIo) {
    let mut incoming = Burst::new();
    let mut outgoing = Burst::new();
    while from.rx_burst(&mut incoming).unwrap_or(0) > 0 {
        for frame in incoming.drain() {
            if let Some(mut copy) = to.alloc() {
                if copy.copy_from(frame.data()).is_ok() {
                    if let Err(copy) = outgoing.push(copy) {
                        to.free(copy);
                    }
                } else {
                    to.free(copy);
                }
            }
            from.free(frame);
        }
        let _ = to.tx_burst(&mut outgoing);
    }
}

/// Boxes a port for a worker.
pub fn boxed(port: impl PacketIo + Send + 'static) -> Port {
    Box::new(port)
}
