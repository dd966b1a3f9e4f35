//! Hand-off between the workers of one router: a bounded lock-free ring for each ordered
//! pair of workers, the preallocated buffers that travel on it, and the doorbell that wakes
//! a sleeping worker when something is handed to it.
//!
//! Two kinds of packets cross a ring:
//! - a received packet whose session another worker owns ([`HandoffKind::Process`]), which
//!   the owner runs through its engine;
//! - a packet to send on a port another worker polls ([`HandoffKind::Transmit`]), which
//!   that worker copies into a frame of the port and sends.
//!
//! Each ring has a fixed set of buffers. The sender takes a spare buffer, copies the packet
//! into it and pushes it. The receiver returns the buffer to the same ring's spare queue
//! when done. Nothing is allocated per packet, and a full ring or an empty spare queue is
//! a counted drop: the sender never waits.

use std::io;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::atomic::{AtomicBool, Ordering, fence};

use crossbeam_queue::ArrayQueue;
use nix::sys::eventfd::{EfdFlags, EventFd};

use crate::epoch::InterfaceId;
use crate::io::{DEFAULT_HEADROOM, Frame, FrameBuf};
use crate::shard::MAX_WORKERS;

/// Pool id of hand-off buffers. Memory-backend pools number from 1, so no port takes a
/// hand-off frame for one of its own.
const HANDOFF_POOL: u32 = 0;

/// The action the receiving worker takes on a handed-off packet.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HandoffKind {
    /// Run it through the engine as if received on `port`: the receiver owns its session.
    Process,
    /// Send it on `port`, which the receiver polls.
    Transmit,
}

/// A packet handed from one worker to another.
#[derive(Debug)]
pub struct Handoff {
    pub kind: HandoffKind,
    /// The port the packet was received on (`Process`) or is to be sent on (`Transmit`).
    pub port: InterfaceId,
    /// The packet, in a buffer of the ring it travels on.
    pub frame: Frame,
}

/// Sizes of the hand-off rings.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HandoffConfig {
    /// Packets each ring holds, and buffers it owns.
    pub depth: usize,
    /// Size of each buffer in bytes, headroom included.
    pub frame_size: usize,
}

impl Default for HandoffConfig {
    fn default() -> HandoffConfig {
        HandoffConfig { depth: 256, frame_size: 2048 }
    }
}

/// One direction between two workers: the packets in flight and the spare buffers.
///
/// The workers use `queue` with one producer (the sender) and one consumer (the receiver),
/// and the spare queue the other way round. Both are crossbeam `ArrayQueue`s, whose push
/// and pop never block.
#[derive(Debug)]
pub struct HandoffRing {
    queue: ArrayQueue<Handoff>,
    spare: ArrayQueue<Box<[u8]>>,
}

impl HandoffRing {
    /// Creates a ring of `config.depth` packets (at least one) with as many buffers.
    pub fn new(config: &HandoffConfig) -> HandoffRing {
        let depth = config.depth.max(1);
        let frame_size = config.frame_size.max(DEFAULT_HEADROOM + 64);
        let spare = ArrayQueue::new(depth);
        for _ in 0..depth {
            let _ = spare.push(vec![0u8; frame_size].into_boxed_slice());
        }
        HandoffRing { queue: ArrayQueue::new(depth), spare }
    }

    /// Takes a spare buffer as an empty frame with [`DEFAULT_HEADROOM`], or `None` when
    /// every buffer is in flight.
    pub fn take_frame(&self) -> Option<Frame> {
        let bytes = self.spare.pop()?;
        Some(Frame::from_parts(FrameBuf::Heap { bytes, pool: HANDOFF_POOL }, DEFAULT_HEADROOM, 0))
    }

    /// Queues a packet for the receiver; gives it back when the ring is full.
    pub fn push(&self, handoff: Handoff) -> Result<(), Box<Handoff>> {
        self.queue.push(handoff).map_err(Box::new)
    }

    /// Takes the oldest packet in flight.
    pub fn pop(&self) -> Option<Handoff> {
        self.queue.pop()
    }

    /// Returns a frame taken from this ring to its spare buffers. A frame from anywhere
    /// else is dropped and reported as `false`.
    pub fn recycle(&self, frame: Frame) -> bool {
        let (buf, _, _) = frame.into_parts();
        match buf {
            FrameBuf::Heap { bytes, pool: HANDOFF_POOL } => {
                // The spare queue has room for every buffer the ring owns. The push fails
                // only when a buffer of another ring was returned here, and that one is freed.
                self.spare.push(bytes).is_ok()
            }
            _ => false,
        }
    }

