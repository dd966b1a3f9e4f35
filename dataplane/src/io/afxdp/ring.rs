//! The single-producer, single-consumer rings an AF_XDP socket shares with the kernel.
//!
//! Each ring is a mapping holding a producer index, a consumer index, a flags word and
//! an array of entries. The producer writes entries, then publishes the new producer
//! index with a Release store. The consumer reads the producer index with an Acquire
//! load before it reads entries, and gives slots back with a Release store of the
//! consumer index. Indices run freely and wrap at 2^32; the slot
//! of index `i` is `i & mask`.

use std::sync::atomic::{AtomicU32, Ordering};

use super::sys::Mmap;

/// One mapped ring with entries of type `T` (`u64` UMEM addresses for the fill and
/// completion rings, `xdp_desc` for receive and transmit).
pub(crate) struct Ring<T> {
    // Kept for its Drop, which unmaps the pointers below.
    _map: Mmap,
    producer: *const AtomicU32,
    consumer: *const AtomicU32,
    flags: *const AtomicU32,
    entries: *mut T,
    mask: u32,
    size: u32,
    /// Our copy of the producer index: published on a producer ring, last read on a
    /// consumer ring.
    cached_producer: u32,
    /// Our copy of the consumer index: last read on a producer ring, published on a
    /// consumer ring.
    cached_consumer: u32,
}

// SAFETY: the ring's memory is owned by this value (and the kernel); the raw pointers
// are not shared with any other thread of this process, so moving the ring to another
// thread is sound.
unsafe impl<T: Send> Send for Ring<T> {}

/// Byte offsets inside a ring mapping, from `XDP_MMAP_OFFSETS`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RingOffsets {
    pub producer: u64,
    pub consumer: u64,
    pub desc: u64,
    pub flags: u64,
}

impl From<libc::xdp_ring_offset> for RingOffsets {
    fn from(raw: libc::xdp_ring_offset) -> RingOffsets {
        RingOffsets {
            producer: raw.producer,
            consumer: raw.consumer,
            desc: raw.desc,
            flags: raw.flags,
        }
    }
}

impl<T: Copy> Ring<T> {
    /// Wraps a ring mapping of `size` entries.
    ///
    /// # Safety
    ///
    /// - `map` must be the mapping of an AF_XDP ring of `size` entries of type `T` (a
    ///   power of two), laid out at `offsets`, and at least `offsets.desc +
    ///   size * size_of::<T>()` bytes long.
    /// - The producer, consumer and flags offsets must be 4-byte aligned.
    pub(crate) unsafe fn new(map: Mmap, offsets: RingOffsets, size: u32) -> Ring<T> {
        let base = map.as_ptr();
        // SAFETY: the caller guarantees every offset lies inside the mapping.
        let (producer, consumer, flags, entries) = unsafe {
            (
                base.add(offsets.producer as usize).cast::<AtomicU32>(),
                base.add(offsets.consumer as usize).cast::<AtomicU32>(),
                base.add(offsets.flags as usize).cast::<AtomicU32>(),
                base.add(offsets.desc as usize).cast::<T>(),
            )
        };

        let mut ring = Ring {
            _map: map,
            producer,
            consumer,
            flags,
            entries,
            mask: size - 1,
            size,
            cached_producer: 0,
            cached_consumer: 0,
        };
        ring.cached_producer = ring.producer().load(Ordering::Acquire);
        ring.cached_consumer = ring.consumer().load(Ordering::Acquire);
        ring
    }

    fn producer(&self) -> &AtomicU32 {
        // SAFETY: `producer` points to an aligned u32 inside the mapping, which lives as
        // long as `self`; the kernel accesses it only atomically.
        unsafe { &*self.producer }
    }

    fn consumer(&self) -> &AtomicU32 {
        // SAFETY: as for `producer`.
        unsafe { &*self.consumer }
    }

    /// Whether the kernel set `XDP_RING_NEED_WAKEUP`: it will not look at this ring
    /// again until a system call wakes it.
    pub(crate) fn needs_wakeup(&self) -> bool {
        // SAFETY: as for `producer`; the flags word is written by the kernel only.
        let flags = unsafe { &*self.flags };
        flags.load(Ordering::Relaxed) & libc::XDP_RING_NEED_WAKEUP != 0
    }

    // Producer side (fill and transmit rings).

    /// Returns how many of `requested` entries may be written now.
    pub(crate) fn producer_reserve(&mut self, requested: u32) -> u32 {
        let mut free = self.size - self.cached_producer.wrapping_sub(self.cached_consumer);
        if free < requested {
            // Acquire pairs with the kernel's release of the consumer index: the
            // entries it consumed are no longer read once we see the new index.
            self.cached_consumer = self.consumer().load(Ordering::Acquire);
            free = self.size - self.cached_producer.wrapping_sub(self.cached_consumer);
        }
        free.min(requested)
    }

    /// Writes entry `n` past the published producer index; `n` must be below the last
    /// `producer_reserve` result.
    pub(crate) fn write(&mut self, n: u32, value: T) {
        let slot = (self.cached_producer.wrapping_add(n) & self.mask) as usize;
        // SAFETY: `slot` is below `size`, so the entry lies inside the mapping; the
        // kernel does not read it until the producer index is published past it.
        unsafe { self.entries.add(slot).write(value) }
    }

    /// Publishes `count` written entries to the kernel.
    pub(crate) fn submit(&mut self, count: u32) {
        self.cached_producer = self.cached_producer.wrapping_add(count);
        // Release orders the entry writes before the index the kernel reads.
        self.producer().store(self.cached_producer, Ordering::Release);
    }

    /// Whether entries published to the kernel are still waiting to be consumed.
    pub(crate) fn producer_pending(&mut self) -> bool {
        self.cached_consumer = self.consumer().load(Ordering::Acquire);
        self.cached_consumer != self.cached_producer
    }

    // Consumer side (receive and completion rings).

    /// Returns how many of `requested` entries may be read now.
    pub(crate) fn consumer_peek(&mut self, requested: u32) -> u32 {
        let mut available = self.cached_producer.wrapping_sub(self.cached_consumer);
        if available < requested {
            // Acquire pairs with the kernel's release of the producer index: the
            // entries below it are fully written once we see it.
            self.cached_producer = self.producer().load(Ordering::Acquire);
            available = self.cached_producer.wrapping_sub(self.cached_consumer);
        }
        available.min(requested)
    }

    /// Reads entry `n` past the released consumer index; `n` must be below the last
    /// `consumer_peek` result.
    pub(crate) fn read(&self, n: u32) -> T {
        let slot = (self.cached_consumer.wrapping_add(n) & self.mask) as usize;
        // SAFETY: `slot` is below `size`; the kernel published the entry and does not
        // rewrite it until the consumer index moves past it.
        unsafe { self.entries.add(slot).read() }
    }

    /// Gives `count` read entries back to the kernel.
    pub(crate) fn release(&mut self, count: u32) {
        self.cached_consumer = self.cached_consumer.wrapping_add(count);
        // Release orders our entry reads before the kernel may overwrite the slots.
        self.consumer().store(self.cached_consumer, Ordering::Release);
    }

    /// Whether the ring has entries to read, checking the kernel's index.
    pub(crate) fn consumer_ready(&mut self) -> bool {
        self.consumer_peek(1) > 0
    }
}
