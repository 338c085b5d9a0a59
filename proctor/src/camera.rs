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
    /// No frames although the track is published.
    FeedLost,
    /// The phone's side view differs from what it showed at calibration.
    SideViewChanged,
    /// More faces on the phone's side view than at calibration.
    SideViewPerson,
    /// The face detector could not see the candidate's face during calibration, so the face
    /// checks are off for this camera. Neutral: not a flag against the candidate.
    ChecksUnavailable,
    /// The candidate stopped sharing their screen in an interview that requires it (from
    /// signaling, not from pictures).
    ScreenShareStopped,
}

impl Check {
    /// The event kind's name, as stored and shown.
    pub fn kind(self) -> &'static str {
        match self {
            Check::CameraDark => "camera_dark",
            Check::CameraFrozen => "camera_frozen",
            Check::FaceAbsent => "face_absent",
            Check::MultipleFaces => "multiple_faces",
            Check::FeedLost => "feed_lost",
            Check::SideViewChanged => "side_view_changed",
            Check::SideViewPerson => "side_view_person",
            Check::ChecksUnavailable => "checks_unavailable",
            Check::ScreenShareStopped => "screen_share_stopped",
        }
    }

    /// How much a person should look at it: `info` (context, never against anyone), `notice`
    /// (the setup had a problem), `review` (look at this moment).
    pub fn severity(self) -> &'static str {
        match self {
            Check::ChecksUnavailable => "info",
            Check::CameraDark
            | Check::CameraFrozen
            | Check::FeedLost
            | Check::ScreenShareStopped => "notice",
            Check::FaceAbsent
            | Check::MultipleFaces
            | Check::SideViewChanged
            | Check::SideViewPerson => "review",
        }
    }

    /// Every check, for listing and parsing.
    pub const ALL: [Check; 9] = [
        Check::CameraDark,
        Check::CameraFrozen,
        Check::FaceAbsent,
        Check::MultipleFaces,
        Check::FeedLost,
        Check::SideViewChanged,
        Check::SideViewPerson,
        Check::ChecksUnavailable,
        Check::ScreenShareStopped,
    ];

    /// The check named `kind`.
    pub fn from_kind(kind: &str) -> Option<Check> {
        Check::ALL.into_iter().find(|c| c.kind() == kind)
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
    /// How long the face checks watch before they judge anything: the detector must see a face
    /// in at least `calibration_share` of the samples it answered for (not counting dark ones),
    /// or the face checks are switched off for the camera.
    pub calibration: Duration,
    /// See `calibration`.
    pub calibration_share: f32,
    /// Answered samples calibration needs at least, however long that takes.
    pub calibration_samples: u32,
}

