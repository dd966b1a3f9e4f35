//! Packet I/O: the [`PacketIo`] trait the poll-mode workers drive, the [`Frame`] and
//! [`Burst`] types it moves, and its backends.
//!
//! A backend owns a fixed pool of packet buffers. Receiving hands buffers out as frames,
//! sending and [`PacketIo::free`] give them back, so the packet path allocates nothing.
//! Backends:
//! - [`mem`]: a linked pair of in-process ports over lock-free rings, for tests and
//!   benchmarks;
//! - [`afxdp`]: an AF_XDP socket bound to one queue of a Linux interface, with svrd's own
//!   XDP program choosing which packets reach it;
//! - `dpdk` (with the `dpdk` cargo feature): a DPDK ethdev port, physical or virtual,
//!   with an mbuf pool of its own.

#[cfg(target_os = "linux")]
pub mod afxdp;
#[cfg(feature = "dpdk")]
pub mod dpdk;
mod error;
mod frame;
pub mod mem;

use std::time::Duration;

pub use error::{FrameError, IoError};
pub(crate) use frame::FrameBuf;
pub use frame::{Burst, Frame};

/// Maximum number of frames in one [`Burst`], and so in one receive or transmit call.
pub const MAX_BURST: usize = 32;

/// Headroom, in bytes, in front of the data of a frame returned by [`PacketIo::alloc`].
///
/// 256 bytes match the headroom the kernel leaves in front of received AF_XDP frames, and
/// are enough to push an outer Ethernet, IPv6 and UDP header plus SVR metadata.
pub const DEFAULT_HEADROOM: usize = 256;

/// Burst receive and transmit over buffers owned by the backend's pool.
///
/// Every frame a backend returns must come back to the same backend through
/// [`tx_burst`](PacketIo::tx_burst) or [`free`](PacketIo::free). A frame that is dropped
/// instead is lost to the pool, and a frame given to another backend is counted in
/// [`IoStats::foreign_frames`] and dropped.
pub trait PacketIo {
    /// Appends up to `out.free_slots()` received frames to `out` and returns how many.
    ///
    /// Returns 0 when nothing is waiting; it never blocks.
    fn rx_burst(&mut self, out: &mut Burst) -> Result<usize, IoError>;

    /// Queues every frame of `burst` for transmission and returns how many were queued.
    ///
    /// The burst is empty afterwards: frames the queue had no room for go back to the
    /// pool and are counted in [`IoStats::tx_dropped`].
    fn tx_burst(&mut self, burst: &mut Burst) -> Result<usize, IoError>;

    /// Takes an empty frame with [`DEFAULT_HEADROOM`] from the pool, or `None` when the
    /// pool is exhausted.
    fn alloc(&mut self) -> Option<Frame>;

    /// Returns a frame to the pool.
    fn free(&mut self, frame: Frame);

    /// Returns every frame of `burst` to the pool.
    fn free_burst(&mut self, burst: &mut Burst) {
        for frame in burst.drain() {
            self.free(frame);
        }
    }

    /// Sleeps until a frame may be waiting to be received or `timeout` passes.
    ///
    /// Returns whether the queue became readable. The adaptive polling mode calls this
    /// when a worker has seen several empty bursts in a row. A `true` result can be
    /// spurious, so the caller polls again either way.
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, IoError>;

    /// The descriptor that turns readable when frames arrive, for a worker that sleeps on
    /// several ports at once; `None` when the backend has none (memory rings, DPDK).
    fn readiness_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        None
    }

    /// Counters since the backend was created.
    fn stats(&self) -> IoStats;
}

/// Counters of one backend instance.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct IoStats {
    /// Frames returned by `rx_burst`.
    pub rx_frames: u64,
    /// Frames accepted by `tx_burst`.
    pub tx_frames: u64,
    /// Frames `tx_burst` returned to the pool because the transmit queue was full.
    pub tx_dropped: u64,
    /// `alloc` calls that found the pool empty.
    pub alloc_failures: u64,
    /// Frames from another backend's pool that were dropped instead of being sent or freed.
    pub foreign_frames: u64,
}
