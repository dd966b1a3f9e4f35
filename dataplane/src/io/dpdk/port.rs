//! [`DpdkPort`]: one ethdev port, found by name, run with one receive and one transmit
//! queue over an mbuf pool of its own, behind the [`PacketIo`] trait.

use std::{
    ffi::CString,
    fmt,
    ptr::{self, NonNull},
    sync::atomic::{AtomicU32, Ordering},
    thread,
    time::{Duration, Instant},
};

use dpdk_sys::rte_mbuf;

use super::{
    Eal, dpdk_error,
    mbuf::{MbufHandle, Mempool, free_raw},
};
use crate::io::{
    Burst, DEFAULT_HEADROOM, Frame, IoError, IoStats, MAX_BURST, PacketIo, frame::FrameBuf,
};

/// Settings of one DPDK port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DpdkPortConfig {
    /// Device name of the port: a `--vdev` name such as `net_ring0`, or a PCI address.
    pub name: String,
    /// Mbufs in the port's pool. DPDK sizes pools best at a power of two minus one.
    pub mbufs: u32,
    /// Mbufs each EAL lcore keeps in its own cache of the pool, at most 512 and at most
    /// `mbufs / 1.5`. Threads that are not EAL lcores bypass the cache.
    pub mbuf_cache: u32,
    /// Data room of each mbuf in bytes, headroom included. At least 320, so that a frame
    /// from `alloc` has [`DEFAULT_HEADROOM`] and room for a minimum frame after it.
    pub data_room: u16,
    /// Descriptors of the receive queue; the driver may round the number to its limits.
    pub rx_descriptors: u16,
    /// Descriptors of the transmit queue; the driver may round the number to its limits.
    pub tx_descriptors: u16,
    /// Pause between receive polls in `wait_readable`.
    pub idle_poll_interval: Duration,
}

impl DpdkPortConfig {
    /// Returns the settings for the port `name`: 8191 mbufs with a 256-entry cache,
    /// each with 2048 bytes of data room after the default headroom, and 1024
    /// descriptors per queue.
    pub fn new(name: impl Into<String>) -> DpdkPortConfig {
        DpdkPortConfig {
            name: name.into(),
            mbufs: 8191,
            mbuf_cache: 256,
            data_room: (DEFAULT_HEADROOM + 2048) as u16,
            rx_descriptors: 1024,
            tx_descriptors: 1024,
            idle_poll_interval: Duration::from_micros(100),
        }
    }
}

/// Smallest data room a port accepts: the default headroom plus a minimum frame.
const MIN_DATA_ROOM: u16 = (DEFAULT_HEADROOM + 64) as u16;

/// Largest per-lcore cache DPDK allows (`RTE_MEMPOOL_CACHE_MAX_SIZE`).
const MAX_MBUF_CACHE: u32 = 512;

/// Receive bursts the port drains before it closes.
const DRAIN_BURSTS: usize = 64;

/// Link state of a port.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct LinkStatus {
    /// Whether the link is up.
    pub up: bool,
    /// Speed in Mbit/s, or `None` when the driver does not know it.
    pub speed_mbps: Option<u32>,
    /// Full duplex rather than half.
    pub full_duplex: bool,
    /// Speed and duplex negotiated rather than fixed.
    pub autoneg: bool,
}

/// The device counters of a port, from `rte_eth_stats_get`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct DpdkPortStats {
    /// Packets received.
    pub rx_packets: u64,
    /// Packets transmitted.
    pub tx_packets: u64,
    /// Bytes received.
    pub rx_bytes: u64,
    /// Bytes transmitted.
    pub tx_bytes: u64,
    /// Packets the device dropped because its receive queue was full.
    pub rx_missed: u64,
    /// Erroneous packets received.
    pub rx_errors: u64,
    /// Packets the device failed to transmit.
    pub tx_errors: u64,
    /// Times the driver found the mbuf pool empty while receiving.
    pub rx_no_mbuf: u64,
}

