//! Allocation count of the warm packet path with two workers per router: once the metadata
//! handshakes are done, forwarding in both directions, with packets handed between the
//! workers, must not allocate.

#![expect(clippy::unwrap_used, reason = "test helpers fail the test by panicking")]
#![expect(clippy::panic, reason = "test helpers fail the test by panicking")]
#![allow(unsafe_code, reason = "a counting global allocator must implement GlobalAlloc")]

mod engine_support;
mod sharded_support;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

use engine_support::*;
use sharded_support::*;

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
fn handoff_path_does_not_allocate() {
    let mut net = ShardNet::new((2, 2), sharded_support::Layout::Split);
    // Flows of both workers' classes: one crosses from the LAN worker to its owner, the
    // other's output crosses to the WAN worker, on each router.
    let flows: Vec<(u16, u16)> =
        flows_of_worker(0, 2, 2).into_iter().chain(flows_of_worker(1, 2, 2)).collect();
    let request = |ports: (u16, u16)| udp_v4(HOST1, HOST5, ports, &[0x42; 512]);
    let reply = |ports: (u16, u16)| from_host5(udp_v4(HOST5, HOST1, (ports.1, ports.0), b"ack"));

    // Two round trips end each session's metadata handshake.
    for _ in 0..2 {
        for ports in &flows {
            Net::send(&mut net.host1, &request(*ports));
        }
        net.run();
        for ports in &flows {
            Net::send(&mut net.host5, &reply(*ports));
        }
        net.run();
    }
    assert_eq!(Net::receive(&mut net.host5).len(), 8);
    assert_eq!(Net::receive(&mut net.host1).len(), 8);

    // The first packet of a new flow allocates: this shows the count works.
    Net::send(&mut net.host1, &request(flow(3999)));
    let now = net.now;
    let first = allocations_in(|| {
        net.r1.group.poll_once(now);
        net.r1.group.poll_once(now);
    });
    assert!(first > 0, "creating a session allocated nothing, so the counter is broken");
    net.run();
    let _ = Net::receive(&mut net.host5);

    for _ in 0..8 {
        for ports in &flows {
            Net::send(&mut net.host1, &request(*ports));
            Net::send(&mut net.host5, &reply(*ports));
        }
    }
    // Each router polls three times: receive and hand off, process, send what was handed
    // back. Then the relay delivers, and the same again opens the WAN packets.
    let seal = allocations_in(|| {
        for _ in 0..3 {
            net.r1.group.poll_once(now);
            net.r2.group.poll_once(now);
        }
    });
    assert_eq!(relay(&mut net.wire1, &mut net.wire2), 32);
    assert_eq!(relay(&mut net.wire2, &mut net.wire1), 32);
    let open = allocations_in(|| {
        for _ in 0..3 {
            net.r1.group.poll_once(now);
            net.r2.group.poll_once(now);
        }
    });

    assert_eq!(Net::receive(&mut net.host5).len(), 32);
    assert_eq!(Net::receive(&mut net.host1).len(), 32);
    assert_eq!(seal, 0, "sealing warm packets with hand-offs allocated");
    assert_eq!(open, 0, "opening warm packets with hand-offs allocated");
    let handed: u64 =
        net.r1.group.workers().iter_mut().map(|worker| worker.engine().counters().handed_off).sum();
    assert!(handed > 0, "no packet crossed between r1's workers");
}
