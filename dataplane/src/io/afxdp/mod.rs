//! The AF_XDP backend: an [`Xsk`] socket bound to one queue of a Linux interface, fed
//! by svrd's own XDP program ([`XdpAttachment`]), built on raw system calls through
//! libc.
//!
//! Sockets bind in copy mode by default (`XDP_COPY`), which works on every driver, with
//! `XDP_USE_NEED_WAKEUP` so an idle socket costs no kernel polling.
#![allow(
    unsafe_code,
    reason = "AF_XDP needs mmap, setsockopt, bind and bpf(2) calls through libc, and \
              reads rings and packet memory shared with the kernel"
)]

mod bpf;
pub mod program;
mod ring;
mod sys;
mod umem;

use std::{
    fmt, io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    sync::Arc,
    thread,
    time::Duration,
};

pub use bpf::{XdpAttachment, XdpMode};
pub use program::{PortRange, XdpFilter};
pub(crate) use sys::interface_index;
pub(crate) use umem::UmemChunk;

use self::{
    ring::{Ring, RingOffsets},
    sys::Mmap,
    umem::Umem,
};
use super::{
    Burst, DEFAULT_HEADROOM, Frame, IoError, IoStats, MAX_BURST, PacketIo,
    error::{SysOp, SysTarget, from_errno},
    frame::FrameBuf,
};

/// Settings of one AF_XDP socket.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct XskConfig {
    /// Receive queue of the interface to bind to.
    pub queue: u32,
    /// Bind with `XDP_ZEROCOPY` instead of `XDP_COPY`; needs driver support.
    pub zero_copy: bool,
    /// Chunks in the UMEM; at least twice `ring_size`.
    pub frames: u32,
    /// Bytes per UMEM chunk: 2048 or 4096.
    pub frame_size: u32,
    /// Entries in each of the four rings; a power of two from 64 to 16384.
    pub ring_size: u32,
    /// Bind attempts while the queue is still held by a socket that is closing.
    pub bind_attempts: u32,
    /// Pause between bind attempts.
    pub bind_retry_interval: Duration,
}

impl Default for XskConfig {
    fn default() -> XskConfig {
        XskConfig {
            queue: 0,
            zero_copy: false,
            frames: 4096,
            frame_size: 2048,
            ring_size: 2048,
            bind_attempts: 20,
            bind_retry_interval: Duration::from_millis(100),
        }
    }
}

/// Kernel counters of one socket, from `XDP_STATISTICS`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct XskKernelStats {
    /// Packets dropped for reasons other than a full ring or an empty fill ring.
    pub rx_dropped: u64,
    /// Packets dropped because the receive ring was full.
    pub rx_ring_full: u64,
    /// Times the kernel found the fill ring empty.
    pub rx_fill_ring_empty: u64,
    /// Invalid descriptors the application put on the transmit ring.
    pub tx_invalid_descs: u64,
}

/// An AF_XDP socket bound to one queue, with its UMEM and rings.
pub struct Xsk {
    // Field order is drop order: the rings unmap, then the socket closes, then the UMEM
    // unmaps (or stays mapped while frames are in use), then the program may detach.
    rx: Ring<libc::xdp_desc>,
    tx: Ring<libc::xdp_desc>,
    fill: Ring<u64>,
    completion: Ring<u64>,
    fd: OwnedFd,
    umem: Umem,
    attachment: Arc<XdpAttachment>,
    queue: u32,
    stats: IoStats,
    /// Descriptors from the kernel that pointed outside the UMEM, dropped.
    rx_invalid: u64,
    /// Transmit wakeups that failed with an unexpected errno, for rate-limited logging.
    wakeup_failures: u64,
}

