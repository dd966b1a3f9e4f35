//! An estimate of the core clock, for reporting cycles per byte.
//!
//! The time-stamp counter of a virtual machine runs at the nominal frequency, not the turbo
//! frequency the core actually runs at, so cycles are estimated from a chain of dependent
//! 64-bit squarings instead: each multiply takes three cycles on every x86-64 core since
//! Nehalem, and squaring (unlike multiplying by a constant, which the compiler may
//! reassociate) leaves a chain that cannot be overlapped. The chain is timed by the CPU time
//! of the measuring thread, so time spent descheduled on a busy machine does not count. The
//! result is an estimate, good to a few percent.

use std::hint::black_box;
use std::time::{Duration, Instant};

const MULTIPLY_LATENCY_CYCLES: f64 = 3.0;

/// Estimates the clock of the current core in GHz (median of several samples).
pub fn core_ghz() -> f64 {
    let mut samples: Vec<f64> = (0..7).map(|_| sample()).collect();
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn sample() -> f64 {
    const STEPS: u64 = 50_000_000;
    // An odd start stays odd under squaring, so the chain never collapses to zero.
    let mut x = black_box(0x9e37_79b9_7f4a_7c15u64);
    let wall = Instant::now();
    let start = thread_cpu_time();
    for _ in 0..STEPS {
        x = x.wrapping_mul(x);
    }
    // Without a thread clock the wall clock is used instead, which a busy machine slows
    // down.
    let elapsed = match (start, thread_cpu_time()) {
        (Some(start), Some(end)) => end.saturating_sub(start).as_secs_f64(),
        _ => wall.elapsed().as_secs_f64(),
    };
    black_box(x);
    STEPS as f64 * MULTIPLY_LATENCY_CYCLES / elapsed / 1e9
}

/// Returns the CPU time the calling thread has used, or `None` when the clock is unreadable.
pub fn thread_cpu_time() -> Option<Duration> {
    nix::time::clock_gettime(nix::time::ClockId::CLOCK_THREAD_CPUTIME_ID).ok().map(Duration::from)
}
