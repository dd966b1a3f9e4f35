//! The WAN between the routers: one thread that copies every frame from one router's end
//! of a WAN link to the other's, and inspects it on the way, as the bridge and tshark of
//! the namespace demo do. A link can be cut, which drops its frames in both directions.
//!
//! Each frame is counted by kind (SVR, BFD, ARP and neighbour discovery, other) and
//! searched whole for the run's plaintext marker. An SVR packet is counted as the capture
//! scan of the namespace demo counts it: UDP between two waypoint addresses with both
//! ports in 16384-65535.

use std::net::IpAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::Duration;

use svr_dataplane::forward::checksum::protocol;
use svr_dataplane::forward::parse::parse_frame;
use svr_dataplane::forward::{is_control_packet, is_neighbour_discovery};
use svr_dataplane::io::mem::MemPort;
use svr_dataplane::io::{Burst, PacketIo};

use crate::topology::WAN_LINKS;

/// Lowest UDP port of an SVR packet between waypoints.
const SVR_PORTS_START: u16 = 16384;

/// Passes without a frame after which the wire thread sleeps between passes.
const SPIN_PASSES: u32 = 64;

/// Sleep between passes of an idle wire.
const IDLE_SLEEP: Duration = Duration::from_micros(200);

/// Counts of one direction of one link. Frames are counted by kind whether they cross or
/// are dropped by a cut.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DirectionCounts {
    pub frames: u64,
    pub bytes: u64,
    pub svr: u64,
    pub bfd: u64,
    pub discovery: u64,
    pub other: u64,
    /// Frames that contain the plaintext marker anywhere.
    pub marker_frames: u64,
    /// Frames dropped because the link was cut.
    pub cut: u64,
    /// SVR packets changed by [`Wire::corrupt_svr`].
    pub corrupted: u64,
    /// Frames the other end had no buffer or ring space for.
    pub overflow: u64,
}

impl DirectionCounts {
    /// Returns the counts since `earlier`.
    pub fn since(&self, earlier: &DirectionCounts) -> DirectionCounts {
        DirectionCounts {
            frames: self.frames - earlier.frames,
            bytes: self.bytes - earlier.bytes,
            svr: self.svr - earlier.svr,
            bfd: self.bfd - earlier.bfd,
            discovery: self.discovery - earlier.discovery,
            other: self.other - earlier.other,
            marker_frames: self.marker_frames - earlier.marker_frames,
            cut: self.cut - earlier.cut,
            corrupted: self.corrupted - earlier.corrupted,
            overflow: self.overflow - earlier.overflow,
        }
    }
}

/// Counts of every link, by link (in [`WAN_LINKS`] order) and direction (r1 to r2, then
/// r2 to r1).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WireCounts {
    pub links: [[DirectionCounts; 2]; 2],
}

impl WireCounts {
    pub fn since(&self, earlier: &WireCounts) -> WireCounts {
        let mut counts = WireCounts::default();
        for link in 0..2 {
            for direction in 0..2 {
                counts.links[link][direction] =
                    self.links[link][direction].since(&earlier.links[link][direction]);
            }
        }
        counts
    }

    /// Returns the sum of `field` over links and directions.
    pub fn total(&self, field: impl Fn(&DirectionCounts) -> u64) -> u64 {
        self.links.iter().flatten().map(field).sum()
    }
}

/// State shared by the wire thread and the demo.
#[derive(Debug)]
struct Shared {
    up: [AtomicBool; 2],
    corrupt: AtomicBool,
    stop: AtomicBool,
    counts: Mutex<WireCounts>,
}

/// The running wire.
pub struct Wire {
    shared: Arc<Shared>,
    thread: Option<JoinHandle<()>>,
}

/// One link: the wire's end towards r1 and towards r2.
pub struct LinkEnds {
    pub towards_r1: MemPort,
    pub towards_r2: MemPort,
}

impl Wire {
    /// Starts the wire over `links` (in [`WAN_LINKS`] order). `waypoints` are the four
    /// WAN addresses; `marker` is the plaintext the demo sends.
    pub fn start(
        links: [LinkEnds; 2],
        waypoints: Vec<IpAddr>,
        marker: Vec<u8>,
    ) -> std::io::Result<Wire> {
        let shared = Arc::new(Shared {
            up: [AtomicBool::new(true), AtomicBool::new(true)],
            corrupt: AtomicBool::new(false),
            stop: AtomicBool::new(false),
            counts: Mutex::new(WireCounts::default()),
        });
        let mut carrier = Carrier {
            links,
            inspector: Inspector { waypoints, marker },
            shared: Arc::clone(&shared),
            burst: Burst::new(),
            out: Burst::new(),
        };
        let thread =
            std::thread::Builder::new().name("wire".into()).spawn(move || carrier.run())?;
        Ok(Wire { shared, thread: Some(thread) })
    }

    /// Cuts (`up` false) or restores link `link` (an index of [`WAN_LINKS`]).
    pub fn set_up(&self, link: usize, up: bool) {
        if let Some(flag) = self.shared.up.get(link) {
            flag.store(up, Ordering::Relaxed);
        }
    }

    /// Starts or stops flipping the last bit of every SVR packet, which is in its HMAC,
    /// so that the receiving router must drop it.
    pub fn corrupt_svr(&self, on: bool) {
        self.shared.corrupt.store(on, Ordering::Relaxed);
    }