impl Default for CameraConfig {
    fn default() -> Self {
        let secs = Duration::from_secs;
        CameraConfig {
            dark_mean: 20.0,
            dark_variance: 60.0,
            dark_for: (secs(5), secs(2)),
            // A still picture through VP8 still changes by ~0.6 at each keyframe.
            frozen_change: 1.0,
            frozen_for: (secs(20), secs(2)),
            face_absent_for: (secs(10), secs(3)),
            multiple_faces_for: (secs(3), secs(5)),
            calibration: secs(20),
            calibration_share: 0.5,
            calibration_samples: 6,
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
    calibration: Calibration,
}

/// Whether the detector works for this person in this room.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Calibration {
    /// Still sampling: since when, and how many samples had an answer and how many a face.
    Sampling {
        since: Option<Duration>,
        answered: u32,
        with_face: u32,
    },
    /// The face checks run.
    Passed,
    /// The face checks are off.
    Failed,
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
            calibration: Calibration::Sampling {
                since: None,
                answered: 0,
                with_face: 0,
            },
            config,
        }
    }

    /// Whether `check`'s event is open.
    pub fn is_open(&self, check: Check) -> bool {
        match check {
            Check::CameraDark => self.dark.is_open(),
            Check::CameraFrozen => self.frozen.is_open(),
            Check::FaceAbsent => self.face_absent.is_open(),
            Check::MultipleFaces => self.multiple_faces.is_open(),
            _ => false,
        }
    }

    /// Whether the face checks run: calibration passed (`None` while it is still sampling).
    pub fn face_checks_on(&self) -> Option<bool> {
        match self.calibration {
            Calibration::Sampling { .. } => None,
            Calibration::Passed => Some(true),
            Calibration::Failed => Some(false),
        }
    }

    /// Feeds a sample's detector answer to calibration; returns `checks_unavailable` when it
    /// fails.
    fn calibrate(&mut self, at: Duration, faces: Option<Faces>) -> Option<Transition> {
        let Calibration::Sampling {
            since,
            answered,
            with_face,
        } = &mut self.calibration
        else {
            return None;
        };
        // The window starts with the first answer (a detector that has not answered yet, or
        // dark samples, say nothing), and needs enough answers: one sample never decides.
        // Without any answer (no detector, or it always fails) nothing is judged and nothing is
        // said; the face checks simply never see an answer.
        let faces = faces?;
        let start = *since.get_or_insert(at);
        *answered += 1;
        *with_face += u32::from(faces.count > 0);
        if at.saturating_sub(start) < self.config.calibration
            || *answered < self.config.calibration_samples
        {
            return None;
        }
        let share = *with_face as f32 / *answered as f32;
        if share >= self.config.calibration_share {
            self.calibration = Calibration::Passed;
            None
        } else {
            self.calibration = Calibration::Failed;
            Some(Transition {
                check: Check::ChecksUnavailable,
                edge: Edge::Opened { at },
            })
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
        let unavailable = self.calibrate(sample.at, faces);
        // Until calibration passed, the face checks hear nothing.
        let faces = if self.calibration == Calibration::Passed {
            faces
        } else {
            None
        };
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
        unavailable
            .into_iter()
            .chain(
                checks
                    .into_iter()
                    .filter_map(|(check, edge)| edge.map(|edge| Transition { check, edge })),
            )
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
        // Calibrated on the first sample: these tests are about the checks themselves.
        run_with(
            CameraConfig {
                calibration: Duration::ZERO,
                ..CameraConfig::default()
            },
            seconds,
            sample,
        )
    }

    fn run_with(
        config: CameraConfig,
        seconds: u64,
        sample: impl Fn(Duration) -> CameraSample,
    ) -> Vec<Transition> {
        let mut checks = CameraChecks::new(config);
        (0..seconds * 2)
            .flat_map(|i| checks.observe(&sample(Duration::from_millis(i * 500))))
            .collect()
    }

    /// A minute of bright, moving samples (two a second) through `checks`; sample `i` has the
    /// face count `faces(i)`. Returns every transition.
    fn minute(checks: &mut CameraChecks, faces: impl Fn(u64) -> Option<u32>) -> Vec<Transition> {
        (0..120u64)
            .flat_map(|i| {
                let at = Duration::from_millis(i * 500);
                checks.observe(&sample(at, BRIGHT, 6.0, faces(i)))
            })
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

    #[test]
    fn a_detector_that_cannot_see_this_face_switches_the_face_checks_off_and_says_so_neutrally() {
        // The detector finds the face in one sample of four (poor light it cannot cope with).
        let mut checks = CameraChecks::new(CameraConfig::default());
        let events = minute(&mut checks, |i| Some(u32::from(i % 4 == 0)));
        assert_eq!(
            events,
            vec![Transition {
                check: Check::ChecksUnavailable,
                edge: Edge::Opened {
                    at: Duration::from_secs(20)
                }
            }],
            "no face_absent in the minute after, however often the detector misses"
        );
        assert_eq!(checks.face_checks_on(), Some(false));
        assert_eq!(Check::ChecksUnavailable.severity(), "info");
    }

    #[test]
    fn calibration_counts_answers_so_one_faceless_sample_never_decides() {
        // The detector cannot answer for the first 30 s (all slots busy), then its first answer
        // finds no face, then faces: calibration passes, nothing is said.
        let mut checks = CameraChecks::new(CameraConfig::default());
        let events = minute(&mut checks, |i| match i {
            0..60 => None,
            60 => Some(0),
            _ => Some(1),
        });
        assert_eq!(events, vec![]);
        assert_eq!(checks.face_checks_on(), Some(true));
    }

    #[test]
    fn face_checks_start_after_calibration_passed() {
        // A face for 25 s, then nobody: calibration passes at 20 s, face_absent opens from 25 s.
        let events = run_with(CameraConfig::default(), 45, |at| {
            sample(
                at,
                BRIGHT,
                6.0,
                Some(u32::from(at < Duration::from_secs(25))),
            )
        });
        assert_eq!(
            events,
            vec![Transition {
                check: Check::FaceAbsent,
                edge: Edge::Opened {
                    at: Duration::from_secs(25)
                }
            }]
        );
    }

    #[test]
    fn every_kind_round_trips_through_its_name() {
        for check in Check::ALL {
            assert_eq!(Check::from_kind(check.kind()), Some(check));
        }
        assert_eq!(Check::from_kind("looking_away"), None);
    }
}
