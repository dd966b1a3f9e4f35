//! Thin wrappers over the libc calls of the AF_XDP backend that are not bpf(2): memory
//! mappings, interface lookup and the ethtool channel query.

use std::{
    ffi::CString,
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
    ptr::NonNull,
};

use crate::io::{
    IoError,
    error::{SysOp, SysTarget, from_errno},
};

/// A shared memory mapping, unmapped on drop unless [`Mmap::leak`] was called.
#[derive(Debug)]
pub(crate) struct Mmap {
    ptr: NonNull<u8>,
    len: usize,
}

// SAFETY: a mapping is plain memory with no thread affinity; its owner decides who
// touches it, and this value only unmaps it.
unsafe impl Send for Mmap {}

impl Mmap {
    /// Maps `len` bytes of anonymous memory, readable and writable.
    pub(crate) fn anonymous(len: usize) -> io::Result<Mmap> {
        // SAFETY: a fresh anonymous mapping aliases no existing memory; the result is
        // checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_POPULATE,
                -1,
                0,
            )
        };
        Mmap::checked(ptr, len)
    }

    /// Maps `len` bytes of the AF_XDP socket `fd` at the ring offset `offset`.
    pub(crate) fn socket_ring(fd: &OwnedFd, len: usize, offset: u64) -> io::Result<Mmap> {
        // SAFETY: mapping a ring of a socket we own creates new memory shared only with
        // the kernel; the result is checked for MAP_FAILED before use.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd.as_raw_fd(),
                offset as libc::off_t,
            )
        };
        Mmap::checked(ptr, len)
    }

    fn checked(ptr: *mut libc::c_void, len: usize) -> io::Result<Mmap> {
        if ptr == libc::MAP_FAILED {
            return Err(io::Error::last_os_error());
        }
        NonNull::new(ptr.cast::<u8>())
            .map(|ptr| Mmap { ptr, len })
            .ok_or_else(|| io::Error::from_raw_os_error(libc::ENOMEM))
    }

    pub(crate) fn as_ptr(&self) -> *mut u8 {
        self.ptr.as_ptr()
    }

    pub(crate) fn len(&self) -> usize {
        self.len
    }

    /// Keeps the memory mapped for the rest of the process, because something may
    /// still point into it.
    pub(crate) fn leak(self) {
        std::mem::forget(self);
    }
}

impl Drop for Mmap {
    fn drop(&mut self) {
        // SAFETY: `ptr` and `len` describe a mapping this value created and nothing
        // else unmaps; owners that hand out pointers into it call `leak` instead of
        // dropping while those pointers live.
        unsafe {
            libc::munmap(self.ptr.as_ptr().cast(), self.len);
        }
    }
}

/// Returns the index of `interface` in the calling thread's network namespace.
pub(crate) fn interface_index(interface: &str) -> Result<u32, IoError> {
    let target = SysTarget { interface, zero_copy: false, mode: "" };
    let not_found = || IoError::InterfaceNotFound { interface: interface.to_owned() };
    if interface.is_empty() || interface.len() >= libc::IFNAMSIZ {
        return Err(not_found());
    }
    let name = CString::new(interface).map_err(|_| not_found())?;

    // SAFETY: `name` is a NUL-terminated string that lives across the call.
    let index = unsafe { libc::if_nametoindex(name.as_ptr()) };
    if index == 0 {
        return Err(from_errno(SysOp::InterfaceIndex, io::Error::last_os_error(), &target));
    }
    Ok(index)
}

/// Returns the number of receive queues of `interface`, or `None` when its driver does
/// not report channels.
pub(crate) fn rx_queue_count(interface: &str) -> Option<u32> {
    // The ethtool ioctl needs an inet socket, because an AF_XDP socket does not pass it
    // on. It looks the interface up in the socket's network namespace, the caller's.
    // SAFETY: socket(2) takes no pointers; the result is checked before use.
    let raw = unsafe { libc::socket(libc::AF_INET, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) };
    if raw < 0 {
        return None;
    }
    // SAFETY: `raw` is a new descriptor that nothing else owns.
    let socket = unsafe { OwnedFd::from_raw_fd(raw) };

    // struct ethtool_channels: cmd, max_rx, max_tx, max_other, max_combined, rx_count,
    // tx_count, other_count, combined_count, all u32.
    let mut channels = [0u32; 9];
    channels[0] = ETHTOOL_GCHANNELS;

    // SAFETY: an all-zero ifreq is valid; the name copy below stays within ifr_name.
    let mut ifr: libc::ifreq = unsafe { std::mem::zeroed() };
    for (dst, src) in ifr.ifr_name.iter_mut().zip(interface.bytes().take(libc::IFNAMSIZ - 1)) {
        *dst = src as libc::c_char;
    }
    ifr.ifr_ifru.ifru_data = channels.as_mut_ptr().cast();

    // SAFETY: SIOCETHTOOL reads the ifreq and writes at most the 36-byte channels
    // structure it points to, both of which live across the call.
    let ret = unsafe { libc::ioctl(socket.as_raw_fd(), SIOCETHTOOL, &mut ifr) };
    if ret < 0 {
        return None;
    }
    let count = channels[5].max(channels[8]);
    (count > 0).then_some(count)
}

const ETHTOOL_GCHANNELS: u32 = 0x3c;
const SIOCETHTOOL: libc::Ioctl = 0x8946;
