//! Time for the BFD engine: a monotonic instant passed in by the caller, and the transmit
//! jitter of RFC 5880 section 6.8.7.

use std::fmt;
use std::time::Duration;

use rand::RngExt;

/// A point on a monotonic clock, in nanoseconds since an origin the caller chooses.
///
/// The engine never reads a clock itself: the driver maps `std::time::Instant` onto this
/// type, and tests advance a virtual one.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Instant(u64);

impl Instant {
    /// The origin of the clock.
    pub const ZERO: Instant = Instant(0);

    pub fn from_nanos(nanos: u64) -> Instant {
        Instant(nanos)
    }

    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Returns the time elapsed since `earlier`, or zero if `earlier` is later.
    pub fn since(self, earlier: Instant) -> Duration {
        Duration::from_nanos(self.0.saturating_sub(earlier.0))
    }
}

/// Adding saturates at the end of the clock instead of overflowing.
impl std::ops::Add<Duration> for Instant {
    type Output = Instant;

    fn add(self, offset: Duration) -> Instant {
        let nanos = u64::try_from(offset.as_nanos()).unwrap_or(u64::MAX);
        Instant(self.0.saturating_add(nanos))
    }
}

impl fmt::Display for Instant {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:.6}s", Duration::from_nanos(self.0).as_secs_f64())
    }
}

/// A limit of one log line per interval for a repeated event.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LogLimit {
    interval: Duration,
    last: Option<Instant>,
    suppressed: u64,
}

impl LogLimit {
    pub const fn new(interval: Duration) -> LogLimit {
        LogLimit { interval, last: None, suppressed: 0 }
    }

    /// Returns `Some(suppressed)` when a line may be logged at `now`, with the number of
    /// events skipped since the last line, or `None` when this event must stay silent.
    pub fn allow(&mut self, now: Instant) -> Option<u64> {
        if self.last.is_some_and(|last| now.since(last) < self.interval) {
            self.suppressed += 1;
            return None;
        }
        self.last = Some(now);
        Some(std::mem::take(&mut self.suppressed))
    }
}

/// Applies the transmit jitter of RFC 5880 section 6.8.7 to `interval`.
///
/// "The periodic transmission of BFD Control packets MUST be jittered on a per-packet basis
/// by up to 25%, that is, the interval MUST be reduced by a random value of 0 to 25%", and
/// when bfd.DetectMult is 1 "the interval between transmitted BFD Control packets MUST be
/// no more than 90% of the negotiated transmission interval, and MUST be no less than 75%".
pub fn jittered<R: RngExt + ?Sized>(
    interval: Duration,
    local_detect_mult: u8,
    rng: &mut R,
) -> Duration {
    let nanos = u64::try_from(interval.as_nanos()).unwrap_or(u64::MAX);

    // The result lies in [min_permille, max_permille] thousandths of the interval.
    let max_permille = if local_detect_mult == 1 { 900 } else { 1000 };
    let permille = rng.random_range(750..=max_permille);
    let scaled = u128::from(nanos) * permille / 1000;
    Duration::from_nanos(u64::try_from(scaled).unwrap_or(u64::MAX))
}
