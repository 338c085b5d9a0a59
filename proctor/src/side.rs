//! The checks on the phone's side view (desk and hands, from the side): the view is compared
//! with what it showed once it settled (its reference), so a phone that was moved, covered or
//! pointed away is marked; more faces than at calibration mark another person; dark and frozen
//! as on the camera.

use std::time::Duration;

use crate::camera::{Check, Faces, Transition};
use crate::debounce::Debounce;
use crate::frame::LumaStats;

/// Width and height of the thumbnails the view is compared by: coarse enough that a person
/// moving their hands does not count, fine enough that a turned phone does.
pub const THUMB: (usize, usize) = (32, 24);

/// One sampled side-view frame.
#[derive(Debug, Clone, PartialEq)]
pub struct SideSample {
    /// Session time of the frame.
    pub at: Duration,
    /// Its brightness.
    pub luma: LumaStats,
    /// Mean absolute change since the previous sample (`None` for the first).
    pub change: Option<f32>,
    /// Its luma scaled down to [`THUMB`].
    pub thumb: Vec<u8>,
    /// What the face detector found, if it ran.
    pub faces: Option<Faces>,
}

/// Thresholds and durations of the side-view checks.
#[derive(Debug, Clone, PartialEq)]
pub struct SideConfig {
    /// How long the view must be sampled before its reference is taken.
    pub settle: Duration,
    /// Mean absolute thumbnail difference above which the view has changed.
    pub changed_difference: f32,
    /// How long changed before it opens, and back before it closes.
    pub changed_for: (Duration, Duration),
    /// How long with more faces than at calibration before it opens, and without before it
    /// closes.
    pub person_for: (Duration, Duration),
    /// Dark: mean and variance below, and for how long (as on the camera).
    pub dark_mean: f32,
    /// See `dark_mean`.
    pub dark_variance: f32,
    /// See `dark_mean`.
    pub dark_for: (Duration, Duration),
    /// Frozen: change below, for how long.
    pub frozen_change: f32,
    /// See `frozen_change`.
    pub frozen_for: (Duration, Duration),
}

impl Default for SideConfig {
    fn default() -> Self {
        let secs = Duration::from_secs;
        SideConfig {
            settle: secs(5),
            changed_difference: 30.0,
            changed_for: (secs(10), secs(3)),
            person_for: (secs(5), secs(5)),
            dark_mean: 20.0,
            dark_variance: 60.0,
            dark_for: (secs(5), secs(2)),
            frozen_change: 1.0,
            frozen_for: (secs(20), secs(2)),
        }
    }
}

/// The side-view checks of one phone camera.
#[derive(Debug, Clone)]
pub struct SideViewChecks {
    config: SideConfig,
    first: Option<Duration>,
    /// The settled view, and how many faces it showed (the most seen while settling).
    reference: Option<Vec<u8>>,
    expected_faces: u32,
    changed: Debounce,
    person: Debounce,
    dark: Debounce,
    frozen: Debounce,
}

impl SideViewChecks {
    /// Checks with `config`.
    pub fn new(config: SideConfig) -> SideViewChecks {
        let debounce = |(open, close): (Duration, Duration)| Debounce::new(open, close);
        SideViewChecks {
            changed: debounce(config.changed_for),
            person: debounce(config.person_for),
            dark: debounce(config.dark_for),
            frozen: debounce(config.frozen_for),
            first: None,
            reference: None,
            expected_faces: 0,
            config,
        }
    }

    /// Feeds one sample; returns the events it opened or closed.
    pub fn observe(&mut self, sample: &SideSample) -> Vec<Transition> {
        let config = &self.config;
        let dark =
            sample.luma.mean < config.dark_mean && sample.luma.variance < config.dark_variance;
        let first = *self.first.get_or_insert(sample.at);
        let mut out = Vec::new();
        if self.reference.is_none() {
            if let Some(faces) = sample.faces {
                self.expected_faces = self.expected_faces.max(faces.count);
            }
            if sample.at.saturating_sub(first) >= config.settle && !dark {
                self.reference = Some(sample.thumb.clone());
            }
        }
        let changed = self
            .reference
            .as_ref()
            .and_then(|reference| thumb_difference(reference, &sample.thumb))
            .map(|difference| difference > config.changed_difference);
        let frozen = sample
            .change
            .map(|change| !dark && change < config.frozen_change);
        let more_faces = if dark || self.reference.is_none() {
            None
        } else {
            sample.faces.map(|f| f.count > self.expected_faces)
        };
        let edges = [
            (Check::CameraDark, self.dark.observe(sample.at, Some(dark))),
            (Check::CameraFrozen, self.frozen.observe(sample.at, frozen)),
            (
                Check::SideViewChanged,
                // A dark view is reported as dark.
                self.changed
                    .observe(sample.at, if dark { Some(false) } else { changed }),
            ),
            (
                Check::SideViewPerson,
                self.person.observe(sample.at, more_faces),
            ),
        ];
        out.extend(
            edges
                .into_iter()
                .filter_map(|(check, edge)| edge.map(|edge| Transition { check, edge })),
        );
        out
    }
}

