//! Closing up numbers dropped on purpose: when the forwarder leaves out packets (a temporal layer
//! the subscriber is not sent), the numbers it sends must still count on without holes, or the
//! receiver asks again and again for packets that will never come.
//!
//! [`Skips`] remembers which of the recent input numbers were skipped, so each forwarded number
//! is shifted down by the skips before it, also for a packet that arrives late (a retransmission
//! filling a hole). Nothing allocates; a number older than the window can no longer be placed.

/// How many of the newest input numbers are remembered.
pub const WINDOW: u64 = 1024;

const WORDS: usize = (WINDOW / 64) as usize;

/// Which recent numbers of one increasing series were skipped.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Skips {
    /// The highest number seen.
    top: u64,
    /// Numbers skipped up to and including `top`.
    total: u64,
    /// Skipped numbers among the last [`WINDOW`] up to `top`, bit `n % WINDOW`.
    bits: [u64; WORDS],
}

/// Where a number stands against what was seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Seen {
    /// Newer than every number seen so far.
    New,
    /// Seen (or missing) within the window, and not skipped: it has a place in the output.
    Placed,
    /// Within the window, and skipped.
    Skipped,
    /// Older than the window.
    TooOld,
}

impl Skips {
    /// A series whose numbers start after `before_first`.
    pub fn new(before_first: u64) -> Skips {
        Skips {
            top: before_first,
            total: 0,
            bits: [0; WORDS],
        }
    }

    /// The highest number seen.
    pub fn top(&self) -> u64 {
        self.top
    }

    /// Whether anything was ever skipped.
    pub fn any(&self) -> bool {
        self.total > 0
    }

    /// Where `n` stands.
    pub fn seen(&self, n: u64) -> Seen {
        if n > self.top {
            Seen::New
        } else if self.top - n >= WINDOW {
            Seen::TooOld
        } else if self.bit(n) {
            Seen::Skipped
        } else {
            Seen::Placed
        }
    }

    /// Records `n`, newer than every number seen, as kept or skipped. Numbers between the
    /// previous top and `n` are missing: they keep their places.
    pub fn advance(&mut self, n: u64, skip: bool) {
        debug_assert!(n > self.top, "advance takes new numbers only");
        if n - self.top >= WINDOW {
            self.bits = [0; WORDS];
        } else {
            for old in self.top + 1..=n {
                self.clear(old);
            }
        }
        self.top = n;
        if skip {
            self.total += 1;
            let (word, bit) = slot(n);
            self.bits[word] |= bit;
        }
    }

    /// How many numbers before `n` were skipped; `n` must not be older than the window (then
    /// `None`), unless nothing was ever skipped.
    pub fn before(&self, n: u64) -> Option<u64> {
        if n > self.top {
            return Some(self.total);
        }
        if !self.any() {
            return Some(0);
        }
        if self.top - n >= WINDOW {
            return None;
        }
        // Late numbers are rare: count the skips after `n` up to the top.
        let after = (n + 1..=self.top).filter(|&m| self.bit(m)).count() as u64;
        Some(self.total - after - u64::from(self.bit(n)))
    }

    fn bit(&self, n: u64) -> bool {
        let (word, bit) = slot(n);
        self.bits[word] & bit != 0
    }

    fn clear(&mut self, n: u64) {
        let (word, bit) = slot(n);
        self.bits[word] &= !bit;
    }
}

fn slot(n: u64) -> (usize, u64) {
    let index = n % WINDOW;
    ((index / 64) as usize, 1 << (index % 64))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The output number of each kept input, as a forwarder would compute it.
    fn place(skips: &Skips, n: u64) -> u64 {
        n - skips.before(n).expect("in the window")
    }

    #[test]
    fn kept_numbers_count_on_without_holes() {
        let mut skips = Skips::new(99);
        let mut out = Vec::new();
        for n in 100..200 {
            let skip = n % 4 != 0;
            skips.advance(n, skip);
            if !skip {
                out.push(place(&skips, n));
            }
        }
        assert_eq!(out, (100..125).collect::<Vec<_>>());
    }

    #[test]
    fn a_late_number_lands_in_the_place_it_left() {
        let mut skips = Skips::new(0);
        // 1 kept, 2 skipped, 3 missing, 4 skipped, 5 kept.
        skips.advance(1, false);
        skips.advance(2, true);
        skips.advance(4, true);
        skips.advance(5, false);
        assert_eq!(place(&skips, 1), 1);
        assert_eq!(skips.seen(3), Seen::Placed);
        assert_eq!(place(&skips, 3), 2, "between 1 and 5, as sent");
        assert_eq!(place(&skips, 5), 3);
        assert_eq!(skips.seen(2), Seen::Skipped);
        assert_eq!(skips.seen(6), Seen::New);
    }

    #[test]
    fn numbers_older_than_the_window_cannot_be_placed_once_anything_was_skipped() {
        let mut skips = Skips::new(0);
        for n in 1..=WINDOW + 10 {
            skips.advance(n, false);
        }
        assert_eq!(
            skips.before(3),
            Some(0),
            "nothing skipped: every place is known"
        );
        skips.advance(WINDOW + 11, true);
        assert_eq!(skips.seen(5), Seen::TooOld);
        assert_eq!(skips.before(5), None);
        // A jump wider than the window forgets the old bits but keeps the count.
        skips.advance(5 * WINDOW, false);
        assert_eq!(skips.before(5 * WINDOW), Some(1));
        assert_eq!(skips.seen(WINDOW + 11), Seen::TooOld);
        assert_eq!(skips.seen(5 * WINDOW - 1), Seen::Placed);
    }

    #[test]
    fn reused_slots_forget_what_was_skipped_there() {
        let mut skips = Skips::new(0);
        skips.advance(10, true);
        skips.advance(10 + WINDOW, false);
        assert_eq!(skips.seen(10 + WINDOW), Seen::Placed);
        assert_eq!(skips.before(10 + WINDOW), Some(1));
        assert_eq!(place(&skips, 10 + WINDOW), 10 + WINDOW - 1);
    }
}
