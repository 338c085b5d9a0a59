//! A condition seen in samples that must hold for a while before it counts (one dark frame is
//! not a covered camera) and be gone for a while before it ends (one bright frame is not the
//! camera uncovered): repeats close together merge into one event.

use std::time::Duration;

/// A change of a debounced condition, at session times.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Edge {
    /// The condition has held long enough; it began `at`.
    Opened {
        /// When the condition began (the first sample it held in).
        at: Duration,
    },
    /// The condition has been gone long enough; it ended `at`.
    Closed {
        /// When it stopped holding (the first sample without it).
        at: Duration,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Not holding.
    Idle,
    /// Holding since `since`, not yet for long enough.
    Pending { since: Duration },
    /// Open; `clear_since` is when it last stopped holding, if it has.
    Open { clear_since: Option<Duration> },
}

/// One debounced condition.
#[derive(Debug, Clone)]
pub struct Debounce {
    open_after: Duration,
    close_after: Duration,
    state: State,
}

impl Debounce {
    /// A condition that opens once it has held for `open_after` and closes once it has been gone
    /// for `close_after`.
    pub fn new(open_after: Duration, close_after: Duration) -> Debounce {
        Debounce {
            open_after,
            close_after,
            state: State::Idle,
        }
    }

    /// Whether the condition is open.
    pub fn is_open(&self) -> bool {
        matches!(self.state, State::Open { .. })
    }

    /// Feeds one sample taken at `at`: whether the condition holds in it, or `None` when the
    /// sample cannot say (a detector that did not run). An unknown sample never opens anything:
    /// it ends a pending condition, and neither extends nor ends an open one.
    pub fn observe(&mut self, at: Duration, holds: Option<bool>) -> Option<Edge> {
        match (self.state, holds) {
            (State::Idle, Some(true)) => {
                self.state = State::Pending { since: at };
                self.opened_by(at)
            }
            (State::Idle, _) => None,
            (State::Pending { .. }, None | Some(false)) => {
                self.state = State::Idle;
                None
            }
            (State::Pending { .. }, Some(true)) => self.opened_by(at),
            (State::Open { .. }, None) => None,
            (State::Open { .. }, Some(true)) => {
                self.state = State::Open { clear_since: None };
                None
            }
            (State::Open { clear_since }, Some(false)) => {
                let since = clear_since.unwrap_or(at);
                if at.saturating_sub(since) >= self.close_after {
                    self.state = State::Idle;
                    Some(Edge::Closed { at: since })
                } else {
                    self.state = State::Open {
                        clear_since: Some(since),
                    };
                    None
                }
            }
        }
    }

    /// Opens a pending condition that has held long enough by `at`.
    fn opened_by(&mut self, at: Duration) -> Option<Edge> {
        let State::Pending { since } = self.state else {
            return None;
        };
        if at.saturating_sub(since) < self.open_after {
            return None;
        }
        self.state = State::Open { clear_since: None };
        Some(Edge::Opened { at: since })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const HALF_SECOND: Duration = Duration::from_millis(500);

    /// Feeds `holds` at 2 samples a second from `start`; returns the edges with their sample index.
    fn feed(d: &mut Debounce, start: Duration, holds: &[Option<bool>]) -> Vec<(usize, Edge)> {
        holds
            .iter()
            .enumerate()
            .filter_map(|(i, h)| {
                d.observe(start + HALF_SECOND * i as u32, *h)
                    .map(|e| (i, e))
            })
            .collect()
    }

    #[test]
    fn opens_after_holding_long_enough_from_when_it_began() {
        let mut d = Debounce::new(Duration::from_secs(2), Duration::from_secs(1));
        // Held from sample 0 (0 s); 2 s later is sample 4.
        let edges = feed(&mut d, Duration::ZERO, &[Some(true); 6]);
        assert_eq!(edges, vec![(4, Edge::Opened { at: Duration::ZERO })]);
        assert!(d.is_open());
    }

    #[test]
    fn a_short_blip_opens_nothing() {
        let mut d = Debounce::new(Duration::from_secs(2), Duration::from_secs(1));
        let mut holds = vec![Some(true); 3];
        holds.push(Some(false));
        holds.extend([Some(true); 3]);
        assert_eq!(feed(&mut d, Duration::ZERO, &holds), vec![]);
    }

    #[test]
    fn closes_after_being_gone_long_enough_and_merges_repeats() {
        let mut d = Debounce::new(Duration::ZERO, Duration::from_secs(1));
        let t = |s: u32| Some(s == 1);
        // Open at once, a 0.5 s gap (merged), then gone for good from sample 4 (2 s).
        let holds = [t(1), t(1), t(0), t(1), t(0), t(0), t(0), t(0)];
        let edges = feed(&mut d, Duration::ZERO, &holds);
        assert_eq!(
            edges,
            vec![
                (0, Edge::Opened { at: Duration::ZERO }),
                (
                    6,
                    Edge::Closed {
                        at: Duration::from_secs(2)
                    }
                )
            ]
        );
    }

    #[test]
    fn unknown_samples_never_open_and_never_close() {
        let mut d = Debounce::new(Duration::from_secs(1), Duration::from_secs(1));
        // Held, then the detector stopped answering: nothing opens.
        let holds = [Some(true), Some(true), None, None, None, None];
        assert_eq!(feed(&mut d, Duration::ZERO, &holds), vec![]);
        // Open, then unknown for a long time: it stays open, and closes only on real samples.
        let mut d = Debounce::new(Duration::ZERO, Duration::from_secs(1));
        let holds = [
            Some(true),
            None,
            None,
            None,
            None,
            Some(false),
            Some(false),
            Some(false),
        ];
        let edges = feed(&mut d, Duration::ZERO, &holds);
        assert_eq!(
            edges,
            vec![
                (0, Edge::Opened { at: Duration::ZERO }),
                (
                    7,
                    Edge::Closed {
                        at: Duration::from_millis(2_500)
                    }
                )
            ]
        );
    }
}
