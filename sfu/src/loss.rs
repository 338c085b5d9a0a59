//! Loss-driven layer caps: a subscriber whose receiver reports say it loses many of the packets
//! sent to it gets a lower simulcast layer, then only the base temporal layer of the lowest, and
//! climbs back once its path is clean again.
//!
//! On a lossy path a full-resolution frame spans dozens of packets and one lost packet spoils
//! it: retransmission (NACK/RTX) cannot repair 20% loss in time, the picture freezes until the
//! next keyframe, and the keyframe requests add more traffic. A lower layer's frames are a few
//! packets each, so most arrive whole and the rest are repaired. Where even that is not enough,
//! the last step sends every fourth frame (the base temporal layer, which refers to nothing
//! else): a lost packet then has a whole frame interval to be repaired in before the picture
//! would stall, so the video moves at a lower rate instead of freezing. This works from RTCP
//! receiver reports alone, so it runs whether or not the bandwidth estimator is on; the two caps
//! combine (the lower wins).

use crate::layer::Quality;

/// Loss (a fraction) at or above which a report counts against the current layer.
pub const STEP_DOWN_LOSS: f32 = 0.10;
/// Consecutive bad reports (about a second apart) before the cap steps down one layer.
pub const STEP_DOWN_AFTER: u8 = 2;
/// Loss at or below which a report counts as clean.
pub const CLEAN_LOSS: f32 = 0.02;
/// Consecutive clean reports before the cap steps up one layer again.
pub const STEP_UP_AFTER: u8 = 8;

/// What each step allows, from a clean path down: the best simulcast layer and the highest
/// temporal layer (`None`: every one). Loss never turns video off.
const STEPS: [(Quality, Option<u8>); 4] = [
    (Quality::High, None),
    (Quality::Medium, None),
    (Quality::Low, None),
    (Quality::Low, Some(0)),
];

/// The loss cap of one subscription, from its receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct LossCap {
    /// Index into [`STEPS`].
    step: usize,
    bad: u8,
    clean: u8,
}

impl LossCap {
    /// The best simulcast layer the path allows now.
    pub fn cap(&self) -> Quality {
        STEPS[self.step].0
    }

    /// The highest temporal layer the path allows now (`None`: every one).
    pub fn temporal(&self) -> Option<u8> {
        STEPS[self.step].1
    }

    /// Takes one report's loss fraction (0.0–1.0); returns whether the cap changed.
    /// Between the two thresholds a report keeps the cap and resets both counts: only a run
    /// of bad or of clean reports moves it.
    pub fn report(&mut self, loss: f32) -> bool {
        let before = self.step;
        if loss >= STEP_DOWN_LOSS {
            self.clean = 0;
            self.bad = self.bad.saturating_add(1);
            if self.bad >= STEP_DOWN_AFTER {
                self.bad = 0;
                self.step = (self.step + 1).min(STEPS.len() - 1);
            }
        } else if loss <= CLEAN_LOSS {
            self.bad = 0;
            self.clean = self.clean.saturating_add(1);
            if self.clean >= STEP_UP_AFTER {
                self.clean = 0;
                self.step = self.step.saturating_sub(1);
            }
        } else {
            self.bad = 0;
            self.clean = 0;
        }
        self.step != before
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state(cap: &LossCap) -> (Quality, Option<u8>) {
        (cap.cap(), cap.temporal())
    }

    #[test]
    fn sustained_loss_steps_down_to_the_base_rate_of_the_lowest_layer_and_no_further() {
        let mut cap = LossCap::default();
        assert_eq!(state(&cap), (Quality::High, None));
        assert!(!cap.report(0.2), "one bad report is not enough");
        assert!(cap.report(0.2));
        assert_eq!(state(&cap), (Quality::Medium, None));
        assert!(!cap.report(0.2));
        assert!(cap.report(0.2));
        assert_eq!(state(&cap), (Quality::Low, None));
        assert!(!cap.report(0.2));
        assert!(cap.report(0.2));
        assert_eq!(state(&cap), (Quality::Low, Some(0)), "every fourth frame");
        for _ in 0..10 {
            assert!(!cap.report(0.5), "never off");
        }
        assert_eq!(state(&cap), (Quality::Low, Some(0)));
    }

    #[test]
    fn a_clean_path_climbs_back_one_step_at_a_time() {
        let mut cap = LossCap::default();
        for _ in 0..6 {
            cap.report(0.25);
        }
        assert_eq!(state(&cap), (Quality::Low, Some(0)));
        let n = STEP_UP_AFTER as usize;
        let moved: Vec<bool> = (0..3 * n).map(|_| cap.report(0.0)).collect();
        assert_eq!(
            moved.iter().filter(|m| **m).count(),
            3,
            "full rate, then each layer"
        );
        assert!(moved[n - 1] && moved[2 * n - 1] && moved[3 * n - 1]);
        assert_eq!(state(&cap), (Quality::High, None));
    }

    #[test]
    fn moderate_or_alternating_loss_keeps_the_layer() {
        let mut cap = LossCap::default();
        for _ in 0..20 {
            assert!(!cap.report(0.05), "NACK and RTX repair 5%");
        }
        for _ in 0..10 {
            assert!(!cap.report(0.15));
            assert!(!cap.report(0.0), "one bad report at a time moves nothing");
        }
        assert_eq!(state(&cap), (Quality::High, None));
    }
}
