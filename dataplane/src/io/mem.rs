//! The in-memory backend: two linked ports over lock-free rings, sharing one fixed pool
//! of heap buffers. A frame sent on one port is received on its peer.
//!
//! Used by unit tests and in-process benchmarks, where it stands in for a wire.

use std::{
    sync::{
        Arc, Condvar, Mutex,
        atomic::{AtomicBool, AtomicU32, Ordering, fence},
    },
    time::Duration,
};

use crossbeam_queue::ArrayQueue;

use super::{Burst, DEFAULT_HEADROOM, Frame, IoError, IoStats, PacketIo, frame::FrameBuf};

/// Sizes of a memory port pair.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MemConfig {
    /// Buffers in the pool the two ports share.
    pub frames: usize,
    /// Size of each buffer in bytes, headroom included.
    pub frame_size: usize,
    /// Capacity in frames of each direction's ring; `tx_burst` drops frames beyond it.
    pub ring_size: usize,
}

impl Default for MemConfig {
    fn default() -> MemConfig {
        MemConfig { frames: 4096, frame_size: 2048, ring_size: 1024 }
    }
}

/// Smallest buffer a memory port accepts: the default headroom plus a minimum frame.
const MIN_FRAME_SIZE: usize = DEFAULT_HEADROOM + 64;

/// Largest buffer a memory port accepts, so that frame offsets fit in `u32` with room
/// to spare.
const MAX_FRAME_SIZE: usize = 64 * 1024;

/// Creates two linked ports: frames sent on the first are received on the second and the
/// other way round.
pub fn mem_pair(config: &MemConfig) -> Result<(MemPort, MemPort), IoError> {
    check_config(config)?;

    let pool = Arc::new(Pool::new(config));
    let a_to_b = Arc::new(Link::new(config.ring_size));
    let b_to_a = Arc::new(Link::new(config.ring_size));

    let a = MemPort::new(Arc::clone(&pool), Arc::clone(&a_to_b), Arc::clone(&b_to_a));
    let b = MemPort::new(pool, b_to_a, a_to_b);
    Ok((a, b))
}

/// One end of a memory port pair.
#[derive(Debug)]
pub struct MemPort {
    pool: Arc<Pool>,
    tx: Arc<Link>,
    rx: Arc<Link>,
    stats: IoStats,
}

impl MemPort {
    fn new(pool: Arc<Pool>, tx: Arc<Link>, rx: Arc<Link>) -> MemPort {
        MemPort { pool, tx, rx, stats: IoStats::default() }
    }

    /// Buffers currently free in the shared pool.
    pub fn pool_free(&self) -> usize {
        self.pool.free.len()
    }

    /// Frames waiting in this port's receive ring.
    pub fn rx_pending(&self) -> usize {
        self.rx.ring.len()
    }

    /// Returns a frame to the pool if it came from it, else counts and drops it.
    fn recycle(&mut self, frame: Frame) {
        let (buf, _, _) = frame.into_parts();
        match buf {
            FrameBuf::Heap { bytes, pool } if pool == self.pool.id => {
                // The pool has room for every buffer it ever handed out, so this push
                // only fails if a buffer were returned twice, which ownership rules out.
                let _ = self.pool.free.push(bytes);
            }
            _ => self.stats.foreign_frames += 1,
        }
    }

    fn owns(&self, frame: &Frame) -> bool {
        matches!(frame.buf(), FrameBuf::Heap { pool, .. } if *pool == self.pool.id)
    }
}

impl PacketIo for MemPort {
    fn rx_burst(&mut self, out: &mut Burst) -> Result<usize, IoError> {
        let mut received = 0;
        while !out.is_full() {
            let Some(frame) = self.rx.ring.pop() else { break };
            if let Err(frame) = out.push(frame) {
                // Unreachable because of the `is_full` check; keep the frame anyway.
                self.recycle(frame);
                break;
            }
            received += 1;
        }

        self.stats.rx_frames += received as u64;
        Ok(received)
    }

    fn tx_burst(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        let mut sent = 0;
        for frame in burst.drain() {
            if !self.owns(&frame) {
                self.stats.foreign_frames += 1;
                continue;
            }
            match self.tx.ring.push(frame) {
                Ok(()) => sent += 1,
                Err(frame) => {
                    self.stats.tx_dropped += 1;
                    let (buf, _, _) = frame.into_parts();
                    if let FrameBuf::Heap { bytes, .. } = buf {
                        let _ = self.pool.free.push(bytes);
                    }
                }
            }
        }

        if sent > 0 {
            self.tx.waker.wake();
        }
        self.stats.tx_frames += sent as u64;
        Ok(sent)
    }

