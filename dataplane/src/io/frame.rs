//! [`Frame`], a handle to one packet buffer in a backend's pool, and [`Burst`], the
//! fixed-capacity batch of frames moved by one receive or transmit call.

use std::fmt;

use super::{FrameError, MAX_BURST};

/// One packet buffer owned by a backend's pool, with the packet's bytes at
/// `headroom()..headroom() + len()`.
///
/// ```text
///  0           head          head + len                    capacity
///  +-------------+----------------+----------------------------+
///  |  headroom   |  packet data   |          tailroom          |
///  +-------------+----------------+----------------------------+
/// ```
///
/// [`prepend`](Frame::prepend) grows the packet into the headroom (pushing an outer
/// header), [`advance`](Frame::advance) strips bytes from the front, and
/// [`append`](Frame::append) and [`truncate`](Frame::truncate) move the end.
pub struct Frame {
    buf: FrameBuf,
    head: u32,
    len: u32,
}

/// Where a frame's bytes live.
pub(crate) enum FrameBuf {
    /// A heap buffer from a memory-backend pool, tagged with that pool's id.
    Heap { bytes: Box<[u8]>, pool: u32 },
    /// A chunk of an AF_XDP UMEM.
    #[cfg(target_os = "linux")]
    Umem(super::afxdp::UmemChunk),
    /// The data room of a DPDK mbuf, tagged with the port that handed it out.
    #[cfg(feature = "dpdk")]
    Mbuf(super::dpdk::MbufHandle),
}

impl FrameBuf {
    fn bytes(&self) -> &[u8] {
        match self {
            FrameBuf::Heap { bytes, .. } => bytes,
            #[cfg(target_os = "linux")]
            FrameBuf::Umem(chunk) => chunk.bytes(),
            #[cfg(feature = "dpdk")]
            FrameBuf::Mbuf(mbuf) => mbuf.bytes(),
        }
    }

    fn bytes_mut(&mut self) -> &mut [u8] {
        match self {
            FrameBuf::Heap { bytes, .. } => bytes,
            #[cfg(target_os = "linux")]
            FrameBuf::Umem(chunk) => chunk.bytes_mut(),
            #[cfg(feature = "dpdk")]
            FrameBuf::Mbuf(mbuf) => mbuf.bytes_mut(),
        }
    }
}

impl Frame {
    /// Wraps a pool buffer whose packet starts at `head` and is `len` bytes long.
    ///
    /// The caller (a backend) guarantees `head + len <= buf capacity` and that the
    /// buffer capacity fits in `u32`.
    pub(crate) fn from_parts(buf: FrameBuf, head: usize, len: usize) -> Frame {
        Frame { buf, head: head as u32, len: len as u32 }
    }

    pub(crate) fn into_parts(self) -> (FrameBuf, usize, usize) {
        (self.buf, self.head as usize, self.len as usize)
    }

    pub(crate) fn buf(&self) -> &FrameBuf {
        &self.buf
    }

    /// Packet length in bytes.
    pub fn len(&self) -> usize {
        self.len as usize
    }

    /// Whether the packet has no bytes.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Size of the whole buffer: headroom, data and tailroom.
    pub fn capacity(&self) -> usize {
        self.buf.bytes().len()
    }

    /// Free bytes in front of the packet.
    ///
    /// Frames from [`PacketIo::alloc`](super::PacketIo::alloc) start with
    /// [`DEFAULT_HEADROOM`](super::DEFAULT_HEADROOM). A received frame has what its backend
    /// left: 256 bytes on AF_XDP in copy mode, and on DPDK the mbuf's data offset, which is
    /// 128 bytes (`RTE_PKTMBUF_HEADROOM`) for drivers that copy into fresh mbufs.
    pub fn headroom(&self) -> usize {
        self.head as usize
    }

    /// Free bytes after the packet.
    pub fn tailroom(&self) -> usize {
        self.capacity() - self.head as usize - self.len as usize
    }

    /// The packet's bytes.
    pub fn data(&self) -> &[u8] {
        let head = self.head as usize;
        &self.buf.bytes()[head..head + self.len as usize]
    }

    /// The packet's bytes, writable.
    pub fn data_mut(&mut self) -> &mut [u8] {
        let head = self.head as usize;
        let end = head + self.len as usize;
        &mut self.buf.bytes_mut()[head..end]
    }