    /// Packets in flight.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no packet is in flight.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Buffers not in flight.
    pub fn spare(&self) -> usize {
        self.spare.len()
    }
}

/// Whether `frame` is a hand-off buffer rather than a port's frame.
pub fn is_handoff_frame(frame: &Frame) -> bool {
    matches!(frame.buf(), FrameBuf::Heap { pool: HANDOFF_POOL, .. })
}

/// Wakes a worker that sleeps while packets are handed to it.
///
/// The sleeper raises `sleeping`, then checks its rings once more before it blocks on the
/// eventfd; a sender checks `sleeping` after it pushes. A SeqCst fence on each side makes
/// at least one of them see the other's write, so a wakeup is never lost. The eventfd is
/// written only while its worker sleeps, so a busy worker costs its senders no system call.
#[derive(Debug)]
pub struct Doorbell {
    sleeping: AtomicBool,
    event: EventFd,
}

impl Doorbell {
    /// Creates a doorbell with a non-blocking eventfd.
    pub fn new() -> io::Result<Doorbell> {
        let event = EventFd::from_flags(EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(io::Error::from)?;
        Ok(Doorbell { sleeping: AtomicBool::new(false), event })
    }

    /// Wakes the worker if it sleeps. Returns whether it did.
    pub fn ring(&self) -> bool {
        fence(Ordering::SeqCst);
        if !self.sleeping.load(Ordering::SeqCst) {
            return false;
        }
        // A full counter (EAGAIN) already wakes the sleeper, so the result is not needed.
        let _ = self.event.write(1);
        true
    }

    /// Marks the worker as about to sleep. The worker must check its rings after this and
    /// before it blocks on [`fd`](Self::fd).
    pub fn prepare_sleep(&self) {
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
    }

    /// Marks the worker as awake and clears the eventfd.
    pub fn wake_up(&self) {
        self.sleeping.store(false, Ordering::SeqCst);
        // EAGAIN means nobody rang.
        let _ = self.event.read();
    }

    /// Whether the worker is marked as sleeping.
    pub fn is_sleeping(&self) -> bool {
        self.sleeping.load(Ordering::SeqCst)
    }

    /// The descriptor that turns readable when the doorbell rings.
    pub fn fd(&self) -> BorrowedFd<'_> {
        self.event.as_fd()
    }
}

/// Why a hand-off mesh could not be built.
#[derive(Debug)]
#[non_exhaustive]
pub enum MeshError {
    /// The worker count is zero or above [`MAX_WORKERS`].
    Workers { workers: usize },
    /// A port is assigned to a worker that does not exist.
    PortOwner { port: usize, worker: usize, workers: usize },
    /// An eventfd could not be created.
    Doorbell(io::Error),
}

impl std::fmt::Display for MeshError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            MeshError::Workers { workers } => {
                write!(f, "invalid worker count {workers}, expected 1 to {MAX_WORKERS}")
            }
            MeshError::PortOwner { port, worker, workers } => write!(
                f,
                "port {port} assigned to worker {worker}, but only {workers} workers exist"
            ),
            MeshError::Doorbell(error) => write!(f, "failed to create a doorbell eventfd: {error}"),
        }
    }
}

impl std::error::Error for MeshError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            MeshError::Doorbell(error) => Some(error),
            _ => None,
        }
    }
}

/// Every ring and doorbell of one router's workers, and which worker polls each port.
#[derive(Debug)]
pub struct Mesh {
    workers: usize,
    /// Ring from worker `i` to worker `j` at `i * workers + j`; none from a worker to
    /// itself.
    rings: Vec<Option<HandoffRing>>,
    doorbells: Vec<Doorbell>,
    port_owners: Vec<usize>,
}

