//! The checks on a candidate's camera, over sampled frames: dark (a covered lens, the lights
//! off), frozen (frames still arriving but the picture not changing: a still image held up),
//! no face, and more than one face.
//!
//! The face checks consume what a detector found ([`Faces`]); a sample without a detector
//! result (none ran, or it failed) is unknown to them and can never open a face event, so a
//! detector's failure is never a flag against the candidate.

use std::time::Duration;

use crate::debounce::{Debounce, Edge};
use crate::frame::LumaStats;

/// One sampled camera frame, as numbers.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CameraSample {
    /// Session time of the frame.
    pub at: Duration,
    /// Its brightness.
    pub luma: LumaStats,
    /// Mean absolute luma change since the previously sampled frame; `None` for the first
    /// frame or after a change of size.
    pub change: Option<f32>,
    /// What the face detector found, if it ran on this frame.
    pub faces: Option<Faces>,
}

/// What a face detector found in one frame, after its score and size thresholds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Faces {
    /// Faces found.
    pub count: u32,
}

/// One camera check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Check {
    /// The picture is dark and uniform.
    CameraDark,
    /// The picture has not changed although frames arrive.
    CameraFrozen,
    /// No face.
    FaceAbsent,
    /// More than one face.
    MultipleFaces,
}

impl Check {
    /// The event kind's name, as stored and shown.
    pub fn kind(self) -> &'static str {
        match self {
            Check::CameraDark => "camera_dark",
            Check::CameraFrozen => "camera_frozen",
            Check::FaceAbsent => "face_absent",
            Check::MultipleFaces => "multiple_faces",
        }
    }
}

/// A check's event opened or closed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Transition {
    /// Which check.
    pub check: Check,
    /// Opened (from when) or closed (at when).
    pub edge: Edge,
}

/// Thresholds and durations of the camera checks.
#[derive(Debug, Clone, PartialEq)]
pub struct CameraConfig {
    /// Mean luma below which a frame may be dark.
    pub dark_mean: f32,
    /// Luma variance below which a dark frame counts (a dark room with a lit face does not).
    pub dark_variance: f32,
    /// How long dark before it opens, and bright again before it closes.
    pub dark_for: (Duration, Duration),
    /// Mean absolute change below which two frames are the same picture.
    pub frozen_change: f32,
    /// How long unchanged before it opens, and changing again before it closes.
    pub frozen_for: (Duration, Duration),
    /// How long without a face before it opens, and with one before it closes.
    pub face_absent_for: (Duration, Duration),
    /// How long with two or more faces before it opens, and with one before it closes.
    pub multiple_faces_for: (Duration, Duration),
}

impl Default for CameraConfig {
    fn default() -> Self {
        let secs = Duration::from_secs;
        CameraConfig {
            dark_mean: 20.0,
            dark_variance: 60.0,
            dark_for: (secs(5), secs(2)),
            frozen_change: 0.5,
            frozen_for: (secs(20), secs(2)),
            face_absent_for: (secs(10), secs(3)),
            multiple_faces_for: (secs(3), secs(5)),
        }
    }
}

/// The camera checks of one camera track.
#[derive(Debug, Clone)]
pub struct CameraChecks {
    config: CameraConfig,
    dark: Debounce,
    frozen: Debounce,
    face_absent: Debounce,
    multiple_faces: Debounce,
}

impl CameraChecks {
    /// Checks with `config`.
    pub fn new(config: CameraConfig) -> CameraChecks {
        let debounce = |(open, close): (Duration, Duration)| Debounce::new(open, close);
        CameraChecks {
            dark: debounce(config.dark_for),
            frozen: debounce(config.frozen_for),
            face_absent: debounce(config.face_absent_for),
            multiple_faces: debounce(config.multiple_faces_for),
            config,
        }
    }