/// One started DPDK port: queue 0 each way, promiscuous, with its own mbuf pool.
///
/// Frames are the mbufs' data rooms. Frames from [`alloc`](PacketIo::alloc) start
/// [`DEFAULT_HEADROOM`] bytes in. A received frame starts at the mbuf's data offset: 128
/// bytes (`RTE_PKTMBUF_HEADROOM`) for drivers that copy into fresh mbufs, such as
/// net_memif and net_af_packet, and 384 on net_af_xdp, where the kernel most likely
/// adds its XDP headroom. On net_ring, which hands the transmitted mbufs back, it is whatever the
/// sender set. Dropping a frame instead of returning it still puts its mbuf
/// back in the pool.
///
/// Dropping the port drains its receive queue, stops and closes it (the device cannot
/// be opened again in this process), and frees the pool once every mbuf is back.
pub struct DpdkPort {
    pool: Option<Mempool>,
    port_id: u16,
    name: String,
    /// Tag on this port's frames, to tell them from other ports' frames.
    tag: u32,
    /// Mbufs received by `wait_readable`, handed out by the next `rx_burst`.
    pending: [*mut rte_mbuf; MAX_BURST],
    pending_start: usize,
    pending_end: usize,
    idle_poll_interval: Duration,
    stats: IoStats,
    rx_rejected: u64,
    /// Set once `open` has started the port, so that dropping it stops and closes it.
    started: bool,
    _eal: Eal,
}

// SAFETY: the port's queues are used only through `&mut self`, so by one thread at a
// time, which DPDK allows for a queue. The pending mbufs are owned by the port, and the
// pool is thread-safe (see `Mempool`).
unsafe impl Send for DpdkPort {}

impl DpdkPort {
    /// Finds the port `config.name`, creates its pool, configures one receive and one
    /// transmit queue, starts it and turns promiscuous mode on.
    ///
    /// Drivers that open a socket (net_af_packet, net_af_xdp) do so in the network
    /// namespace of the calling thread.
    pub fn open(eal: Eal, config: &DpdkPortConfig) -> Result<DpdkPort, IoError> {
        check_config(config)?;
        let name = config.name.as_str();
        let port_id = port_by_name(name)?;

        static NEXT_TAG: AtomicU32 = AtomicU32::new(1);
        let tag = NEXT_TAG.fetch_add(1, Ordering::Relaxed);
        // SAFETY: takes a port id and returns a value; no pointers.
        let socket = unsafe { dpdk_sys::rte_eth_dev_socket_id(port_id) };
        let pool_name = format!("svr-pool-{tag}");
        let pool = Mempool::create(
            &pool_name,
            config.mbufs,
            config.mbuf_cache,
            config.data_room,
            socket,
            name,
        )?;

        let mut port = DpdkPort {
            pool: Some(pool),
            port_id,
            name: name.to_owned(),
            tag,
            pending: [ptr::null_mut(); MAX_BURST],
            pending_start: 0,
            pending_end: 0,
            idle_poll_interval: config.idle_poll_interval,
            stats: IoStats::default(),
            rx_rejected: 0,
            started: false,
            _eal: eal,
        };

        // A configure failure leaves the pool unused, so it is freed. After a successful
        // configure the queues may refer to the pool, so later failures leak it.
        let conf = dpdk_sys::rte_eth_conf::default();
        // SAFETY: `conf` is a zeroed configuration (no offloads, no RSS) that lives across
        // the call.
        let ret = unsafe { dpdk_sys::rte_eth_dev_configure(port_id, 1, 1, &conf) };
        if ret < 0 {
            port.free_unused_pool();
            return Err(dpdk_error("rte_eth_dev_configure", name, ret));
        }
        if let Err(err) = port.setup_queues(config, socket) {
            port.abandon();
            return Err(err);
        }

        // SAFETY: a configured port with both queues set up.
        let ret = unsafe { dpdk_sys::rte_eth_dev_start(port_id) };
        if ret < 0 {
            port.abandon();
            return Err(dpdk_error("rte_eth_dev_start", name, ret));
        }

        // SAFETY: a started port; no pointers.
        let ret = unsafe { dpdk_sys::rte_eth_promiscuous_enable(port_id) };
        if ret < 0 {
            tracing::debug!(port = name, code = ret, "DPDK port cannot enter promiscuous mode");
        }
        port.started = true;
        tracing::debug!(port = name, port_id, mbufs = config.mbufs, "DPDK port started");
        Ok(port)
    }

