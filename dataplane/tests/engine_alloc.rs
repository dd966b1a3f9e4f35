//! Allocation count of the warm packet path: once a session's metadata handshake is done,
//! forwarding its packets in both directions must not allocate.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]
#![allow(unsafe_code, reason = "a counting global allocator must implement GlobalAlloc")]

mod engine_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engine_support::*;

/// Counts the allocations made on threads that have counting switched on.
struct CountingAllocator;

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// thread-local cells with const initialisers, so touching them does not allocate.
unsafe impl GlobalAlloc for CountingAllocator {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `alloc` is passed on as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: `ptr` came from `System` through `alloc` or `realloc` above.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: the caller's contract for `realloc` is passed on as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

fn count() {
    let _ = COUNTING.try_with(|counting| {
        if counting.get() {
            let _ = ALLOCATIONS.try_with(|allocations| allocations.set(allocations.get() + 1));
        }
    });
}

#[global_allocator]
static ALLOCATOR: CountingAllocator = CountingAllocator;

/// Runs `f` and returns the allocations it made on this thread.
fn allocations_in(f: impl FnOnce()) -> u64 {
    ALLOCATIONS.with(|allocations| allocations.set(0));
    COUNTING.with(|counting| counting.set(true));
    f();
    COUNTING.with(|counting| counting.set(false));
    ALLOCATIONS.with(Cell::get)
}

#[test]
fn warm_path_does_not_allocate() {
    let mut net = Net::new();
    let now = net.now;

    // The first packet creates a session, which allocates: this shows the count works.
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    let first = allocations_in(|| {
        net.r1.poll_once(now);
    });
    assert!(first > 0, "creating a session allocated nothing, so the counter is broken");
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"ends the handshake"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"no metadata")));
    net.run();
    assert_eq!(net.at_host5().len(), 2);
    assert_eq!(net.at_host1().len(), 2);

    // 32 packets each way. Every router poll is counted: sealing LAN packets first, then
    // opening the WAN packets the relay delivered.
    let request = udp_v4(HOST1, HOST5, (40000, 5201), &[0x42; 512]);
    let reply = from_host5(udp_v4(HOST5, HOST1, (5201, 40000), &[0x24; 256]));
    for _ in 0..32 {
        net.send_from_host1(&request);
        net.send_from_host5(&reply);
    }
    let seal = allocations_in(|| {
        net.r1.poll_once(now);
        net.r2.poll_once(now);
    });
    assert_eq!(net.relay(), 64);
    let open = allocations_in(|| {
        net.r1.poll_once(now);
        net.r2.poll_once(now);
    });

    assert_eq!(net.at_host5().len(), 32);
    assert_eq!(net.at_host1().len(), 32);
    assert_eq!(seal, 0, "sealing warm packets allocated");
    assert_eq!(open, 0, "opening warm packets allocated");
}

/// Clears DF in an IPv4 frame and fixes its header checksum.
fn without_df(mut frame: Vec<u8>) -> Vec<u8> {
    frame[20] &= !0x40;
    frame[24..26].fill(0);
    let sum = internet_checksum(&[&frame[14..34]]);
    frame[24..26].copy_from_slice(&sum.to_be_bytes());
    frame
}

#[test]
fn fragmenting_does_not_allocate() {
    let mut net = Net::new();
    let now = net.now;
    net.send_from_host1(&udp_v4(HOST1, HOST5, (40000, 5201), b"first"));
    net.run();
    net.send_from_host5(&from_host5(udp_v4(HOST5, HOST1, (5201, 40000), b"reply")));
    net.run();
    assert_eq!(net.at_host5().len(), 1);
    assert_eq!(net.at_host1().len(), 1);

    // 16 datagrams of 1500 bytes, each sent as two SVR fragments.
    let request = without_df(udp_v4(HOST1, HOST5, (40000, 5201), &[0x42; 1472]));
    for _ in 0..16 {
        net.send_from_host1(&request);
    }
    let seal = allocations_in(|| {
        net.r1.poll_once(now);
    });
    assert_eq!(net.relay(), 32);
    net.r2.poll_once(now);

    assert_eq!(net.at_host5().len(), 16);
    assert_eq!(net.r1.engine().fragment_counters().fragments_sent, 32);
    assert_eq!(seal, 0, "sending svr fragments allocated");
}
