//! The UMEM: the packet memory an AF_XDP socket shares with the kernel, cut into
//! equal chunks, and [`UmemChunk`], the handle a [`Frame`](crate::io::Frame) holds to one
//! of them.
//!
//! At any moment each chunk is in exactly one place: the free list here, the fill ring,
//! the receive ring, a `UmemChunk` in the application, the transmit ring or the
//! completion ring. Only a `UmemChunk` lets the process touch the chunk's bytes.

use std::{
    io,
    ptr::NonNull,
    sync::atomic::{AtomicU32, Ordering},
};

use super::sys::Mmap;

/// The mapped packet memory and its free chunks.
#[derive(Debug)]
pub(crate) struct Umem {
    /// `None` only while dropping.
    map: Option<Mmap>,
    id: u32,
    chunk_size: u32,
    /// Base addresses (offsets into the UMEM) of the chunks not in use.
    free: Vec<u64>,
    /// Chunks currently held as `UmemChunk` handles by the application.
    outstanding: usize,
}

impl Umem {
    /// Maps `chunks` chunks of `chunk_size` bytes, all on the free list.
    pub(crate) fn new(chunks: u32, chunk_size: u32) -> io::Result<Umem> {
        static NEXT_ID: AtomicU32 = AtomicU32::new(1);

        let len = chunks as usize * chunk_size as usize;
        let map = Mmap::anonymous(len)?;
        let free = (0..u64::from(chunks)).rev().map(|i| i * u64::from(chunk_size)).collect();
        Ok(Umem {
            map: Some(map),
            id: NEXT_ID.fetch_add(1, Ordering::Relaxed),
            chunk_size,
            free,
            outstanding: 0,
        })
    }

    /// Start address and length of the mapping, for `XDP_UMEM_REG`.
    pub(crate) fn region(&self) -> (u64, u64) {
        match &self.map {
            Some(map) => (map.as_ptr() as u64, map.len() as u64),
            None => (0, 0),
        }
    }

    pub(crate) fn chunk_size(&self) -> u32 {
        self.chunk_size
    }

    pub(crate) fn free_count(&self) -> usize {
        self.free.len()
    }

    /// Takes a free chunk's base address, to give to the kernel or to the application.
    pub(crate) fn take(&mut self) -> Option<u64> {
        self.free.pop()
    }

    /// Returns a chunk to the free list, given any address inside it.
    pub(crate) fn put(&mut self, addr: u64) {
        self.free.push(self.chunk_base(addr));
    }

    /// Base address of the chunk holding `addr`; chunks are aligned to their size.
    pub(crate) fn chunk_base(&self, addr: u64) -> u64 {
        addr & !(u64::from(self.chunk_size) - 1)
    }

    /// Whether `len` bytes from `addr` lie inside one chunk of this UMEM.
    pub(crate) fn contains(&self, addr: u64, len: u32) -> bool {
        let (_, total) = self.region();
        let base = self.chunk_base(addr);
        base < total && addr - base + u64::from(len) <= u64::from(self.chunk_size)
    }

    /// Hands the chunk at `base` to the application.
    ///
    /// The caller passes a base address it just took from the free list or the receive
    /// ring, so no other handle to that chunk exists.
    pub(crate) fn lend(&mut self, base: u64) -> Option<UmemChunk> {
        let map = self.map.as_ref()?;
        let (_, total) = self.region();
        if base >= total || !base.is_multiple_of(u64::from(self.chunk_size)) {
            return None;
        }

        // SAFETY: `base` is a chunk-aligned offset below the mapping's length, so the
        // resulting pointer is inside the mapping.
        let ptr = unsafe { map.as_ptr().add(base as usize) };
        let ptr = NonNull::new(ptr)?;
        self.outstanding += 1;
        Some(UmemChunk { ptr, size: self.chunk_size, base, umem: self.id })
    }

    /// Takes a chunk back from the application and returns its base address, or hands
    /// the chunk back if it belongs to another UMEM.
    pub(crate) fn reclaim(&mut self, chunk: UmemChunk) -> Result<u64, UmemChunk> {
        if chunk.umem != self.id {
            return Err(chunk);
        }
        self.outstanding -= 1;
        Ok(chunk.base)
    }
}

impl Drop for Umem {
    fn drop(&mut self) {
        let Some(map) = self.map.take() else { return };
        if self.outstanding > 0 {
            // Frames still point into the mapping, and safe code may read them after
            // this, so the memory stays mapped until the process exits.
            tracing::warn!(
                frames = self.outstanding,
                "AF_XDP socket closed with frames still in use; its UMEM stays mapped"
            );
            map.leak();
        }
    }
}

/// Exclusive access to one UMEM chunk, held by a [`Frame`](crate::io::Frame).
///
/// Dropping a chunk instead of returning it through its socket leaks it from the pool;
/// the UMEM then stays mapped, so the pointer never dangles.
pub(crate) struct UmemChunk {
    ptr: NonNull<u8>,
    size: u32,
    base: u64,
    umem: u32,
}

// SAFETY: the chunk is exclusively owned by this handle (see the module docs), so moving
// it to another thread moves the only access to its bytes.
unsafe impl Send for UmemChunk {}

impl UmemChunk {
    pub(crate) fn bytes(&self) -> &[u8] {
        // SAFETY: `ptr` is the start of a `size`-byte chunk inside a mapping that stays
        // mapped while this handle exists (Umem's Drop leaks it otherwise). While the
        // handle exists the chunk is on no kernel ring, so the kernel does not write it,
        // and no other handle to it exists.
        unsafe { std::slice::from_raw_parts(self.ptr.as_ptr(), self.size as usize) }
    }

    pub(crate) fn bytes_mut(&mut self) -> &mut [u8] {
        // SAFETY: as for `bytes`; `&mut self` makes this the only live reference.
        unsafe { std::slice::from_raw_parts_mut(self.ptr.as_ptr(), self.size as usize) }
    }
}