    /// Returns the ethdev port id.
    pub fn port_id(&self) -> u16 {
        self.port_id
    }

    /// Returns the device name the port was opened by.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Reads the port's MAC address.
    pub fn mac_address(&self) -> Result<[u8; 6], IoError> {
        let mut addr = dpdk_sys::rte_ether_addr::default();
        // SAFETY: `addr` is a writable address struct that lives across the call.
        let ret = unsafe { dpdk_sys::rte_eth_macaddr_get(self.port_id, &mut addr) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_macaddr_get", &self.name, ret));
        }
        Ok(addr.addr_bytes)
    }

    /// Reads the link state without waiting for the driver to complete it.
    pub fn link(&self) -> Result<LinkStatus, IoError> {
        let mut link = dpdk_sys::rte_eth_link::default();
        // SAFETY: `link` is a writable link struct that lives across the call.
        let ret = unsafe { dpdk_sys::rte_eth_link_get_nowait(self.port_id, &mut link) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_link_get_nowait", &self.name, ret));
        }
        Ok(LinkStatus {
            up: link.link_status() == 1,
            speed_mbps: (link.link_speed != u32::MAX).then_some(link.link_speed),
            full_duplex: link.link_duplex() == 1,
            autoneg: link.link_autoneg() == 1,
        })
    }

    /// Polls the link every 10 ms until it is up or `timeout` passes, and returns
    /// whether it came up.
    pub fn wait_link_up(&self, timeout: Duration) -> Result<bool, IoError> {
        let start = Instant::now();
        loop {
            if self.link()?.up {
                return Ok(true);
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Ok(false);
            }
            thread::sleep((timeout - elapsed).min(Duration::from_millis(10)));
        }
    }

