//! Loss-driven layer caps: a subscriber whose receiver reports say it loses many of the packets
//! sent to it gets a lower simulcast layer, and climbs back once its path is clean again.
//!
//! On a lossy path a full-resolution frame spans dozens of packets and one lost packet spoils
//! it: retransmission (NACK/RTX) cannot repair 20% loss in time, the picture freezes until the
//! next keyframe, and the keyframe requests add more traffic. A lower layer's frames are a few
//! packets each, so most arrive whole and the rest are repaired: the video stays smooth, just
//! smaller. This works from RTCP receiver reports alone, so it runs whether or not the
//! bandwidth estimator is on; the two caps combine (the lower wins).

use crate::layer::Quality;

/// Loss (a fraction) at or above which a report counts against the current layer.
pub const STEP_DOWN_LOSS: f32 = 0.10;
/// Consecutive bad reports (about a second apart) before the cap steps down one layer.
pub const STEP_DOWN_AFTER: u8 = 2;
/// Loss at or below which a report counts as clean.
pub const CLEAN_LOSS: f32 = 0.02;
/// Consecutive clean reports before the cap steps up one layer again.
pub const STEP_UP_AFTER: u8 = 8;

/// The loss cap of one subscription, from its receiver reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LossCap {
    cap: Quality,
    bad: u8,
    clean: u8,
}

impl Default for LossCap {
    fn default() -> LossCap {
        LossCap {
            cap: Quality::High,
            bad: 0,
            clean: 0,
        }
    }
}

impl LossCap {
    /// The best quality the path allows now.
    pub fn cap(&self) -> Quality {
        self.cap
    }

    /// Takes one report's loss fraction (0.0–1.0); returns the new cap when it changed.
    /// Between the two thresholds a report keeps the cap and resets both counts: only a run
    /// of bad or of clean reports moves it.
    pub fn report(&mut self, loss: f32) -> Option<Quality> {
        let before = self.cap;
        if loss >= STEP_DOWN_LOSS {
            self.clean = 0;
            self.bad = self.bad.saturating_add(1);
            if self.bad >= STEP_DOWN_AFTER {
                self.bad = 0;
                self.cap = lower(self.cap);
            }
        } else if loss <= CLEAN_LOSS {
            self.bad = 0;
            self.clean = self.clean.saturating_add(1);
            if self.clean >= STEP_UP_AFTER {
                self.clean = 0;
                self.cap = higher(self.cap);
            }
        } else {
            self.bad = 0;
            self.clean = 0;
        }
        (self.cap != before).then_some(self.cap)
    }
}

/// One layer down; loss never turns video off.
fn lower(quality: Quality) -> Quality {
    match quality {
        Quality::High => Quality::Medium,
        Quality::Medium | Quality::Low | Quality::Off => Quality::Low,
    }
}

fn higher(quality: Quality) -> Quality {
    match quality {
        Quality::Off | Quality::Low => Quality::Medium,
        Quality::Medium | Quality::High => Quality::High,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sustained_loss_steps_down_to_the_lowest_layer_and_no_further() {
        let mut cap = LossCap::default();
        assert_eq!(cap.report(0.2), None, "one bad report is not enough");
        assert_eq!(cap.report(0.2), Some(Quality::Medium));
        assert_eq!(cap.report(0.2), None);
        assert_eq!(cap.report(0.2), Some(Quality::Low));
        for _ in 0..10 {
            assert_eq!(cap.report(0.5), None, "never off");
        }
        assert_eq!(cap.cap(), Quality::Low);
    }

    #[test]
    fn a_clean_path_climbs_back_one_layer_at_a_time() {
        let mut cap = LossCap::default();
        for _ in 0..4 {
            cap.report(0.25);
        }
        assert_eq!(cap.cap(), Quality::Low);
        let steps: Vec<Option<Quality>> = (0..16).map(|_| cap.report(0.0)).collect();
        assert_eq!(steps[STEP_UP_AFTER as usize - 1], Some(Quality::Medium));
        assert_eq!(steps[2 * STEP_UP_AFTER as usize - 1], Some(Quality::High));
        assert_eq!(steps.iter().flatten().count(), 2);
    }

    #[test]
    fn moderate_or_alternating_loss_keeps_the_layer() {
        let mut cap = LossCap::default();
        for _ in 0..20 {
            assert_eq!(cap.report(0.05), None, "NACK and RTX repair 5%");
        }
        for _ in 0..10 {
            assert_eq!(cap.report(0.15), None);
            assert_eq!(
                cap.report(0.0),
                None,
                "one bad report at a time moves nothing"
            );
        }
        assert_eq!(cap.cap(), Quality::High);
    }
}