    pub fn counts(&self) -> WireCounts {
        *self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner)
    }

    pub fn stop(&mut self) {
        self.shared.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

impl Drop for Wire {
    fn drop(&mut self) {
        self.stop();
    }
}

/// The wire thread's state.
struct Carrier {
    links: [LinkEnds; 2],
    inspector: Inspector,
    shared: Arc<Shared>,
    burst: Burst,
    out: Burst,
}

impl Carrier {
    fn run(&mut self) {
        let mut idle = 0u32;
        while !self.shared.stop.load(Ordering::Relaxed) {
            let mut moved = 0;
            for link in 0..2 {
                for direction in 0..2 {
                    moved += self.carry(link, direction);
                }
            }
            if moved > 0 {
                idle = 0;
                continue;
            }
            idle = idle.saturating_add(1);
            if idle > SPIN_PASSES {
                std::thread::sleep(IDLE_SLEEP);
            }
        }
    }

    /// Moves one burst of link `link` in `direction` (0: r1 to r2), and returns how many
    /// frames arrived.
    fn carry(&mut self, link: usize, direction: usize) -> usize {
        let up = self.shared.up[link].load(Ordering::Relaxed);
        let corrupt = self.shared.corrupt.load(Ordering::Relaxed);
        let ends = &mut self.links[link];
        let (from, to) = if direction == 0 {
            (&mut ends.towards_r1, &mut ends.towards_r2)
        } else {
            (&mut ends.towards_r2, &mut ends.towards_r1)
        };
        let count = from.rx_burst(&mut self.burst).unwrap_or(0);
        if count == 0 {
            return 0;
        }
        let mut counts = DirectionCounts::default();
        for frame in self.burst.drain() {
            let svr = self.inspector.inspect(frame.data(), &mut counts);
            if !up {
                counts.cut += 1;
                from.free(frame);
                continue;
            }
            let Some(mut copy) = to.alloc() else {
                counts.overflow += 1;
                from.free(frame);
                continue;
            };
            let copied = copy.copy_from(frame.data());
            from.free(frame);
            if copied.is_err() {
                counts.overflow += 1;
                to.free(copy);
                continue;
            }
            if svr
                && corrupt
                && let Some(last) = copy.data_mut().last_mut()
            {
                *last ^= 1;
                counts.corrupted += 1;
            }
            let _ = self.out.push(copy);
        }
        let queued = self.out.len() as u64;
        let sent = to.tx_burst(&mut self.out).unwrap_or(0) as u64;
        counts.overflow += queued - sent;

        let mut shared = self.shared.counts.lock().unwrap_or_else(PoisonError::into_inner);
        let total = &mut shared.links[link][direction];
        add(total, &counts);
        count
    }
}

fn add(total: &mut DirectionCounts, counts: &DirectionCounts) {
    total.frames += counts.frames;
    total.bytes += counts.bytes;
    total.svr += counts.svr;
    total.bfd += counts.bfd;
    total.discovery += counts.discovery;
    total.other += counts.other;
    total.marker_frames += counts.marker_frames;
    total.cut += counts.cut;
    total.corrupted += counts.corrupted;
    total.overflow += counts.overflow;
}

/// Classifies and searches frames.
struct Inspector {
    waypoints: Vec<IpAddr>,
    marker: Vec<u8>,
}

impl Inspector {
    /// Counts `frame` by kind and searches it for the marker; returns whether it is an
    /// SVR packet.
    fn inspect(&self, frame: &[u8], counts: &mut DirectionCounts) -> bool {
        counts.frames += 1;
        counts.bytes += frame.len() as u64;
        if contains(frame, &self.marker) {
            counts.marker_frames += 1;
        }
        if is_neighbour_discovery(frame) {
            counts.discovery += 1;
        } else if is_control_packet(frame) {
            counts.bfd += 1;
        } else if self.is_svr(frame) {
            counts.svr += 1;
            return true;
        } else {
            counts.other += 1;
        }
        false
    }

    fn is_svr(&self, frame: &[u8]) -> bool {
        let Ok(parsed) = parse_frame(frame) else {
            return false;
        };
        let tuple = parsed.tuple;
        tuple.protocol == protocol::UDP
            && self.waypoints.contains(&tuple.source)
            && self.waypoints.contains(&tuple.destination)
            && tuple.source_port >= SVR_PORTS_START
            && tuple.destination_port >= SVR_PORTS_START
    }
}

/// Returns whether `needle` occurs in `haystack`.
fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    let Some((&first, _)) = needle.split_first() else {
        return false;
    };
    if haystack.len() < needle.len() {
        return false;
    }
    (0..=haystack.len() - needle.len())
        .any(|start| haystack[start] == first && haystack[start..].starts_with(needle))
}

/// Returns the name of link `link`, for output.
pub fn link_name(link: usize) -> &'static str {
    WAN_LINKS.get(link).copied().unwrap_or("?")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contains_finds_marker_anywhere() {
        assert!(contains(b"xxmarkerxx", b"marker"));
        assert!(contains(b"marker", b"marker"));
        assert!(!contains(b"markex", b"marker"));
        assert!(!contains(b"mark", b"marker"));
        assert!(!contains(b"anything", b""));
    }
}