    /// Reads the device counters.
    pub fn device_stats(&self) -> Result<DpdkPortStats, IoError> {
        let mut stats = dpdk_sys::rte_eth_stats::default();
        // SAFETY: `stats` is a writable stats struct that lives across the call.
        let ret = unsafe { dpdk_sys::rte_eth_stats_get(self.port_id, &mut stats) };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_stats_get", &self.name, ret));
        }
        Ok(DpdkPortStats {
            rx_packets: stats.ipackets,
            tx_packets: stats.opackets,
            rx_bytes: stats.ibytes,
            tx_bytes: stats.obytes,
            rx_missed: stats.imissed,
            rx_errors: stats.ierrors,
            tx_errors: stats.oerrors,
            rx_no_mbuf: stats.rx_nombuf,
        })
    }

    /// Mbufs free in the port's pool, per-lcore caches included.
    pub fn pool_free(&self) -> usize {
        self.pool.as_ref().map_or(0, Mempool::available)
    }

    /// Mbufs in the port's pool when all are free.
    pub fn pool_size(&self) -> usize {
        self.pool.as_ref().map_or(0, |pool| pool.size() as usize)
    }

    /// Received mbufs dropped because svrd cannot use them as frames: chained
    /// (multi-segment), shared (reference count above 1) or attached to another buffer.
    ///
    /// NOTE: no test reaches this path, because none of the virtual devices tested
    /// (net_ring, net_memif, net_af_packet, net_af_xdp) delivers such mbufs.
    pub fn rx_rejected(&self) -> u64 {
        self.rx_rejected
    }

    fn setup_queues(&mut self, config: &DpdkPortConfig, socket: i32) -> Result<(), IoError> {
        let (mut rx_desc, mut tx_desc) = (config.rx_descriptors, config.tx_descriptors);
        // SAFETY: both pointers are to locals that live across the call.
        let ret = unsafe {
            dpdk_sys::rte_eth_dev_adjust_nb_rx_tx_desc(self.port_id, &mut rx_desc, &mut tx_desc)
        };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_dev_adjust_nb_rx_tx_desc", &self.name, ret));
        }

        let pool = self.pool.as_ref().map_or(ptr::null_mut(), Mempool::as_ptr);
        // SOCKET_ID_ANY (-1) is passed as the unsigned value DPDK expects for it.
        let socket = socket as u32;
        // SAFETY: the port is configured and stopped, and a null rxconf selects the
        // driver's defaults. `pool` is a valid mempool that outlives the queue, because it
        // is freed only after the port is closed.
        let ret = unsafe {
            dpdk_sys::rte_eth_rx_queue_setup(self.port_id, 0, rx_desc, socket, ptr::null(), pool)
        };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_rx_queue_setup", &self.name, ret));
        }
        // SAFETY: as above; a null txconf selects the driver's defaults.
        let ret = unsafe {
            dpdk_sys::rte_eth_tx_queue_setup(self.port_id, 0, tx_desc, socket, ptr::null())
        };
        if ret < 0 {
            return Err(dpdk_error("rte_eth_tx_queue_setup", &self.name, ret));
        }
        Ok(())
    }

    /// Frees the pool of a port whose queues never referred to it.
    fn free_unused_pool(&mut self) {
        if let Some(pool) = self.pool.take()
            && let Err(out) = pool.release()
        {
            tracing::warn!(port = %self.name, mbufs = out, "DPDK pool kept: mbufs still out");
        }
    }

    /// Gives up after a failed set-up step: stops the port and leaks the pool, because
    /// the queues may still refer to it.
    fn abandon(&mut self) {
        // SAFETY: stopping a port that is not started is a harmless error; no pointers.
        unsafe { dpdk_sys::rte_eth_dev_stop(self.port_id) };
        if self.pool.take().is_some() {
            tracing::warn!(port = %self.name, "DPDK port set-up failed; its mbuf pool is leaked");
        }
    }

    /// Wraps a received mbuf as a frame and appends it to `out`, or drops it.
    fn deliver(&mut self, mbuf: *mut rte_mbuf, out: &mut Burst) -> bool {
        let Some(mbuf) = NonNull::new(mbuf) else { return false };
        // SAFETY: the mbuf was just returned by rx_burst (directly or through `pending`),
        // so the port owns it and nothing else refers to it.
        match unsafe { MbufHandle::wrap(mbuf, self.tag) } {
            Ok((handle, head, len)) => {
                let frame = Frame::from_parts(FrameBuf::Mbuf(handle), head, len);
                // The caller never delivers more than `out` has room for; a frame that
                // still does not fit is dropped, which frees its mbuf.
                out.push(frame).is_ok()
            }
            Err(mbuf) => {
                self.rx_rejected += 1;
                // SAFETY: the port owns the mbuf and drops it here.
                unsafe { free_raw(mbuf) };
                false
            }
        }
    }

    /// Receives up to `count` mbufs into `pending`, which must be empty.
    fn poll_pending(&mut self, count: usize) -> usize {
        let count = count.min(MAX_BURST) as u16;
        // SAFETY: `pending` has room for MAX_BURST pointers and `count` is at most that;
        // the port is started with queue 0.
        let received =
            unsafe { dpdk_sys::svr_rx_burst(self.port_id, 0, self.pending.as_mut_ptr(), count) };
        self.pending_start = 0;
        self.pending_end = usize::from(received).min(MAX_BURST);
        self.pending_end
    }

    fn free_pending(&mut self) {
        while self.pending_start < self.pending_end {
            let mbuf = self.pending[self.pending_start];
            self.pending_start += 1;
            if let Some(mbuf) = NonNull::new(mbuf) {
                // SAFETY: pending mbufs are owned by the port and leave `pending` here.
                unsafe { free_raw(mbuf) };
            }
        }
    }
}

impl PacketIo for DpdkPort {
    fn rx_burst(&mut self, out: &mut Burst) -> Result<usize, IoError> {
        let mut received = 0;
        if self.pending_start == self.pending_end {
            self.poll_pending(out.free_slots());
        }
        while self.pending_start < self.pending_end && !out.is_full() {
            let mbuf = self.pending[self.pending_start];
            self.pending_start += 1;
            if self.deliver(mbuf, out) {
                received += 1;
            }
        }

        self.stats.rx_frames += received as u64;
        Ok(received)
    }

