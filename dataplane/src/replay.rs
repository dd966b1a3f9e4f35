//! Anti-replay windows over per-session sequence numbers.
//!
//! A bitmap window in the style of RFC 6479: the bitmap is a ring of 64-bit words, and when
//! the highest sequence number moves forward, whole words are cleared instead of the bitmap
//! being shifted. One word more than the window is kept so that the word holding the lowest
//! acceptable number is never cleared while it is still inside the window.
//!
//! Checking and recording are separate so that the MAC check sits between them: a packet
//! is checked (no state change), its tag verified, and only then recorded. A packet that
//! fails its tag therefore never moves the window.

use core::fmt;

/// Number of packets behind the highest seen that are still accepted.
pub const WINDOW: u64 = 1024;

const WORD_BITS: u64 = 64;
const WORDS: usize = (WINDOW / WORD_BITS) as usize + 1;
const RING_BITS: u64 = WORDS as u64 * WORD_BITS;

/// Why a sequence number was rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ReplayError {
    /// Sequence numbers start at 1; 0 is never sent.
    Zero,
    /// The number was already received.
    Duplicate { number: u64 },
    /// The number is further behind the highest received than the window reaches.
    TooOld { number: u64, highest: u64 },
}

impl fmt::Display for ReplayError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            ReplayError::Zero => f.write_str("sequence number 0 is never valid"),
            ReplayError::Duplicate { number } => write!(f, "sequence number {number} replayed"),
            ReplayError::TooOld { number, highest } => write!(
                f,
                "sequence number {number} is more than {WINDOW} behind the highest, {highest}"
            ),
        }
    }
}

impl std::error::Error for ReplayError {}

/// The receive window of one direction of a session.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ReplayWindow {
    /// Highest number recorded; 0 before the first packet.
    highest: u64,
    bitmap: [u64; WORDS],
}

impl Default for ReplayWindow {
    fn default() -> Self {
        ReplayWindow::new()
    }
}

impl ReplayWindow {
    /// An empty window that accepts any number from 1 on.
    pub const fn new() -> ReplayWindow {
        ReplayWindow { highest: 0, bitmap: [0; WORDS] }
    }

    /// The highest number recorded, or 0 if none.
    pub fn highest(&self) -> u64 {
        self.highest
    }

    /// Tells whether `number` would be accepted, without changing the window.
    pub fn check(&self, number: u64) -> Result<(), ReplayError> {
        if number == 0 {
            return Err(ReplayError::Zero);
        }
        if number > self.highest {
            return Ok(());
        }
        if self.highest - number >= WINDOW {
            return Err(ReplayError::TooOld { number, highest: self.highest });
        }
        let (word, bit) = position(number);
        if self.bitmap[word] & bit != 0 {
            return Err(ReplayError::Duplicate { number });
        }
        Ok(())
    }

    /// Records `number` after its packet was authenticated, moving the window forward when
    /// it is the new highest. Returns the same error as [`check`](Self::check) would.
    pub fn record(&mut self, number: u64) -> Result<(), ReplayError> {
        self.check(number)?;
        if number > self.highest {
            self.advance(number);
        }
        let (word, bit) = position(number);
        self.bitmap[word] |= bit;
        Ok(())
    }

    /// Clears the words between the old highest and `number`, which becomes the highest.
    fn advance(&mut self, number: u64) {
        let old_word = self.highest / WORD_BITS;
        let new_word = number / WORD_BITS;
        let steps = (new_word - old_word).min(WORDS as u64);
        for step in 1..=steps {
            let index = ((old_word + step) % WORDS as u64) as usize;
            self.bitmap[index] = 0;
        }
        self.highest = number;
    }
}

fn position(number: u64) -> (usize, u64) {
    let slot = number % RING_BITS;
    ((slot / WORD_BITS) as usize, 1 << (slot % WORD_BITS))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_number_is_accepted() {
        let mut window = ReplayWindow::new();
        assert_eq!(window.record(1), Ok(()));
        assert_eq!(window.highest(), 1);
    }

    #[test]
    fn zero_is_rejected() {
        assert_eq!(ReplayWindow::new().check(0), Err(ReplayError::Zero));
    }

    #[test]
    fn duplicate_is_rejected() {
        let mut window = ReplayWindow::new();
        window.record(5).unwrap();
        assert_eq!(window.record(5), Err(ReplayError::Duplicate { number: 5 }));
    }

    #[test]
    fn out_of_order_within_window_is_accepted_once() {
        let mut window = ReplayWindow::new();
        window.record(100).unwrap();
        for number in (1..100).rev() {
            assert_eq!(window.record(number), Ok(()), "{number}");
        }
        for number in 1..=100 {
            assert_eq!(window.check(number), Err(ReplayError::Duplicate { number }));
        }
    }

    #[test]
    fn window_edge() {
        let mut window = ReplayWindow::new();
        window.record(5000).unwrap();
        // 5000 - 1023 is the oldest number still inside the window; one below is too old.
        assert_eq!(window.check(5000 - WINDOW + 1), Ok(()));
        assert_eq!(
            window.check(5000 - WINDOW),
            Err(ReplayError::TooOld { number: 5000 - WINDOW, highest: 5000 })
        );
    }

    #[test]
    fn far_future_jump_clears_the_bitmap() {
        let mut window = ReplayWindow::new();
        for number in 1..=2000 {
            window.record(number).unwrap();
        }
        window.record(1_000_000).unwrap();
        // Numbers just behind the new highest were never received and must be accepted even
        // though their ring slots held bits from the first 2000 packets.
        for number in 1_000_000 - WINDOW + 1..1_000_000 {
            assert_eq!(window.check(number), Ok(()), "{number}");
        }
        assert_eq!(window.check(1_000_000), Err(ReplayError::Duplicate { number: 1_000_000 }));
    }

    #[test]
    fn advancing_by_one_word_keeps_the_window() {
        let mut window = ReplayWindow::new();
        for number in 1..=1100 {
            window.record(number).unwrap();
        }
        window.record(1164).unwrap();
        for number in 1164 - WINDOW + 1..=1100 {
            assert_eq!(window.check(number), Err(ReplayError::Duplicate { number }), "{number}");
        }
        for number in 1101..1164 {
            assert_eq!(window.check(number), Ok(()), "{number}");
        }
    }

    #[test]
    fn check_changes_nothing() {
        let mut window = ReplayWindow::new();
        window.record(10).unwrap();
        let before = window.clone();
        window.check(11).unwrap();
        window.check(2000).unwrap();
        assert_eq!(window, before);
    }

    #[test]
    fn model_check_against_a_set() {
        // Pseudo-random walk compared with a reference that remembers every number.
        let mut window = ReplayWindow::new();
        let mut seen = std::collections::BTreeSet::new();
        let mut highest = 0u64;
        let mut state = 0x9e3779b97f4a7c15u64;
        for _ in 0..50_000 {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            let number = match state % 4 {
                0 => highest + 1 + state % 3,
                1 => highest + state % 3000,
                _ => highest.saturating_sub(state % 1100).max(1),
            };
            let expected = if number == 0 {
                Err(ReplayError::Zero)
            } else if number <= highest && highest - number >= WINDOW {
                Err(ReplayError::TooOld { number, highest })
            } else if seen.contains(&number) {
                Err(ReplayError::Duplicate { number })
            } else {
                Ok(())
            };
            assert_eq!(window.record(number), expected, "number {number} highest {highest}");
            if expected.is_ok() {
                seen.insert(number);
                highest = highest.max(number);
            }
        }
    }
}