impl Xsk {
    /// Opens a socket, binds it to `config.queue` of the interface `attachment` is
    /// attached to and registers it with the program, so the filter's packets on that
    /// queue arrive here.
    pub fn open(config: &XskConfig, attachment: &Arc<XdpAttachment>) -> Result<Xsk, IoError> {
        check_config(config)?;
        if config.queue >= attachment.max_queues() {
            return Err(IoError::InvalidConfig {
                field: "AF_XDP queue",
                value: u64::from(config.queue),
                expected: "a queue below the XDP attachment's max_queues",
            });
        }
        let interface = attachment.interface();
        let target =
            SysTarget { interface, zero_copy: config.zero_copy, mode: attachment.mode().name() };
        let fail = |op: SysOp| move |e: io::Error| from_errno(op, e, &target);

        // SAFETY: socket(2) takes no pointers; the result is checked before use.
        let raw = unsafe { libc::socket(libc::AF_XDP, libc::SOCK_RAW | libc::SOCK_CLOEXEC, 0) };
        if raw < 0 {
            return Err(fail(SysOp::Socket)(io::Error::last_os_error()));
        }
        // SAFETY: `raw` is a new descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };

        if let Some(queues) = sys::rx_queue_count(interface)
            && config.queue >= queues
        {
            return Err(IoError::QueueNotFound {
                interface: interface.to_owned(),
                queue: config.queue,
                queues,
            });
        }

        let umem = Umem::new(config.frames, config.frame_size).map_err(fail(SysOp::UmemMmap))?;
        register_umem(&fd, &umem).map_err(fail(SysOp::UmemRegister))?;
        for ring in [
            libc::XDP_UMEM_FILL_RING,
            libc::XDP_UMEM_COMPLETION_RING,
            libc::XDP_RX_RING,
            libc::XDP_TX_RING,
        ] {
            set_option(&fd, ring, &config.ring_size).map_err(fail(SysOp::RingSetup))?;
        }

        let offsets = mmap_offsets(&fd).map_err(fail(SysOp::RingSetup))?;
        let size = config.ring_size;
        let map = |off: libc::xdp_ring_offset, pgoff: u64, entry: usize| {
            let len = off.desc as usize + size as usize * entry;
            Mmap::socket_ring(&fd, len, pgoff).map(|map| (map, RingOffsets::from(off)))
        };
        let desc = std::mem::size_of::<libc::xdp_desc>();
        let (rx_map, rx_off) =
            map(offsets.rx, libc::XDP_PGOFF_RX_RING as u64, desc).map_err(fail(SysOp::RingMmap))?;
        let (tx_map, tx_off) =
            map(offsets.tx, libc::XDP_PGOFF_TX_RING as u64, desc).map_err(fail(SysOp::RingMmap))?;
        let (fill_map, fill_off) =
            map(offsets.fr, libc::XDP_UMEM_PGOFF_FILL_RING, 8).map_err(fail(SysOp::RingMmap))?;
        let (comp_map, comp_off) = map(offsets.cr, libc::XDP_UMEM_PGOFF_COMPLETION_RING, 8)
            .map_err(fail(SysOp::RingMmap))?;

        // SAFETY: each mapping is the ring the kernel created with `size` entries, at
        // the page offset of that ring, sized from the kernel's own offsets; the kernel
        // aligns the index and flags words.
        let (rx, tx, fill, completion) = unsafe {
            (
                Ring::new(rx_map, rx_off, size),
                Ring::new(tx_map, tx_off, size),
                Ring::new(fill_map, fill_off, size),
                Ring::new(comp_map, comp_off, size),
            )
        };

        let mut xsk = Xsk {
            rx,
            tx,
            fill,
            completion,
            fd,
            umem,
            attachment: Arc::clone(attachment),
            queue: config.queue,
            stats: IoStats::default(),
            rx_invalid: 0,
            wakeup_failures: 0,
        };

        // Stock the fill ring before binding so the first packets have buffers.
        xsk.refill();
        xsk.bind(config, &target)?;
        attachment.register(config.queue, xsk.fd.as_raw_fd())?;

        tracing::debug!(
            interface,
            queue = config.queue,
            mode = attachment.mode().name(),
            zero_copy = config.zero_copy,
            "AF_XDP socket bound"
        );
        Ok(xsk)
    }

    /// Name of the interface the socket is bound to.
    pub fn interface(&self) -> &str {
        self.attachment.interface()
    }

    /// Queue the socket is bound to.
    pub fn queue(&self) -> u32 {
        self.queue
    }

    /// Descriptors received from the kernel that pointed outside the UMEM and were
    /// dropped; non-zero only if the kernel misbehaves.
    pub fn rx_invalid(&self) -> u64 {
        self.rx_invalid
    }