    fn tx_burst(&mut self, burst: &mut Burst) -> Result<usize, IoError> {
        let mut mbufs: [*mut rte_mbuf; MAX_BURST] = [ptr::null_mut(); MAX_BURST];
        let mut count = 0;
        for frame in burst.drain() {
            let (buf, head, len) = frame.into_parts();
            let handle = match buf {
                FrameBuf::Mbuf(handle) if handle.owner() == self.tag => handle,
                // Another port's mbuf goes back to its own pool as the handle drops.
                _ => {
                    self.stats.foreign_frames += 1;
                    continue;
                }
            };
            // Frame offsets fit in u16 because the data room does; `count` stays below
            // MAX_BURST because a burst has no more.
            let (Ok(head), Ok(len), true) =
                (u16::try_from(head), u16::try_from(len), count < MAX_BURST)
            else {
                self.stats.tx_dropped += 1;
                continue;
            };
            let mbuf = handle.into_raw();
            // SAFETY: the port owns the single-segment mbuf, and `head + len` is within
            // its data room because the frame kept it so.
            unsafe { dpdk_sys::svr_pktmbuf_set_data(mbuf.as_ptr(), head, len) };
            mbufs[count] = mbuf.as_ptr();
            count += 1;
        }
        if count == 0 {
            return Ok(0);
        }

        // SAFETY: the first `count` entries are owned mbufs; the driver takes ownership of
        // the first `sent` of them.
        let sent =
            unsafe { dpdk_sys::svr_tx_burst(self.port_id, 0, mbufs.as_mut_ptr(), count as u16) };
        let sent = usize::from(sent).min(count);
        for &mbuf in &mbufs[sent..count] {
            if let Some(mbuf) = NonNull::new(mbuf) {
                // SAFETY: the driver did not take these mbufs, so the port still owns them.
                unsafe { free_raw(mbuf) };
            }
        }

        self.stats.tx_frames += sent as u64;
        self.stats.tx_dropped += (count - sent) as u64;
        Ok(sent)
    }

    fn alloc(&mut self) -> Option<Frame> {
        let Some(mbuf) = self.pool.as_ref().and_then(Mempool::alloc) else {
            self.stats.alloc_failures += 1;
            return None;
        };
        // SAFETY: the mbuf is fresh from the pool, so the port owns it alone.
        match unsafe { MbufHandle::wrap(mbuf, self.tag) } {
            Ok((handle, _, _)) => {
                Some(Frame::from_parts(FrameBuf::Mbuf(handle), DEFAULT_HEADROOM, 0))
            }
            Err(mbuf) => {
                // SAFETY: as above; the mbuf goes straight back.
                unsafe { free_raw(mbuf) };
                self.stats.alloc_failures += 1;
                None
            }
        }
    }

    fn free(&mut self, frame: Frame) {
        let (buf, _, _) = frame.into_parts();
        // Dropping `buf` returns an mbuf to its own pool, whichever port it came from.
        match buf {
            FrameBuf::Mbuf(handle) if handle.owner() == self.tag => {}
            _ => self.stats.foreign_frames += 1,
        }
    }

    /// Polls the receive queue every `idle_poll_interval` until a packet arrives or
    /// `timeout` passes.
    ///
    /// DPDK offers no file descriptor to sleep on for virtual devices in general, and
    /// net_ring, net_memif, net_af_packet and net_af_xdp have no receive interrupts, so
    /// this sleeps between polls. Packets it finds wait for the next `rx_burst`.
    fn wait_readable(&mut self, timeout: Duration) -> Result<bool, IoError> {
        if self.pending_start < self.pending_end {
            return Ok(true);
        }
        let start = Instant::now();
        loop {
            if self.poll_pending(MAX_BURST) > 0 {
                return Ok(true);
            }
            let elapsed = start.elapsed();
            if elapsed >= timeout {
                return Ok(false);
            }
            thread::sleep((timeout - elapsed).min(self.idle_poll_interval));
        }
    }

    fn stats(&self) -> IoStats {
        self.stats
    }
}

