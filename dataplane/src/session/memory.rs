//! Memory hints for the session slab and its indexes: transparent huge pages, and cache
//! prefetches for batched lookups.
//!
//! A lookup in a table of a million sessions touches an index entry and a slot in two
//! random places of arrays of about 16 MiB and 900 MiB. With 4 KiB pages nearly every
//! lookup then misses the TLB twice, and the page-table walks miss the caches too. Backed by
//! 2 MiB pages the same arrays need a few hundred TLB entries.
//!
//! Both misses remain, and a lookup that waits for them one after the other pays two memory
//! latencies. A batched lookup instead requests the lines of many lookups at once with
//! [`prefetch`] and [`prefetch_bytes`], so their latencies overlap.
#![allow(
    unsafe_code,
    reason = "madvise is a libc call on a raw address range that lies inside a live \
              allocation this module is handed, and the x86-64 prefetch instruction is an \
              intrinsic that Rust marks unsafe because it needs SSE"
)]

use std::mem::MaybeUninit;
use std::ops::Range;

/// Size of an x86-64 and arm64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

/// Cache line size of x86-64 and of most arm64 cores.
const CACHE_LINE: usize = 64;

/// Asks the kernel to back the huge-page-aligned part of `spare` with transparent huge
/// pages, before its pages are first touched. The call is advice: when the kernel has
/// transparent huge pages off, or the range contains no whole huge page, nothing changes.
pub(super) fn advise<T>(spare: &mut [MaybeUninit<T>]) {
    let start = spare.as_mut_ptr() as usize;
    let end = start + std::mem::size_of_val(spare);
    let first = start.next_multiple_of(HUGE_PAGE);
    let last = end - end % HUGE_PAGE;
    if last <= first {
        return;
    }
    // SAFETY: [first, last) lies inside `spare`, which the caller's allocation owns for
    // the duration of the call. MADV_HUGEPAGE only changes how the kernel backs the pages,
    // never their contents, so no Rust value can observe it.
    let result =
        unsafe { libc::madvise(first as *mut libc::c_void, last - first, libc::MADV_HUGEPAGE) };
    if result != 0 {
        tracing::debug!(
            bytes = last - first,
            error = %std::io::Error::last_os_error(),
            "transparent huge pages not available for the session table"
        );
    }
}

/// Starts loading the cache line that contains the first byte of `value` into every cache
/// level, without waiting for it and without reading `value`.
pub(super) fn prefetch<T>(value: &T) {
    prefetch_line((value as *const T).cast());
}

/// Starts loading every cache line that contains a byte of `bytes` of `value`, as
/// [`prefetch`] does. The part of `bytes` past the end of `value` is ignored.
pub(super) fn prefetch_bytes<T>(value: &T, bytes: Range<usize>) {
    let base: *const u8 = (value as *const T).cast();
    for offset in line_offsets(bytes, size_of::<T>()) {
        prefetch_line(base.wrapping_add(offset));
    }
}

/// Offsets into a value of `size` bytes, one in each cache line that contains a byte of
/// `bytes`, wherever the value starts: the first byte, then steps of one line, then the
/// last byte, whose line the steps may have skipped.
fn line_offsets(bytes: Range<usize>, size: usize) -> impl Iterator<Item = usize> {
    let end = bytes.end.min(size);
    let steps = (bytes.start..end).step_by(CACHE_LINE);
    steps.chain((bytes.start < end).then(|| end - 1))
}

#[cfg(target_arch = "x86_64")]
fn prefetch_line(address: *const u8) {
    use std::arch::x86_64::{_MM_HINT_T0, _mm_prefetch};
    // SAFETY: SSE, which the intrinsic requires, is part of the x86-64 baseline. PREFETCHT0
    // is a hint: it never faults, whatever the address, and changes no memory, so the
    // program cannot observe it. Callers pass addresses inside a live value anyway.
    unsafe { _mm_prefetch::<_MM_HINT_T0>(address.cast()) }
}

/// Without an intrinsic on stable Rust for this architecture, a batched lookup still runs
/// its stages, but overlaps its memory accesses only as far as the CPU's out-of-order
/// window reaches.
#[cfg(not(target_arch = "x86_64"))]
fn prefetch_line(_address: *const u8) {}

#[cfg(test)]
mod tests {
    use super::*;

    /// Checks that the offsets stay inside the value and reach every line of the range,
    /// at each alignment of the value within a line.
    fn check_lines(bytes: Range<usize>, size: usize) {
        let offsets: Vec<usize> = line_offsets(bytes.clone(), size).collect();
        assert!(offsets.iter().all(|&offset| offset < size), "{bytes:?} of {size}: {offsets:?}");
        for start in 0..CACHE_LINE {
            let line = |offset: usize| (start + offset) / CACHE_LINE;
            for byte in bytes.start..bytes.end.min(size) {
                assert!(
                    offsets.iter().any(|&offset| line(offset) == line(byte)),
                    "{bytes:?} of {size} at {start}: line of byte {byte} missed by {offsets:?}"
                );
            }
        }
    }

    #[test]
    fn line_offsets_cover_range() {
        for (bytes, size) in [
            (0..1, 1),
            (0..64, 64),
            (0..65, 944),
            (832..944, 944),
            (872..912, 944),
            (60..200, 944),
            (63..129, 944),
            (900..2000, 944),
        ] {
            check_lines(bytes, size);
        }
    }

    #[test]
    fn line_offsets_empty_range() {
        assert_eq!(line_offsets(8..8, 64).count(), 0);
        assert_eq!(line_offsets(100..200, 64).count(), 0);
    }

    #[test]
    fn line_offsets_one_per_line() {
        // A range of whole lines takes one offset per line, plus the last byte.
        assert_eq!(line_offsets(0..256, 1024).collect::<Vec<_>>(), [0, 64, 128, 192, 255]);
    }
}
