//! `feed_lost`: a published track whose frames stopped arriving (a stalled or muted camera, a
//! phone whose page was closed). Time comes from the caller, as everywhere in the rules.

use std::time::Duration;

use crate::camera::{Check, Transition};
use crate::debounce::Edge;

/// Watches frame arrivals of one track.
#[derive(Debug, Clone)]
pub struct FeedWatch {
    after: Duration,
    last_frame: Option<Duration>,
    open: bool,
}

impl FeedWatch {
    /// Opens `feed_lost` once no frame came for `after`.
    pub fn new(after: Duration) -> FeedWatch {
        FeedWatch {
            after,
            last_frame: None,
            open: false,
        }
    }

    /// A frame arrived at `at`; closes an open `feed_lost`.
    pub fn frame(&mut self, at: Duration) -> Option<Transition> {
        self.last_frame = Some(at);
        std::mem::take(&mut self.open).then_some(Transition {
            check: Check::FeedLost,
            edge: Edge::Closed { at },
        })
    }

    /// Time passed to `now` without a frame; opens `feed_lost` (from the last frame) once it
    /// has been `after`. Nothing opens before the first frame: a track that never sent is not
    /// a feed that was lost.
    pub fn tick(&mut self, now: Duration) -> Option<Transition> {
        let last = self.last_frame?;
        if self.open || now.saturating_sub(last) < self.after {
            return None;
        }
        self.open = true;
        Some(Transition {
            check: Check::FeedLost,
            edge: Edge::Opened { at: last },
        })
    }

    /// Whether `feed_lost` is open.
    pub fn is_open(&self) -> bool {
        self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_gap_opens_from_the_last_frame_and_the_next_frame_closes_it() {
        let secs = Duration::from_secs;
        let mut feed = FeedWatch::new(secs(5));
        assert_eq!(feed.tick(secs(30)), None, "nothing before the first frame");
        assert_eq!(feed.frame(secs(1)), None);
        assert_eq!(feed.tick(secs(5)), None);
        assert_eq!(
            feed.tick(secs(6)),
            Some(Transition {
                check: Check::FeedLost,
                edge: Edge::Opened { at: secs(1) }
            })
        );
        assert_eq!(feed.tick(secs(9)), None, "opened once");
        assert_eq!(
            feed.frame(secs(12)),
            Some(Transition {
                check: Check::FeedLost,
                edge: Edge::Closed { at: secs(12) }
            })
        );
        assert!(!feed.is_open());
    }
}