    fn alloc(&mut self) -> Option<Frame> {
        let Some(bytes) = self.pool.free.pop() else {
            self.stats.alloc_failures += 1;
            return None;
        };
        let buf = FrameBuf::Heap { bytes, pool: self.pool.id };
        Some(Frame::from_parts(buf, DEFAULT_HEADROOM, 0))
    }

    fn free(&mut self, frame: Frame) {
        self.recycle(frame);
    }

    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, IoError> {
        Ok(self.rx.waker.wait(&self.rx.ring, timeout))
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}

/// The fixed set of buffers both ports of a pair draw from.
#[derive(Debug)]
struct Pool {
    /// Tags this pool's frames, so a port can tell them from another pool's.
    id: u32,
    free: ArrayQueue<Box<[u8]>>,
}

impl Pool {
    fn new(config: &MemConfig) -> Pool {
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);

        let free = ArrayQueue::new(config.frames);
        for _ in 0..config.frames {
            let _ = free.push(vec![0u8; config.frame_size].into_boxed_slice());
        }
        Pool { id: NEXT_ID.fetch_add(1, Ordering::Relaxed), free }
    }
}

/// One direction of a pair: the ring of frames in flight and the receiver's wakeup.
#[derive(Debug)]
struct Link {
    ring: ArrayQueue<Frame>,
    waker: Waker,
}

impl Link {
    fn new(ring_size: usize) -> Link {
        Link { ring: ArrayQueue::new(ring_size), waker: Waker::default() }
    }
}

/// Lets a receiver sleep on an empty ring without the sender taking a lock per burst.
///
/// The receiver raises `sleeping` and re-checks the ring before it waits; the sender
/// checks `sleeping` after it pushes. With a SeqCst fence on each side, at least one of
/// them sees the other's write, so a wakeup is never lost. The sender locks the mutex
/// only when the receiver is asleep.
#[derive(Debug, Default)]
struct Waker {
    sleeping: AtomicBool,
    lock: Mutex<()>,
    cond: Condvar,
}

impl Waker {
    fn wait(&self, ring: &ArrayQueue<Frame>, timeout: Duration) -> bool {
        if !ring.is_empty() {
            return true;
        }

        let guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sleeping.store(true, Ordering::SeqCst);
        fence(Ordering::SeqCst);
        if !ring.is_empty() {
            self.sleeping.store(false, Ordering::SeqCst);
            return true;
        }

        let (guard, _) =
            self.cond.wait_timeout(guard, timeout).unwrap_or_else(|poisoned| poisoned.into_inner());
        self.sleeping.store(false, Ordering::SeqCst);
        drop(guard);
        !ring.is_empty()
    }

    fn wake(&self) {
        fence(Ordering::SeqCst);
        if self.sleeping.load(Ordering::SeqCst) {
            // Taking the lock orders this notify after the receiver entered its wait.
            let _guard = self.lock.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            self.cond.notify_one();
        }
    }
}