impl Drop for DpdkPort {
    fn drop(&mut self) {
        self.free_pending();
        if !self.started {
            // `open` failed and has already dealt with the port and the pool.
            return;
        }
        for _ in 0..DRAIN_BURSTS {
            if self.poll_pending(MAX_BURST) == 0 {
                break;
            }
            self.free_pending();
        }

        // SAFETY: the port was started by `open`; no pointers.
        let stopped = unsafe { dpdk_sys::rte_eth_dev_stop(self.port_id) };
        // SAFETY: the port is stopped and this is the last use of it.
        let closed = unsafe { dpdk_sys::rte_eth_dev_close(self.port_id) };
        if stopped < 0 || closed < 0 {
            tracing::warn!(port = %self.name, stopped, closed, "DPDK port did not stop cleanly");
        }
        if let Some(pool) = self.pool.take()
            && let Err(out) = pool.release()
        {
            tracing::warn!(
                port = %self.name,
                mbufs = out,
                "DPDK port closed with mbufs still in use; its pool stays allocated"
            );
        }
        tracing::debug!(port = %self.name, "DPDK port closed");
    }
}

impl fmt::Debug for DpdkPort {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("DpdkPort")
            .field("name", &self.name)
            .field("port_id", &self.port_id)
            .field("pool_free", &self.pool_free())
            .field("stats", &self.stats)
            .finish()
    }
}

fn port_by_name(name: &str) -> Result<u16, IoError> {
    let Ok(c_name) = CString::new(name) else {
        return Err(IoError::PortNotFound { port: name.to_owned() });
    };
    let mut port_id = 0u16;
    // SAFETY: `c_name` is NUL-terminated and `port_id` writable; both live across the call.
    let ret = unsafe { dpdk_sys::rte_eth_dev_get_port_by_name(c_name.as_ptr(), &mut port_id) };
    if ret < 0 {
        return Err(dpdk_error("rte_eth_dev_get_port_by_name", name, ret));
    }
    Ok(port_id)
}

fn check_config(config: &DpdkPortConfig) -> Result<(), IoError> {
    if config.mbufs == 0 {
        return Err(IoError::InvalidConfig {
            field: "DPDK pool mbufs",
            value: 0,
            expected: "at least 1",
        });
    }
    if config.mbuf_cache > MAX_MBUF_CACHE
        || u64::from(config.mbuf_cache) * 3 > u64::from(config.mbufs) * 2
    {
        return Err(IoError::InvalidConfig {
            field: "DPDK mbuf cache",
            value: u64::from(config.mbuf_cache),
            expected: "at most 512 and at most the pool size divided by 1.5",
        });
    }
    if config.data_room < MIN_DATA_ROOM {
        return Err(IoError::InvalidConfig {
            field: "DPDK mbuf data room",
            value: u64::from(config.data_room),
            expected: "at least 320 bytes",
        });
    }
    for (field, value) in [
        ("DPDK rx descriptors", config.rx_descriptors),
        ("DPDK tx descriptors", config.tx_descriptors),
    ] {
        if value == 0 {
            return Err(IoError::InvalidConfig { field, value: 0, expected: "at least 1" });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn port_config_default_sizes() {
        let config = DpdkPortConfig::new("net_ring0");
        assert_eq!(config.data_room, 2304);
        check_config(&config).unwrap();
    }

    #[test]
    fn port_config_rejects_cache() {
        let config = DpdkPortConfig { mbufs: 300, mbuf_cache: 256, ..DpdkPortConfig::new("p") };
        let err = check_config(&config).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { field: "DPDK mbuf cache", value: 256, .. }));
    }

    #[test]
    fn port_config_rejects_small_room() {
        let config = DpdkPortConfig { data_room: 319, ..DpdkPortConfig::new("p") };
        let err = check_config(&config).unwrap_err();
        assert!(matches!(err, IoError::InvalidConfig { value: 319, .. }));
    }

    #[test]
    fn port_config_rejects_zero() {
        let mbufs = DpdkPortConfig { mbufs: 0, mbuf_cache: 0, ..DpdkPortConfig::new("p") };
        assert!(matches!(
            check_config(&mbufs),
            Err(IoError::InvalidConfig { field: "DPDK pool mbufs", .. })
        ));
        let rx = DpdkPortConfig { rx_descriptors: 0, ..DpdkPortConfig::new("p") };
        assert!(matches!(
            check_config(&rx),
            Err(IoError::InvalidConfig { field: "DPDK rx descriptors", .. })
        ));
    }
}