    /// Grows the packet by `count` bytes at the front and returns the new bytes, whose
    /// contents are unspecified.
    pub fn prepend(&mut self, count: usize) -> Result<&mut [u8], FrameError> {
        let available = self.headroom();
        if count > available {
            return Err(FrameError::NoHeadroom { requested: count, available });
        }

        self.head -= count as u32;
        self.len += count as u32;
        Ok(&mut self.data_mut()[..count])
    }

    /// Removes `count` bytes from the front of the packet, leaving them as headroom.
    pub fn advance(&mut self, count: usize) -> Result<(), FrameError> {
        let len = self.len();
        if count > len {
            return Err(FrameError::TooShort { requested: count, len });
        }

        self.head += count as u32;
        self.len -= count as u32;
        Ok(())
    }

    /// Grows the packet by `count` bytes at the end and returns the new bytes, whose
    /// contents are unspecified.
    pub fn append(&mut self, count: usize) -> Result<&mut [u8], FrameError> {
        let available = self.tailroom();
        if count > available {
            return Err(FrameError::NoTailroom { requested: count, available });
        }

        let old_len = self.len();
        self.len += count as u32;
        Ok(&mut self.data_mut()[old_len..])
    }

    /// Shortens the packet to `len` bytes; does nothing when it is already that short.
    pub fn truncate(&mut self, len: usize) {
        if len < self.len() {
            self.len = len as u32;
        }
    }

    /// Replaces the packet with a copy of `bytes`, keeping the current headroom.
    pub fn copy_from(&mut self, bytes: &[u8]) -> Result<(), FrameError> {
        let available = self.capacity() - self.headroom();
        if bytes.len() > available {
            return Err(FrameError::NoTailroom { requested: bytes.len(), available });
        }

        self.len = bytes.len() as u32;
        self.data_mut().copy_from_slice(bytes);
        Ok(())
    }

    /// Empties the packet and moves its start to `headroom` bytes into the buffer.
    pub fn reset(&mut self, headroom: usize) -> Result<(), FrameError> {
        let available = self.capacity();
        if headroom > available {
            return Err(FrameError::NoHeadroom { requested: headroom, available });
        }

        self.head = headroom as u32;
        self.len = 0;
        Ok(())
    }
}

impl fmt::Debug for Frame {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Frame")
            .field("headroom", &self.headroom())
            .field("len", &self.len())
            .field("capacity", &self.capacity())
            .finish()
    }
}

/// Up to [`MAX_BURST`] frames, the unit of one receive or transmit call.
///
/// The storage is allocated once by [`Burst::new`] and reused, so pushing and draining
/// never allocate. Dropping a burst that still contains frames loses them to their
/// pool; return them with [`PacketIo::free_burst`](super::PacketIo::free_burst).
pub struct Burst {
    frames: Vec<Frame>,
}

impl Burst {
    /// An empty burst with room for [`MAX_BURST`] frames.
    pub fn new() -> Burst {
        Burst { frames: Vec::with_capacity(MAX_BURST) }
    }

    /// Number of frames in the burst.
    pub fn len(&self) -> usize {
        self.frames.len()
    }

    /// Whether the burst holds no frames.
    pub fn is_empty(&self) -> bool {
        self.frames.is_empty()
    }

    /// Whether the burst holds [`MAX_BURST`] frames.
    pub fn is_full(&self) -> bool {
        self.frames.len() >= MAX_BURST
    }

    /// Number of frames that can still be pushed.
    pub fn free_slots(&self) -> usize {
        MAX_BURST - self.frames.len()
    }

    /// Adds a frame at the end, or hands it back when the burst is full.
    pub fn push(&mut self, frame: Frame) -> Result<(), Frame> {
        if self.is_full() {
            return Err(frame);
        }
        self.frames.push(frame);
        Ok(())
    }

    /// Removes the last frame.
    pub fn pop(&mut self) -> Option<Frame> {
        self.frames.pop()
    }

    /// Removes the frame at `index`, replacing it with the last one, so order is not kept.
    pub fn swap_remove(&mut self, index: usize) -> Option<Frame> {
        if index < self.frames.len() { Some(self.frames.swap_remove(index)) } else { None }
    }