impl Mesh {
    /// Rings between `workers` workers; `port_owners[p]` is the worker that polls port `p`.
    pub fn new(
        workers: usize,
        port_owners: Vec<usize>,
        config: &HandoffConfig,
    ) -> Result<Mesh, MeshError> {
        if workers == 0 || workers > MAX_WORKERS {
            return Err(MeshError::Workers { workers });
        }
        if let Some((port, worker)) =
            port_owners.iter().enumerate().find(|(_, worker)| **worker >= workers)
        {
            return Err(MeshError::PortOwner { port, worker: *worker, workers });
        }
        let rings = (0..workers * workers)
            .map(|index| (index / workers != index % workers).then(|| HandoffRing::new(config)))
            .collect();
        let doorbells = (0..workers).map(|_| Doorbell::new()).collect::<io::Result<Vec<_>>>();
        Ok(Mesh { workers, rings, doorbells: doorbells.map_err(MeshError::Doorbell)?, port_owners })
    }

    /// Number of workers.
    pub fn workers(&self) -> usize {
        self.workers
    }

    /// The ring from worker `from` to worker `to`, or `None` when `from == to` or either
    /// does not exist.
    pub fn ring(&self, from: usize, to: usize) -> Option<&HandoffRing> {
        if from >= self.workers || to >= self.workers {
            return None;
        }
        self.rings.get(from * self.workers + to)?.as_ref()
    }

    /// The doorbell of `worker`.
    pub fn doorbell(&self, worker: usize) -> Option<&Doorbell> {
        self.doorbells.get(worker)
    }

    /// The worker that polls `port`.
    pub fn port_owner(&self, port: InterfaceId) -> Option<usize> {
        self.port_owners.get(usize::from(port)).copied()
    }