fn check_config(config: &MemConfig) -> Result<(), IoError> {
    if config.frames == 0 {
        return Err(IoError::InvalidConfig {
            field: "memory pool frames",
            value: 0,
            expected: "at least 1",
        });
    }
    if config.ring_size == 0 {
        return Err(IoError::InvalidConfig {
            field: "memory ring size",
            value: 0,
            expected: "at least 1",
        });
    }
    if config.frame_size < MIN_FRAME_SIZE || config.frame_size > MAX_FRAME_SIZE {
        return Err(IoError::InvalidConfig {
            field: "memory frame size",
            value: config.frame_size as u64,
            expected: "320 to 65536 bytes",
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::{thread, time::Instant};

    use super::*;

    fn small() -> MemConfig {
        MemConfig { frames: 8, frame_size: 512, ring_size: 4 }
    }

    fn send_bytes(port: &mut MemPort, payloads: &[&[u8]]) -> usize {
        let mut burst = Burst::new();
        for payload in payloads {
            let mut frame = port.alloc().unwrap();
            frame.copy_from(payload).unwrap();
            burst.push(frame).unwrap();
        }
        port.tx_burst(&mut burst).unwrap()
    }

    #[test]
    fn mem_burst_round_trip() {
        let (mut a, mut b) = mem_pair(&MemConfig::default()).unwrap();
        assert_eq!(send_bytes(&mut a, &[b"one", b"two", b"three"]), 3);

        let mut burst = Burst::new();
        assert_eq!(b.rx_burst(&mut burst).unwrap(), 3);
        let got: Vec<&[u8]> = burst.iter().map(Frame::data).collect();
        assert_eq!(got, [&b"one"[..], b"two", b"three"]);

        b.free_burst(&mut burst);
        assert_eq!(b.rx_burst(&mut burst).unwrap(), 0);
        assert_eq!(a.stats().tx_frames, 3);
        assert_eq!(b.stats().rx_frames, 3);
    }

    #[test]
    fn mem_reverse_direction() {
        let (mut a, mut b) = mem_pair(&MemConfig::default()).unwrap();
        send_bytes(&mut b, &[b"back"]);

        let mut burst = Burst::new();
        assert_eq!(a.rx_burst(&mut burst).unwrap(), 1);
        assert_eq!(burst.as_slice()[0].data(), b"back");
        assert_eq!(b.rx_pending(), 0);
    }

    #[test]
    fn mem_pool_exhaustion_returns_none() {
        let (mut a, _b) = mem_pair(&small()).unwrap();
        let frames: Vec<Frame> = (0..8).map(|_| a.alloc().unwrap()).collect();

        assert!(a.alloc().is_none());
        assert_eq!(a.stats().alloc_failures, 1);

        for frame in frames {
            a.free(frame);
        }
        assert_eq!(a.pool_free(), 8);
        assert!(a.alloc().is_some());
    }

    #[test]
    fn mem_frames_return_to_pool() {
        let (mut a, mut b) = mem_pair(&small()).unwrap();
        send_bytes(&mut a, &[b"x", b"y"]);
        assert_eq!(a.pool_free(), 6);

        let mut burst = Burst::new();
        b.rx_burst(&mut burst).unwrap();
        b.free_burst(&mut burst);
        assert_eq!(a.pool_free(), 8);
    }

    #[test]
    fn mem_full_ring_drops_to_pool() {
        let (mut a, b) = mem_pair(&small()).unwrap();
        let sent = send_bytes(&mut a, &[b"1", b"2", b"3", b"4", b"5", b"6"]);

        assert_eq!(sent, 4);
        assert_eq!(a.stats().tx_dropped, 2);
        assert_eq!(a.pool_free(), 4);
        assert_eq!(b.rx_pending(), 4);
    }

    #[test]
    fn mem_rx_respects_burst_room() {
        let config = MemConfig { frames: 64, frame_size: 512, ring_size: 64 };
        let (mut a, mut b) = mem_pair(&config).unwrap();
        for _ in 0..2 {
            let payloads = [&b"p"[..]; 20];
            send_bytes(&mut a, &payloads);
        }

        let mut burst = Burst::new();
        assert_eq!(b.rx_burst(&mut burst).unwrap(), 32);
        assert_eq!(b.rx_burst(&mut burst).unwrap(), 0);
        assert_eq!(b.rx_pending(), 8);
    }

    #[test]
    fn mem_foreign_frame_counted() {
        let (mut a, _) = mem_pair(&small()).unwrap();
        let (mut other, _) = mem_pair(&small()).unwrap();
        let stranger = other.alloc().unwrap();

        let mut burst = Burst::new();
        burst.push(stranger).unwrap();
        assert_eq!(a.tx_burst(&mut burst).unwrap(), 0);
        assert_eq!(a.stats().foreign_frames, 1);
        assert_eq!(a.pool_free(), 8);
    }

    #[test]
    fn mem_wait_times_out_when_idle() {
        let (mut a, _b) = mem_pair(&small()).unwrap();
        let start = Instant::now();

        assert!(!a.wait_readable(Duration::from_millis(30)).unwrap());
        assert!(start.elapsed() >= Duration::from_millis(30));
    }

    #[test]
    fn mem_wait_wakes_on_send() {
        let (mut a, mut b) = mem_pair(&MemConfig::default()).unwrap();
        let sender = thread::spawn(move || {
            thread::sleep(Duration::from_millis(20));
            send_bytes(&mut a, &[b"wake"]);
            a
        });

        let start = Instant::now();
        assert!(b.wait_readable(Duration::from_secs(5)).unwrap());
        assert!(start.elapsed() < Duration::from_secs(4));
        let _a = sender.join().unwrap();

        let mut burst = Burst::new();
        assert_eq!(b.rx_burst(&mut burst).unwrap(), 1);
    }

    #[test]
    fn mem_wait_ready_returns_at_once() {
        let (mut a, mut b) = mem_pair(&MemConfig::default()).unwrap();
        send_bytes(&mut a, &[b"ready"]);

        let start = Instant::now();
        assert!(b.wait_readable(Duration::from_secs(5)).unwrap());
        assert!(start.elapsed() < Duration::from_secs(1));
    }

    #[test]
    fn mem_config_rejects_zero_frames() {
        let err = mem_pair(&MemConfig { frames: 0, ..MemConfig::default() }).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { field: "memory pool frames", .. }));
    }

    #[test]
    fn mem_config_rejects_small_frame() {
        let err = mem_pair(&MemConfig { frame_size: 300, ..MemConfig::default() }).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { value: 300, .. }));
    }

    #[test]
    fn mem_config_rejects_huge_frame() {
        let err = mem_pair(&MemConfig { frame_size: 1 << 20, ..MemConfig::default() }).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { field: "memory frame size", .. }));
    }
}