/// A `width` × `height` luma plane scaled down to [`THUMB`] by averaging.
pub fn thumbnail(luma: &[u8], width: usize, height: usize) -> Vec<u8> {
    let (tw, th) = THUMB;
    let mut out = Vec::with_capacity(tw * th);
    if width == 0 || height == 0 || luma.len() < width * height {
        return out;
    }
    for ty in 0..th {
        let (y0, y1) = (
            ty * height / th,
            ((ty + 1) * height / th).max(ty * height / th + 1),
        );
        for tx in 0..tw {
            let (x0, x1) = (
                tx * width / tw,
                ((tx + 1) * width / tw).max(tx * width / tw + 1),
            );
            let (mut sum, mut n) = (0u32, 0u32);
            for y in y0..y1.min(height) {
                for x in x0..x1.min(width) {
                    sum += u32::from(luma[y * width + x]);
                    n += 1;
                }
            }
            out.push((sum / n.max(1)) as u8);
        }
    }
    out
}

fn thumb_difference(a: &[u8], b: &[u8]) -> Option<f32> {
    crate::frame::mean_abs_difference(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::debounce::Edge;

    const BRIGHT: LumaStats = LumaStats {
        mean: 110.0,
        variance: 2_000.0,
    };

    fn desk(shift: u8) -> Vec<u8> {
        (0..THUMB.0 * THUMB.1)
            .map(|i| ((i % THUMB.0) as u8 * 6).wrapping_add(shift))
            .collect()
    }

    fn run(seconds: u64, view: impl Fn(Duration) -> (Vec<u8>, u32)) -> Vec<Transition> {
        let mut checks = SideViewChecks::new(SideConfig::default());
        (0..seconds)
            .flat_map(|s| {
                let at = Duration::from_secs(s);
                let (thumb, faces) = view(at);
                checks.observe(&SideSample {
                    at,
                    luma: BRIGHT,
                    change: Some(2.0),
                    thumb,
                    faces: Some(Faces { count: faces }),
                })
            })
            .collect()
    }

    #[test]
    fn a_steady_desk_with_hands_moving_opens_nothing() {
        // Small changes of the view (hands, light) stay under the threshold.
        let events = run(120, |at| (desk((at.as_secs() % 5) as u8 * 3), 0));
        assert_eq!(events, vec![]);
    }

    #[test]
    fn a_phone_turned_away_opens_side_view_changed_and_closes_when_it_is_back() {
        let events = run(60, |at| {
            let away = at >= Duration::from_secs(20) && at < Duration::from_secs(40);
            (if away { desk(120) } else { desk(0) }, 0)
        });
        assert_eq!(
            events,
            vec![
                Transition {
                    check: Check::SideViewChanged,
                    edge: Edge::Opened {
                        at: Duration::from_secs(20)
                    }
                },
                Transition {
                    check: Check::SideViewChanged,
                    edge: Edge::Closed {
                        at: Duration::from_secs(40)
                    }
                },
            ]
        );
    }

    #[test]
    fn a_face_that_was_not_there_at_calibration_opens_side_view_person() {
        let events = run(40, |at| (desk(0), u32::from(at >= Duration::from_secs(15))));
        assert_eq!(
            events,
            vec![Transition {
                check: Check::SideViewPerson,
                edge: Edge::Opened {
                    at: Duration::from_secs(15)
                }
            }]
        );
        // The candidate's own face in the side view from the start is what is expected.
        assert_eq!(run(40, |_| (desk(0), 1)), vec![]);
    }

    #[test]
    fn thumbnails_average_blocks() {
        let luma: Vec<u8> = (0..64 * 48)
            .map(|i| if i % 64 < 32 { 0 } else { 200 })
            .collect();
        let thumb = thumbnail(&luma, 64, 48);
        assert_eq!(thumb.len(), THUMB.0 * THUMB.1);
        assert_eq!(thumb[0], 0);
        assert_eq!(thumb[THUMB.0 - 1], 200);
        assert!(thumbnail(&luma[..10], 64, 48).is_empty());
    }
}
