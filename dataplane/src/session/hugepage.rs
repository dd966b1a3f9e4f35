//! Transparent huge pages for the session slab and its indexes.
//!
//! A lookup in a table of a million sessions touches an index entry and a slot in two
//! random places of arrays of about 16 MiB and 900 MiB. With 4 KiB pages nearly every
//! lookup then misses the TLB twice, and the page-table walks miss the caches too. Backed by
//! 2 MiB pages the same arrays need a few hundred TLB entries.
#![allow(
    unsafe_code,
    reason = "madvise is a libc call on a raw address range; the range lies inside a \
              live allocation this module is handed"
)]

use std::mem::MaybeUninit;

/// Size of an x86-64 and arm64 transparent huge page.
const HUGE_PAGE: usize = 2 << 20;

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