    /// Whether any ring towards `worker` has a packet in flight.
    pub fn has_pending(&self, worker: usize) -> bool {
        (0..self.workers).any(|from| self.ring(from, worker).is_some_and(|ring| !ring.is_empty()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::time::{Duration, Instant};

    use nix::poll::{PollFd, PollFlags, PollTimeout, poll};

    use super::*;

    fn small() -> HandoffConfig {
        HandoffConfig { depth: 4, frame_size: 512 }
    }

    fn packet(ring: &HandoffRing, byte: u8) -> Handoff {
        let mut frame = ring.take_frame().unwrap();
        frame.copy_from(&[byte; 60]).unwrap();
        Handoff { kind: HandoffKind::Process, port: 1, frame }
    }

    #[test]
    fn ring_full_gives_packet_back() {
        let ring = HandoffRing::new(&HandoffConfig { depth: 2, frame_size: 512 });
        ring.push(packet(&ring, 1)).unwrap();
        ring.push(packet(&ring, 2)).unwrap();
        assert!(ring.take_frame().is_none(), "every buffer is in flight");

        // A frame from elsewhere fills no slot it does not have.
        let mut extra = HandoffRing::new(&small()).take_frame().unwrap();
        extra.copy_from(&[3; 60]).unwrap();
        let rejected = ring.push(Handoff { kind: HandoffKind::Transmit, port: 0, frame: extra });
        let rejected = rejected.unwrap_err();
        assert_eq!(rejected.frame.data(), &[3; 60]);
        assert_eq!(ring.len(), 2);
    }

    #[test]
    fn ring_wraps_in_order() {
        let ring = HandoffRing::new(&small());
        for round in 0..10u8 {
            for i in 0..3u8 {
                ring.push(packet(&ring, round * 3 + i)).unwrap();
            }
            for i in 0..3u8 {
                let handoff = ring.pop().unwrap();
                assert_eq!(handoff.frame.data()[0], round * 3 + i, "round {round}");
                assert!(ring.recycle(handoff.frame));
            }
        }
        assert!(ring.is_empty());
        assert_eq!(ring.spare(), 4, "every buffer came back");
    }

    #[test]
    fn ring_frame_has_headroom() {
        let ring = HandoffRing::new(&small());
        let frame = ring.take_frame().unwrap();
        assert_eq!(frame.headroom(), DEFAULT_HEADROOM);
        assert_eq!(frame.capacity(), 512);
        assert!(is_handoff_frame(&frame));
    }

    #[test]
    fn ring_recycle_rejects_port_frame() {
        use crate::io::PacketIo;
        use crate::io::mem::{MemConfig, mem_pair};

        let ring = HandoffRing::new(&small());
        let (mut port, _peer) = mem_pair(&MemConfig::default()).unwrap();
        let frame = port.alloc().unwrap();
        assert!(!is_handoff_frame(&frame));
        assert!(!ring.recycle(frame));
        assert_eq!(ring.spare(), 4);
    }

    #[test]
    fn ring_across_threads() {
        let ring = Arc::new(HandoffRing::new(&HandoffConfig { depth: 8, frame_size: 512 }));
        let producer = {
            let ring = Arc::clone(&ring);
            std::thread::spawn(move || {
                let mut sent = 0u32;
                let deadline = Instant::now() + Duration::from_secs(10);
                while sent < 10_000 && Instant::now() < deadline {
                    let Some(mut frame) = ring.take_frame() else { continue };
                    frame.copy_from(&sent.to_be_bytes()).unwrap();
                    let handoff = Handoff { kind: HandoffKind::Process, port: 0, frame };
                    if let Err(back) = ring.push(handoff) {
                        ring.recycle(back.frame);
                        continue;
                    }
                    sent += 1;
                }
                sent
            })
        };
        let mut expected = 0u32;
        let deadline = Instant::now() + Duration::from_secs(10);
        while expected < 10_000 && Instant::now() < deadline {
            if let Some(handoff) = ring.pop() {
                assert_eq!(handoff.frame.data(), expected.to_be_bytes());
                ring.recycle(handoff.frame);
                expected += 1;
            }
        }
        assert_eq!(producer.join().unwrap(), 10_000);
        assert_eq!(expected, 10_000);
    }

    #[test]
    fn doorbell_silent_while_awake() {
        let bell = Doorbell::new().unwrap();
        assert!(!bell.ring());
        let mut fds = [PollFd::new(bell.fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 0, "eventfd not written");
    }

    #[test]
    fn doorbell_wakes_sleeper() {
        let bell = Arc::new(Doorbell::new().unwrap());
        bell.prepare_sleep();
        let ringer = {
            let bell = Arc::clone(&bell);
            std::thread::spawn(move || {
                std::thread::sleep(Duration::from_millis(20));
                bell.ring()
            })
        };
        let start = Instant::now();
        let mut fds = [PollFd::new(bell.fd(), PollFlags::POLLIN)];
        let ready = poll(&mut fds, PollTimeout::from(5000u16)).unwrap();
        assert_eq!(ready, 1);
        assert!(start.elapsed() < Duration::from_secs(4));
        assert!(ringer.join().unwrap(), "the ringer saw the sleeper");

        bell.wake_up();
        assert!(!bell.is_sleeping());
        let mut fds = [PollFd::new(bell.fd(), PollFlags::POLLIN)];
        assert_eq!(poll(&mut fds, PollTimeout::ZERO).unwrap(), 0, "eventfd cleared");
    }

    #[test]
    fn mesh_rings_between_workers_only() {
        let mesh = Mesh::new(3, vec![0, 1, 0], &small()).unwrap();
        assert!(mesh.ring(0, 0).is_none());
        assert!(mesh.ring(0, 1).is_some());
        assert!(mesh.ring(2, 1).is_some());
        assert!(mesh.ring(3, 1).is_none());
        assert_eq!(mesh.port_owner(1), Some(1));
        assert_eq!(mesh.port_owner(3), None);
        assert!(!mesh.has_pending(1));
        let ring = mesh.ring(2, 1).unwrap();
        ring.push(packet(ring, 0)).unwrap();
        assert!(mesh.has_pending(1));
        assert!(!mesh.has_pending(0));
    }

    #[test]
    fn mesh_rejects_zero_workers() {
        let error = Mesh::new(0, vec![], &small()).unwrap_err();
        assert!(matches!(error, MeshError::Workers { workers: 0 }));
    }

    #[test]
    fn mesh_rejects_too_many_workers() {
        let error = Mesh::new(MAX_WORKERS + 1, vec![], &small()).unwrap_err();
        assert!(matches!(error, MeshError::Workers { .. }));
        assert!(error.to_string().contains("65"));
    }

    #[test]
    fn mesh_error_doorbell_has_source() {
        let error = MeshError::Doorbell(io::Error::from_raw_os_error(libc::EMFILE));
        assert!(error.to_string().starts_with("failed to create a doorbell eventfd: "));
        assert!(std::error::Error::source(&error).is_some());
    }

    #[test]
    fn mesh_rejects_unknown_port_owner() {
        let error = Mesh::new(2, vec![0, 2], &small()).unwrap_err();
        assert!(matches!(error, MeshError::PortOwner { port: 1, worker: 2, workers: 2 }));
    }
}