    /// Reads the kernel's counters for this socket.
    pub fn kernel_stats(&self) -> Result<XskKernelStats, IoError> {
        // SAFETY: an all-zero xdp_statistics is a valid value.
        let mut raw: libc::xdp_statistics = unsafe { std::mem::zeroed() };
        let mut len = std::mem::size_of::<libc::xdp_statistics>() as libc::socklen_t;
        // SAFETY: `raw` and `len` live across the call and `len` is raw's size.
        let ret = unsafe {
            libc::getsockopt(
                self.fd.as_raw_fd(),
                libc::SOL_XDP,
                libc::XDP_STATISTICS,
                (&raw mut raw).cast(),
                &mut len,
            )
        };
        if ret < 0 {
            let target = self.target();
            return Err(from_errno(SysOp::Statistics, io::Error::last_os_error(), &target));
        }
        Ok(XskKernelStats {
            rx_dropped: raw.rx_dropped,
            rx_ring_full: raw.rx_ring_full,
            rx_fill_ring_empty: raw.rx_fill_ring_empty_descs,
            tx_invalid_descs: raw.tx_invalid_descs,
        })
    }

    fn target(&self) -> SysTarget<'_> {
        SysTarget {
            interface: self.attachment.interface(),
            zero_copy: false,
            mode: self.attachment.mode().name(),
        }
    }

    /// Binds to the queue, retrying while a socket that was just closed still holds it:
    /// the kernel releases a closed socket's queue asynchronously.
    fn bind(&self, config: &XskConfig, target: &SysTarget<'_>) -> Result<(), IoError> {
        let copy_flag = if config.zero_copy { libc::XDP_ZEROCOPY } else { libc::XDP_COPY };
        let addr = libc::sockaddr_xdp {
            sxdp_family: libc::AF_XDP as u16,
            sxdp_flags: copy_flag | libc::XDP_USE_NEED_WAKEUP,
            sxdp_ifindex: self.attachment.ifindex(),
            sxdp_queue_id: config.queue,
            sxdp_shared_umem_fd: 0,
        };

        for attempt in 1..=config.bind_attempts {
            // SAFETY: `addr` is a valid sockaddr_xdp that lives across the call, and its
            // size is passed with it.
            let ret = unsafe {
                libc::bind(
                    self.fd.as_raw_fd(),
                    (&raw const addr).cast(),
                    std::mem::size_of::<libc::sockaddr_xdp>() as libc::socklen_t,
                )
            };
            if ret == 0 {
                return Ok(());
            }

            let err = io::Error::last_os_error();
            if err.raw_os_error() != Some(libc::EBUSY) {
                return Err(from_errno(SysOp::Bind, err, target));
            }
            tracing::debug!(
                interface = target.interface,
                queue = config.queue,
                attempt,
                "AF_XDP queue busy, retrying bind"
            );
            if attempt < config.bind_attempts {
                thread::sleep(config.bind_retry_interval);
            }
        }

        Err(IoError::BindBusy {
            interface: target.interface.to_owned(),
            queue: config.queue,
            attempts: config.bind_attempts,
        })
    }

    /// Moves chunks the kernel finished transmitting back to the free list.
    fn reclaim_completions(&mut self) {
        let count = self.completion.consumer_peek(u32::MAX);
        for i in 0..count {
            let addr = self.completion.read(i);
            self.umem.put(addr);
        }
        self.completion.release(count);
    }

    /// Tops up the fill ring from the free list, keeping enough free chunks for a
    /// transmit burst built with `alloc`.
    fn refill(&mut self) {
        let spare = self.umem.free_count().saturating_sub(MAX_BURST);
        let count = self.fill.producer_reserve(spare as u32);
        for i in 0..count {
            // `count` is at most the free-list length, so `take` returns a chunk.
            let Some(base) = self.umem.take() else { break };
            self.fill.write(i, base);
        }
        self.fill.submit(count);
    }

    /// Asks the kernel to send what the transmit ring holds, when it waits to be asked.
    fn kick_tx(&mut self) {
        // In copy mode each wakeup sends at most one batch of 32 and reports EAGAIN when
        // more are left, so a few calls drain a full burst.
        for _ in 0..4 {
            if !self.tx.needs_wakeup() || !self.tx.producer_pending() {
                return;
            }
            // SAFETY: a zero-length sendto with null buffers reads no memory.
            let ret = unsafe {
                libc::sendto(
                    self.fd.as_raw_fd(),
                    std::ptr::null(),
                    0,
                    libc::MSG_DONTWAIT,
                    std::ptr::null(),
                    0,
                )
            };
            if ret >= 0 {
                return;
            }
            let error = io::Error::last_os_error();
            match error.raw_os_error() {
                Some(libc::EAGAIN | libc::EBUSY | libc::ENOBUFS) => continue,
                _ => {
                    // Logged on the 1st, 2nd, 4th, 8th... failure, so a persistent fault
                    // (ENETDOWN while the link is down) does not flood the log from the
                    // poll loop.
                    self.wakeup_failures += 1;
                    if self.wakeup_failures.is_power_of_two() {
                        tracing::warn!(
                            interface = self.interface(),
                            %error,
                            failures = self.wakeup_failures,
                            "AF_XDP transmit wakeup failed"
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Wakes the kernel's receive path when it stopped for lack of fill-ring buffers.
    fn kick_rx(&self) {
        if !self.fill.needs_wakeup() {
            return;
        }
        // SAFETY: a zero-length recvfrom with null buffers writes no memory.
        unsafe {
            libc::recvfrom(
                self.fd.as_raw_fd(),
                std::ptr::null_mut(),
                0,
                libc::MSG_DONTWAIT,
                std::ptr::null_mut(),
                std::ptr::null_mut(),
            );
        }
    }

    fn recycle(&mut self, frame: Frame) {
        let (buf, _, _) = frame.into_parts();
        match buf {
            FrameBuf::Umem(chunk) => match self.umem.reclaim(chunk) {
                Ok(base) => self.umem.put(base),
                Err(_foreign) => self.stats.foreign_frames += 1,
            },
            _ => self.stats.foreign_frames += 1,
        }
    }
}

impl PacketIo for Xsk {
    fn rx_burst(&mut self, out: &mut Burst) -> Result<usize, IoError> {
        let count = self.rx.consumer_peek(out.free_slots() as u32);
        let mut received = 0;
        for i in 0..count {
            let desc = self.rx.read(i);
            if !self.umem.contains(desc.addr, desc.len) {
                self.rx_invalid += 1;
                continue;
            }

            let base = self.umem.chunk_base(desc.addr);
            let Some(chunk) = self.umem.lend(base) else {
                self.rx_invalid += 1;
                continue;
            };
            let head = (desc.addr - base) as usize;
            let frame = Frame::from_parts(FrameBuf::Umem(chunk), head, desc.len as usize);
            match out.push(frame) {
                Ok(()) => received += 1,
                Err(frame) => self.recycle(frame),
            }
        }
        self.rx.release(count);

        self.reclaim_completions();
        self.refill();
        self.kick_rx();
        self.kick_tx();

        self.stats.rx_frames += received as u64;
        Ok(received)
    }

    fn tx_burst(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        self.reclaim_completions();
        let room = self.tx.producer_reserve(burst.len() as u32);

        let mut queued = 0u32;
        for frame in burst.drain() {
            let (buf, head, len) = frame.into_parts();
            let chunk = match buf {
                FrameBuf::Umem(chunk) => chunk,
                _ => {
                    self.stats.foreign_frames += 1;
                    continue;
                }
            };
            let Ok(base) = self.umem.reclaim(chunk) else {
                self.stats.foreign_frames += 1;
                continue;
            };

            if queued >= room {
                self.umem.put(base);
                self.stats.tx_dropped += 1;
                continue;
            }
            let desc = libc::xdp_desc { addr: base + head as u64, len: len as u32, options: 0 };
            self.tx.write(queued, desc);
            queued += 1;
        }

        self.tx.submit(queued);
        if queued > 0 {
            self.kick_tx();
        }
        self.stats.tx_frames += u64::from(queued);
        Ok(queued as usize)
    }

    fn alloc(&mut self) -> Option<Frame> {
        if self.umem.free_count() == 0 {
            self.reclaim_completions();
        }
        let Some(base) = self.umem.take() else {
            self.stats.alloc_failures += 1;
            return None;
        };
        let Some(chunk) = self.umem.lend(base) else {
            self.umem.put(base);
            self.stats.alloc_failures += 1;
            return None;
        };
        Some(Frame::from_parts(FrameBuf::Umem(chunk), DEFAULT_HEADROOM, 0))
    }

    fn free(&mut self, frame: Frame) {
        self.recycle(frame);
    }

    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, IoError> {
        if self.rx.consumer_ready() {
            return Ok(true);
        }
        self.kick_tx();

        let mut pollfd = libc::pollfd { fd: self.fd.as_raw_fd(), events: libc::POLLIN, revents: 0 };
        let millis = libc::c_int::try_from(timeout.as_millis()).unwrap_or(libc::c_int::MAX);
        // SAFETY: `pollfd` is one valid pollfd that lives across the call.
        let ret = unsafe { libc::poll(&mut pollfd, 1, millis) };
        if ret < 0 {
            let err = io::Error::last_os_error();
            if err.raw_os_error() == Some(libc::EINTR) {
                return Ok(false);
            }
            let target = self.target();
            return Err(from_errno(SysOp::Poll, err, &target));
        }
        Ok(ret > 0 && pollfd.revents & libc::POLLIN != 0)
    }

    fn readiness_fd(&self) -> Option<std::os::fd::BorrowedFd<'_>> {
        Some(std::os::fd::AsFd::as_fd(&self.fd))
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}

impl fmt::Debug for Xsk {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Xsk")
            .field("interface", &self.interface())
            .field("queue", &self.queue)
            .field("fd", &self.fd.as_raw_fd())
            .field("stats", &self.stats)
            .finish()
    }
}

fn check_config(config: &XskConfig) -> Result<(), IoError> {
    if !config.ring_size.is_power_of_two() || !(64..=16384).contains(&config.ring_size) {
        return Err(IoError::InvalidConfig {
            field: "AF_XDP ring size",
            value: u64::from(config.ring_size),
            expected: "a power of two from 64 to 16384",
        });
    }
    if config.frame_size != 2048 && config.frame_size != 4096 {
        return Err(IoError::InvalidConfig {
            field: "AF_XDP frame size",
            value: u64::from(config.frame_size),
            expected: "2048 or 4096",
        });
    }
    if config.frames < 2 * config.ring_size || config.frames > 1 << 20 {
        return Err(IoError::InvalidConfig {
            field: "AF_XDP frames",
            value: u64::from(config.frames),
            expected: "at least twice the ring size and at most 1048576",
        });
    }
    if config.bind_attempts == 0 {
        return Err(IoError::InvalidConfig {
            field: "AF_XDP bind attempts",
            value: 0,
            expected: "at least 1",
        });
    }
    Ok(())
}

fn register_umem(fd: &OwnedFd, umem: &Umem) -> io::Result<()> {
    let (addr, len) = umem.region();
    let reg = libc::xdp_umem_reg {
        addr,
        len,
        chunk_size: umem.chunk_size(),
        headroom: 0,
        flags: 0,
        tx_metadata_len: 0,
    };
    set_option(fd, libc::XDP_UMEM_REG, &reg)
}

fn set_option<T>(fd: &OwnedFd, name: libc::c_int, value: &T) -> io::Result<()> {
    // SAFETY: `value` is a live `T` and its exact size is passed with it.
    let ret = unsafe {
        libc::setsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            name,
            (value as *const T).cast(),
            std::mem::size_of::<T>() as libc::socklen_t,
        )
    };
    if ret < 0 { Err(io::Error::last_os_error()) } else { Ok(()) }
}

fn mmap_offsets(fd: &OwnedFd) -> io::Result<libc::xdp_mmap_offsets> {
    // SAFETY: an all-zero xdp_mmap_offsets is a valid value.
    let mut offsets: libc::xdp_mmap_offsets = unsafe { std::mem::zeroed() };
    let mut len = std::mem::size_of::<libc::xdp_mmap_offsets>() as libc::socklen_t;
    // SAFETY: `offsets` and `len` live across the call and `len` is offsets' size.
    let ret = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_XDP,
            libc::XDP_MMAP_OFFSETS,
            (&raw mut offsets).cast(),
            &mut len,
        )
    };
    if ret < 0 {
        return Err(io::Error::last_os_error());
    }
    if len as usize != std::mem::size_of::<libc::xdp_mmap_offsets>() {
        // Kernels before 5.4 return the layout without the flags word.
        return Err(io::Error::from_raw_os_error(libc::EOPNOTSUPP));
    }
    Ok(offsets)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn assert_send<T: Send>() {}
    fn assert_send_sync<T: Send + Sync>() {}

    #[test]
    fn xsk_moves_between_threads() {
        // A worker opens its socket and may then run on another thread; frames move
        // between workers over hand-off rings.
        assert_send::<Xsk>();
        assert_send::<Frame>();
        assert_send_sync::<XdpAttachment>();
    }

    #[test]
    fn config_rejects_frame_size() {
        let config = XskConfig { frame_size: 3000, ..XskConfig::default() };
        let err = check_config(&config).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { field: "AF_XDP frame size", .. }));
    }

    #[test]
    fn config_rejects_few_frames() {
        let config = XskConfig { frames: 2048, ring_size: 2048, ..XskConfig::default() };
        let err = check_config(&config).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { field: "AF_XDP frames", value: 2048, .. }));
    }

    #[test]
    fn config_default_is_valid() {
        assert!(check_config(&XskConfig::default()).is_ok());
    }
}