    /// The frames, in receive order.
    pub fn iter(&self) -> std::slice::Iter<'_, Frame> {
        self.frames.iter()
    }

    /// The frames, writable, in receive order.
    pub fn iter_mut(&mut self) -> std::slice::IterMut<'_, Frame> {
        self.frames.iter_mut()
    }

    /// The frames as a slice.
    pub fn as_slice(&self) -> &[Frame] {
        &self.frames
    }

    /// The frames as a writable slice.
    pub fn as_mut_slice(&mut self) -> &mut [Frame] {
        &mut self.frames
    }

    /// Removes every frame, in order.
    pub fn drain(&mut self) -> std::vec::Drain<'_, Frame> {
        self.frames.drain(..)
    }
}

impl Default for Burst {
    fn default() -> Burst {
        Burst::new()
    }
}

impl fmt::Debug for Burst {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Burst").field("len", &self.len()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn heap_frame(capacity: usize, head: usize) -> Frame {
        let bytes = vec![0xa5; capacity].into_boxed_slice();
        Frame::from_parts(FrameBuf::Heap { bytes, pool: 0 }, head, 0)
    }

    #[test]
    fn frame_prepend_uses_headroom() {
        let mut frame = heap_frame(64, 16);
        frame.copy_from(b"payload").unwrap();
        frame.prepend(4).unwrap().copy_from_slice(b"hdr:");

        assert_eq!(frame.data(), b"hdr:payload");
        assert_eq!(frame.headroom(), 12);
        assert_eq!(frame.tailroom(), 64 - 12 - 11);
    }

    #[test]
    fn frame_prepend_past_headroom() {
        let mut frame = heap_frame(64, 8);
        let err = frame.prepend(9).unwrap_err();

        assert_eq!(err, FrameError::NoHeadroom { requested: 9, available: 8 });
        assert_eq!(frame.headroom(), 8);
        assert!(frame.is_empty());
    }

    #[test]
    fn frame_append_past_tailroom() {
        let mut frame = heap_frame(32, 16);
        frame.append(16).unwrap();
        let err = frame.append(1).unwrap_err();

        assert_eq!(err, FrameError::NoTailroom { requested: 1, available: 0 });
        assert_eq!(frame.len(), 16);
    }

    #[test]
    fn frame_advance_strips_front() {
        let mut frame = heap_frame(64, 0);
        frame.copy_from(b"ethernet|ip").unwrap();
        frame.advance(9).unwrap();

        assert_eq!(frame.data(), b"ip");
        assert_eq!(frame.headroom(), 9);
    }

    #[test]
    fn frame_advance_past_end() {
        let mut frame = heap_frame(64, 0);
        frame.copy_from(b"abc").unwrap();

        assert_eq!(frame.advance(4), Err(FrameError::TooShort { requested: 4, len: 3 }));
        assert_eq!(frame.data(), b"abc");
    }

    #[test]
    fn frame_copy_from_too_long() {
        let mut frame = heap_frame(16, 8);

        assert_eq!(
            frame.copy_from(&[0; 9]),
            Err(FrameError::NoTailroom { requested: 9, available: 8 })
        );
    }

    #[test]
    fn frame_reset_past_capacity() {
        let mut frame = heap_frame(16, 8);

        assert_eq!(frame.reset(17), Err(FrameError::NoHeadroom { requested: 17, available: 16 }));
        frame.reset(16).unwrap();
        assert_eq!(frame.tailroom(), 0);
    }

    #[test]
    fn frame_truncate_only_shrinks() {
        let mut frame = heap_frame(16, 0);
        frame.copy_from(b"abcdef").unwrap();
        frame.truncate(10);
        assert_eq!(frame.len(), 6);
        frame.truncate(2);
        assert_eq!(frame.data(), b"ab");
    }

    #[test]
    fn burst_push_past_max() {
        let mut burst = Burst::new();
        for _ in 0..MAX_BURST {
            burst.push(heap_frame(8, 0)).unwrap();
        }

        assert!(burst.is_full());
        assert_eq!(burst.free_slots(), 0);
        assert!(burst.push(heap_frame(8, 0)).is_err());
        assert_eq!(burst.drain().count(), MAX_BURST);
        assert!(burst.is_empty());
    }
}