    /// Feeds one sample; returns the events it opened or closed.
    pub fn observe(&mut self, sample: &CameraSample) -> Vec<Transition> {
        let config = &self.config;
        let dark =
            sample.luma.mean < config.dark_mean && sample.luma.variance < config.dark_variance;
        // A dark picture is also an unchanging one: it is reported as dark, not frozen. Face
        // checks say nothing about a dark picture (the dark event already does).
        let frozen = sample
            .change
            .map(|change| !dark && change < config.frozen_change);
        let faces = if dark { None } else { sample.faces };
        let checks = [
            (Check::CameraDark, self.dark.observe(sample.at, Some(dark))),
            (Check::CameraFrozen, self.frozen.observe(sample.at, frozen)),
            (
                Check::FaceAbsent,
                self.face_absent
                    .observe(sample.at, faces.map(|f| f.count == 0)),
            ),
            (
                Check::MultipleFaces,
                self.multiple_faces
                    .observe(sample.at, faces.map(|f| f.count > 1)),
            ),
        ];
        checks
            .into_iter()
            .filter_map(|(check, edge)| edge.map(|edge| Transition { check, edge }))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const BRIGHT: LumaStats = LumaStats {
        mean: 110.0,
        variance: 2_000.0,
    };
    const BLACK: LumaStats = LumaStats {
        mean: 4.0,
        variance: 1.0,
    };

    /// Runs `seconds` of samples at 2 per second built by `sample(at)` through fresh checks;
    /// returns every transition.
    fn run(seconds: u64, sample: impl Fn(Duration) -> CameraSample) -> Vec<Transition> {
        let mut checks = CameraChecks::new(CameraConfig::default());
        (0..seconds * 2)
            .flat_map(|i| checks.observe(&sample(Duration::from_millis(i * 500))))
            .collect()
    }

    fn sample(at: Duration, luma: LumaStats, change: f32, faces: Option<u32>) -> CameraSample {
        CameraSample {
            at,
            luma,
            change: Some(change),
            faces: faces.map(|count| Faces { count }),
        }
    }

    #[test]
    fn one_face_in_good_light_for_a_minute_opens_nothing() {
        assert_eq!(run(60, |at| sample(at, BRIGHT, 6.0, Some(1))), vec![]);
    }

    #[test]
    fn no_face_opens_after_ten_seconds_from_when_it_left_and_closes_when_it_is_back() {
        // The face leaves at 5 s and is back at 30 s.
        let events = run(40, |at| {
            let away = at >= Duration::from_secs(5) && at < Duration::from_secs(30);
            sample(at, BRIGHT, 6.0, Some(u32::from(!away)))
        });
        assert_eq!(
            events,
            vec![
                Transition {
                    check: Check::FaceAbsent,
                    edge: Edge::Opened {
                        at: Duration::from_secs(5)
                    }
                },
                Transition {
                    check: Check::FaceAbsent,
                    edge: Edge::Closed {
                        at: Duration::from_secs(30)
                    }
                },
            ]
        );
    }

    #[test]
    fn a_detector_that_never_answers_flags_nothing() {
        assert_eq!(run(60, |at| sample(at, BRIGHT, 6.0, None)), vec![]);
    }

    #[test]
    fn a_second_face_for_three_seconds_opens_multiple_faces() {
        let events = run(20, |at| {
            let two = at >= Duration::from_secs(4) && at < Duration::from_secs(10);
            sample(at, BRIGHT, 6.0, Some(if two { 2 } else { 1 }))
        });
        let kinds: Vec<(&str, bool)> = events
            .iter()
            .map(|t| (t.check.kind(), matches!(t.edge, Edge::Opened { .. })))
            .collect();
        assert_eq!(
            kinds,
            vec![("multiple_faces", true), ("multiple_faces", false)]
        );
    }

    #[test]
    fn a_covered_camera_is_dark_not_faceless_or_frozen() {
        let events = run(30, |at| {
            let covered = at >= Duration::from_secs(2);
            if covered {
                sample(at, BLACK, 0.0, Some(0))
            } else {
                sample(at, BRIGHT, 6.0, Some(1))
            }
        });
        assert_eq!(
            events,
            vec![Transition {
                check: Check::CameraDark,
                edge: Edge::Opened {
                    at: Duration::from_secs(2)
                }
            }]
        );
    }

    #[test]
    fn a_still_picture_opens_frozen_after_twenty_seconds() {
        // A photo held to the camera from 10 s: a face, good light, no change at all.
        let events = run(40, |at| {
            let still = at >= Duration::from_secs(10);
            sample(at, BRIGHT, if still { 0.0 } else { 6.0 }, Some(1))
        });
        assert_eq!(
            events,
            vec![Transition {
                check: Check::CameraFrozen,
                edge: Edge::Opened {
                    at: Duration::from_secs(10)
                }
            }]
        );
    }
}
