//! [`MbufHandle`], the exclusive handle a [`Frame`](crate::io::Frame) keeps to one DPDK
//! mbuf, and [`Mempool`], the mbuf pool of one port.
//!
//! An mbuf is in exactly one place at a time: free in its mempool (or a per-lcore cache
//! of it), on a queue of a driver, or held by one `MbufHandle`. Only the handle lets safe
//! code touch the mbuf's data room.

use std::{ffi::CString, ptr::NonNull, slice};

use dpdk_sys::{rte_mbuf, rte_mempool, svr_mbuf_view};

use super::{dpdk_error, rte_errno};
use crate::io::IoError;

/// Exclusive access to one single-segment, direct mbuf with reference count 1.
///
/// The frame's bytes are the mbuf's whole data room, `buf_addr .. buf_addr + buf_len`.
/// Dropping the handle returns the mbuf to its mempool, which is never freed while one
/// of its mbufs is outside it (see `Mempool::release`), so the pointers stay valid.
pub(crate) struct MbufHandle {
    mbuf: NonNull<rte_mbuf>,
    room: NonNull<u8>,
    room_len: u16,
    /// Tag of the port that handed the mbuf out.
    owner: u32,
}

// SAFETY: the handle is the only reference to the mbuf (see the module docs), so moving
// it to another thread moves the only access. Freeing from any thread is sound because
// DPDK's default mempool ring is multi-producer, and threads that are not EAL lcores
// bypass the per-lcore caches.
unsafe impl Send for MbufHandle {}

impl MbufHandle {
    /// Wraps `mbuf` if it is exclusive and consistent, with the data offset and length of
    /// its packet; otherwise hands it back.
    ///
    /// # Safety
    /// `mbuf` points to a valid mbuf that the caller owns: fresh from the mempool or just
    /// returned by `rte_eth_rx_burst`, and referenced by nothing else in Rust.
    pub(crate) unsafe fn wrap(
        mbuf: NonNull<rte_mbuf>,
        owner: u32,
    ) -> Result<(MbufHandle, usize, usize), NonNull<rte_mbuf>> {
        let mut view = svr_mbuf_view::default();
        // SAFETY: `mbuf` is valid (caller's contract) and `view` is a writable struct of
        // the type the shim fills.
        unsafe { dpdk_sys::svr_pktmbuf_view(mbuf.as_ptr(), &mut view) };

        let exclusive = view.nb_segs == 1 && view.refcnt == 1 && view.direct == 1;
        let (head, len) = (usize::from(view.data_off), usize::from(view.data_len));
        let consistent =
            u32::from(view.data_len) == view.pkt_len && head + len <= usize::from(view.buf_len);
        let Some(room) = NonNull::new(view.buf_addr.cast::<u8>()) else { return Err(mbuf) };
        if !exclusive || !consistent {
            return Err(mbuf);
        }
        Ok((MbufHandle { mbuf, room, room_len: view.buf_len, owner }, head, len))
    }

    pub(crate) fn owner(&self) -> u32 {
        self.owner
    }

    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `room` is the start of the mbuf's `room_len`-byte data room, which no
        // driver reads or writes while this handle owns the mbuf, and no other handle to
        // it exists. The mempool outlives the handle.
        unsafe { slice::from_raw_parts(self.room.as_ptr(), usize::from(self.room_len)) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`; `&mut self` makes this the only live reference.
        unsafe { slice::from_raw_parts_mut(self.room.as_ptr(), usize::from(self.room_len)) }
    }

    /// Gives up the handle without freeing the mbuf, for transmission.
    pub(crate) fn into_raw(self) -> NonNull<rte_mbuf> {
        let mbuf = self.mbuf;
        std::mem::forget(self);
        mbuf
    }
}

impl Drop for MbufHandle {
    fn drop(&mut self) {
        // SAFETY: the handle owns the mbuf, whose mempool still exists (see the type docs),
        // and nothing uses the mbuf after this.
        unsafe { dpdk_sys::svr_pktmbuf_free(self.mbuf.as_ptr()) };
    }
}

/// Frees an mbuf that no handle owns.
///
/// # Safety
/// `mbuf` points to a valid mbuf that the caller owns and does not use afterwards.
pub(crate) unsafe fn free_raw(mbuf: NonNull<rte_mbuf>) {
    // SAFETY: the caller's contract.
    unsafe { dpdk_sys::svr_pktmbuf_free(mbuf.as_ptr()) };
}

/// The mbuf pool of one port.
#[derive(Debug)]
pub(crate) struct Mempool {
    ptr: NonNull<rte_mempool>,
    size: u32,
}

// SAFETY: mempool operations are thread-safe with DPDK's default multi-producer,
// multi-consumer ring, and the pointer stays valid until `release`.
unsafe impl Send for Mempool {}

impl Mempool {
    /// Creates a pool of `size` mbufs with `data_room` bytes of data room each.
    pub(crate) fn create(
        name: &str,
        size: u32,
        cache: u32,
        data_room: u16,
        socket: i32,
        port: &str,
    ) -> Result<Mempool, IoError> {
        let Ok(c_name) = CString::new(name) else {
            return Err(dpdk_error("rte_pktmbuf_pool_create", port, libc::EINVAL));
        };
        // SAFETY: `c_name` is a NUL-terminated string that lives across the call; DPDK
        // copies it. The other arguments are plain values, checked by DPDK.
        let ptr = unsafe {
            dpdk_sys::rte_pktmbuf_pool_create(c_name.as_ptr(), size, cache, 0, data_room, socket)
        };
        match NonNull::new(ptr) {
            Some(ptr) => Ok(Mempool { ptr, size }),
            None => Err(dpdk_error("rte_pktmbuf_pool_create", port, rte_errno())),
        }
    }

    pub(crate) fn as_ptr(&self) -> *mut rte_mempool {
        self.ptr.as_ptr()
    }

    pub(crate) fn size(&self) -> u32 {
        self.size
    }

    /// Takes a reset mbuf from the pool, or `None` when the pool is empty.
    pub(crate) fn alloc(&self) -> Option<NonNull<rte_mbuf>> {
        // SAFETY: the pool is valid until `release`; alloc is thread-safe.
        NonNull::new(unsafe { dpdk_sys::svr_pktmbuf_alloc(self.ptr.as_ptr()) })
    }

    /// Mbufs in the pool, per-lcore caches included.
    pub(crate) fn available(&self) -> usize {
        // SAFETY: the pool is valid until `release`; the call only reads counters.
        unsafe { dpdk_sys::rte_mempool_avail_count(self.ptr.as_ptr()) as usize }
    }

    /// Mbufs outside the pool: held by frames, by driver queues, or leaked.
    pub(crate) fn in_use(&self) -> usize {
        // SAFETY: as for `available`.
        unsafe { dpdk_sys::rte_mempool_in_use_count(self.ptr.as_ptr()) as usize }
    }

    /// Frees the pool if every mbuf is back in it. Otherwise some frame, driver queue or
    /// other port still has mbufs that point into it, so the pool stays allocated
    /// until the process exits, and this returns how many mbufs are out.
    pub(crate) fn release(self) -> Result<(), usize> {
        let out = self.in_use();
        if out > 0 {
            return Err(out);
        }
        // SAFETY: no mbuf of the pool is outside it, no queue will use it again (the
        // caller closed or never started the port's queues), and `self` is consumed.
        unsafe { dpdk_sys::rte_mempool_free(self.ptr.as_ptr()) };
        Ok(())
    }
}
