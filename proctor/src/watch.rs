//! The shell around the rules: two threads per watched track. One reads the tap and feeds the
//! decoder; the other takes the decoder's sampled frames, measures them, asks the face detector
//! (when a detection slot is free: the detectors are shared, and a sample they have no time for
//! is unknown, never "no face"), runs the rules and reports what opened and closed.

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use sightline_sfu::{TapPoll, TapReceiver};
use tokio::sync::mpsc;

use crate::blazeface::{Face, FaceDetector};
use crate::camera::{CameraChecks, CameraConfig, CameraSample, Check, Faces, Transition};
use crate::debounce::Edge;
use crate::decode::Decoder;
use crate::error::ProctorError;
use crate::feed::FeedWatch;
use crate::frame::mean_abs_difference;
use crate::image::RgbImage;
use crate::side::{SideConfig, SideSample, SideViewChecks, thumbnail};

/// File names of the two BlazeFace models in the models folder.
pub const FRONT_MODEL: &str = "blazeface/face_detection_front_128x128_barracuda.onnx";
/// See [`FRONT_MODEL`].
pub const BACK_MODEL: &str = "blazeface/face_detection_back_256x256_barracuda.onnx";

/// Which stream a watch looks at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// The candidate's camera: dark, frozen, face checks.
    Camera,
    /// The paired phone's side view.
    Phone,
}

/// How long a sample waits for a detection slot before it goes without (half the time between
/// two camera samples): a busy detector delays samples rather than making them unknown, and an
/// overloaded one never builds a queue.
const SLOT_WAIT: Duration = Duration::from_millis(250);
/// How often the feeder looks for packets when none are waiting (it must also notice a stop).
const FEED_POLL: Duration = Duration::from_millis(5);

/// The face detectors, shared by every watch on the server, with a bound on how many
/// detections run at once.
#[derive(Debug, Clone, Default)]
pub struct Detectors {
    front: Option<FaceDetector>,
    back: Option<FaceDetector>,
    slots: Arc<Slots>,
}

/// Detections running at once, and how many may.
#[derive(Debug, Default)]
struct Slots {
    busy: Mutex<usize>,
    freed: Condvar,
    max: usize,
}

impl Detectors {
    /// Loads the models from `dir` (see [`FRONT_MODEL`]); at most `slots` detections run at
    /// once. A model that is missing or fails to load is logged and left out: its checks then
    /// never open (they never see an answer).
    pub fn load(dir: &Path, slots: usize) -> Detectors {
        let load = |file: &str| match FaceDetector::load(&dir.join(file)) {
            Ok(detector) => Some(detector),
            Err(err) => {
                tracing::warn!(%err, "face model not loaded; face checks will not run");
                None
            }
        };
        Detectors {
            front: load(FRONT_MODEL),
            back: load(BACK_MODEL),
            slots: Arc::new(Slots {
                busy: Mutex::new(0),
                freed: Condvar::new(),
                max: slots.max(1),
            }),
        }
    }

    /// The main detector's name, as stored with events.
    pub fn name(&self) -> &str {
        self.front.as_ref().map_or("none", |d| d.name())
    }

    /// Runs `f` with a detection slot, waiting up to [`SLOT_WAIT`] for one; `None` when none
    /// came free in time.
    fn with_slot<T>(&self, f: impl FnOnce() -> T) -> Option<T> {
        let slots = &self.slots;
        {
            let busy = slots.busy.lock().ok()?;
            let (mut busy, _) = slots
                .freed
                .wait_timeout_while(busy, SLOT_WAIT, |busy| *busy >= slots.max)
                .ok()?;
            if *busy >= slots.max {
                return None;
            }
            *busy += 1;
        }
        let result = f();
        if let Ok(mut busy) = slots.busy.lock() {
            *busy = busy.saturating_sub(1);
        }
        slots.freed.notify_one();
        Some(result)
    }
}

/// Which detections count as faces.
#[derive(Debug, Clone, PartialEq)]
pub struct FaceRules {
    /// Score a detection needs.
    pub score: f32,
    /// A further face counts if its box is at least this share of the main face's.
    pub second_face_area: f32,
}

impl Default for FaceRules {
    fn default() -> Self {
        FaceRules {
            score: 0.75,
            second_face_area: 0.2,
        }
    }
}

impl FaceRules {
    /// How many of `faces` (best first) count.
    pub fn count(&self, faces: &[Face]) -> u32 {
        let faces: Vec<&Face> = faces.iter().filter(|f| f.score >= self.score).collect();
        let Some(main) = faces.first() else {
            return 0;
        };
        let main_area = main.area();
        1 + faces[1..]
            .iter()
            .filter(|f| f.area() >= main_area * self.second_face_area)
            .count() as u32
    }
}

/// Everything a watch is configured by.
#[derive(Debug, Clone, PartialEq)]
pub struct WatchConfig {
    /// Frames sampled per second.
    pub fps: u32,
    /// Width frames are scaled to before they are measured.
    pub width: u32,
    /// The camera rules.
    pub camera: CameraConfig,
    /// The side-view rules.
    pub side: SideConfig,
    /// Which detections count.
    pub faces: FaceRules,
    /// No frame for this long opens `feed_lost`.
    pub feed_lost_after: Duration,
    /// How often at most the larger model confirms "no face".
    pub confirm_every: Duration,
}

impl WatchConfig {
    /// The defaults for `source`: 2 frames a second on the camera, 1 on the phone.
    pub fn for_source(source: Source) -> WatchConfig {
        WatchConfig {
            fps: match source {
                Source::Camera => 2,
                Source::Phone => 1,
            },
            width: 320,
            camera: CameraConfig::default(),
            side: SideConfig::default(),
            faces: FaceRules::default(),
            feed_lost_after: Duration::from_secs(5),
            confirm_every: Duration::from_secs(1),
        }
    }
}

/// An event of a watched track opened or closed.
#[derive(Debug, Clone, PartialEq)]
pub struct Finding {
    /// Which check.
    pub check: Check,
    /// Whether it opened or closed, and when (session time of the watch).
    pub edge: Edge,
    /// The wall-clock time of the edge.
    pub at: SystemTime,
    /// A JPEG of the picture (at most 320×240) when it opened.
    pub snapshot: Option<Vec<u8>>,
    /// The strongest evidence while it was open (the score of a second face), on closing.
    pub peak: Option<f32>,
}

/// A running watch. Dropping it stops it without waiting: its threads end within about half a
/// second (the feeder polls, the analysis waits at most that long for a frame), and also when
/// the track ends.
#[derive(Debug)]
pub struct Watch {
    stop: Arc<AtomicBool>,
    threads: Vec<JoinHandle<()>>,
}

impl Watch {
    /// Whether both threads have ended (the track ended, or its decoder failed): a watch that
    /// has ended may be started again.
    pub fn ended(&self) -> bool {
        self.threads.iter().all(JoinHandle::is_finished)
    }
}

impl Drop for Watch {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

/// Starts watching the tapped track `tap` as `source`; findings go to `findings`.
pub fn watch(
    mut tap: TapReceiver,
    source: Source,
    detectors: Detectors,
    config: WatchConfig,
    findings: mpsc::UnboundedSender<Finding>,
) -> Result<Watch, ProctorError> {
    let decoder = Decoder::start(tap.codec(), config.fps, config.width)?;
    let input = decoder.input();
    let stop = Arc::new(AtomicBool::new(false));
    let ended = Arc::new(AtomicBool::new(false));
    // A decoder must start at a keyframe.
    tap.request_keyframe();
    let feeder = {
        let stop = Arc::clone(&stop);
        let ended = Arc::clone(&ended);
        std::thread::Builder::new()
            .name("proctor-feed".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) {
                    let packet = match tap.poll() {
                        TapPoll::Packet(packet) => packet,
                        TapPoll::Empty => {
                            std::thread::sleep(FEED_POLL);
                            continue;
                        }
                        TapPoll::Ended => break,
                    };
                    if let Err(err) = input.push(&packet) {
                        tracing::debug!(%err, "proctoring decoder refused a packet");
                        break;
                    }
                    // Packets were lost: the publisher is asked for a keyframe (the SFU
                    // spaces such requests out), or the checks would see nothing until its next
                    // natural one.
                    if input.wants_keyframe() {
                        tap.request_keyframe();
                    }
                }
                ended.store(true, Ordering::Relaxed);
            })
            .map_err(|e| ProctorError::Pipeline(format!("feeder thread: {e}")))?
    };
    let analyser = {
        let stop = Arc::clone(&stop);
        let mut analysis = Analysis::new(source, detectors, config, findings);
        std::thread::Builder::new()
            .name("proctor-check".into())
            .spawn(move || {
                while !stop.load(Ordering::Relaxed) && !analysis.findings.is_closed() {
                    match decoder.next_frame(Duration::from_millis(500)) {
                        Ok(Some(frame)) => analysis.frame(&frame),
                        Ok(None) if ended.load(Ordering::Relaxed) => break,
                        Ok(None) => analysis.tick(),
                        Err(err) => {
                            tracing::warn!(%err, "proctoring decoder failed; the watch ends");
                            break;
                        }
                    }
                }
                decoder.end();
            })
            .map_err(|e| ProctorError::Pipeline(format!("analysis thread: {e}")))?
    };
    Ok(Watch {
        stop,
        threads: vec![feeder, analyser],
    })
}

/// The analysis side of a watch (runs on its own thread).
struct Analysis {
    source: Source,
    detectors: Detectors,
    config: WatchConfig,
    findings: mpsc::UnboundedSender<Finding>,
    started: Instant,
    started_wall: SystemTime,
    camera: CameraChecks,
    side: SideViewChecks,
    feed: FeedWatch,
    previous: Option<Vec<u8>>,
    last_confirm: Option<Instant>,
    /// The best second-face score since `multiple_faces` opened.
    second_face_peak: Option<f32>,
}

impl Analysis {
    fn new(
        source: Source,
        detectors: Detectors,
        config: WatchConfig,
        findings: mpsc::UnboundedSender<Finding>,
    ) -> Analysis {
        Analysis {
            camera: CameraChecks::new(config.camera.clone()),
            side: SideViewChecks::new(config.side.clone()),
            feed: FeedWatch::new(config.feed_lost_after),
            source,
            detectors,
            config,
            findings,
            started: Instant::now(),
            started_wall: SystemTime::now(),
            previous: None,
            last_confirm: None,
            second_face_peak: None,
        }
    }

    fn now(&self) -> Duration {
        self.started.elapsed()
    }

    fn tick(&mut self) {
        let now = self.now();
        if let Some(transition) = self.feed.tick(now) {
            self.report(transition, None);
        }
    }

    fn frame(&mut self, frame: &RgbImage) {
        let at = self.now();
        if let Some(transition) = self.feed.frame(at) {
            self.report(transition, None);
        }
        let luma = frame.luma();
        let Some(stats) =
            crate::frame::LumaStats::of(&luma, frame.width, frame.height, frame.width)
        else {
            return;
        };
        let change = self
            .previous
            .as_deref()
            .and_then(|previous| mean_abs_difference(previous, &luma));
        // Once calibration switched a camera's face checks off, the detector is not asked again.
        let face_checks_off =
            self.source == Source::Camera && self.camera.face_checks_on() == Some(false);
        let detected = if face_checks_off {
            None
        } else {
            self.detect(frame)
        };
        let faces = detected.as_ref().map(|faces| Faces {
            count: self.config.faces.count(faces),
        });
        // The peak covers the run of samples with a second face that opened the event, and
        // the event while it lasts; a second face that came and went before does not count.
        match detected.as_ref().and_then(|found| found.get(1)) {
            Some(second) if faces.is_some_and(|f| f.count > 1) => {
                self.second_face_peak =
                    Some(self.second_face_peak.unwrap_or(0.0).max(second.score));
            }
            _ if !self.camera.is_open(Check::MultipleFaces) => self.second_face_peak = None,
            _ => {}
        }
        tracing::trace!(?at, ?stats, ?change, ?faces, "sample");
        let transitions = match self.source {
            Source::Camera => self.camera.observe(&CameraSample {
                at,
                luma: stats,
                change,
                faces,
            }),
            Source::Phone => self.side.observe(&SideSample {
                at,
                luma: stats,
                change,
                thumb: thumbnail(&luma, frame.width, frame.height),
                faces,
            }),
        };
        self.previous = Some(luma);
        for transition in transitions {
            self.report(transition, Some(frame));
        }
    }

    /// What the detectors found in `frame`, best first; `None` when none could run.
    fn detect(&mut self, frame: &RgbImage) -> Option<Vec<Face>> {
        let front = self.detectors.front.clone()?;
        let score = self.config.faces.score;
        let found = self
            .detectors
            .with_slot(|| front.detect(frame, score))?
            .inspect_err(|err| tracing::debug!(%err, "face detection failed"))
            .ok()?;
        if !found.is_empty() {
            return Some(found);
        }
        // "No face" is confirmed by the larger model, which finds smaller and turned faces, at
        // most once per `confirm_every`; between confirmations the front model's answer stands.
        let due = self
            .last_confirm
            .is_none_or(|at| at.elapsed() >= self.config.confirm_every);
        if let (true, Some(back)) = (due, self.detectors.back.clone()) {
            self.last_confirm = Some(Instant::now());
            if let Some(Ok(confirmed)) = self.detectors.with_slot(|| back.detect(frame, score)) {
                return Some(confirmed);
            }
        }
        Some(found)
    }

    fn report(&mut self, transition: Transition, frame: Option<&RgbImage>) {
        let offset = match transition.edge {
            Edge::Opened { at } | Edge::Closed { at } => at,
        };
        let snapshot = match transition.edge {
            Edge::Opened { .. } => frame.and_then(|frame| {
                frame
                    .fit_within(320, 240)
                    .to_jpeg(75)
                    .inspect_err(|err| tracing::debug!(%err, "snapshot not encoded"))
                    .ok()
            }),
            Edge::Closed { .. } => None,
        };
        let peak = match (transition.check, transition.edge) {
            (Check::MultipleFaces, Edge::Closed { .. }) => self.second_face_peak.take(),
            _ => None,
        };
        let _ = self.findings.send(Finding {
            check: transition.check,
            edge: transition.edge,
            at: self.started_wall + offset,
            snapshot,
            peak,
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(width: f32, score: f32) -> Face {
        Face {
            center: (0.5, 0.5),
            size: (width, width),
            score,
        }
    }

    #[test]
    fn a_small_or_unsure_second_detection_is_not_a_second_face() {
        let rules = FaceRules::default();
        assert_eq!(rules.count(&[]), 0);
        assert_eq!(rules.count(&[face(0.3, 0.6)]), 0, "below the score");
        assert_eq!(rules.count(&[face(0.3, 0.9), face(0.28, 0.8)]), 2);
        // A face in a photo on the wall behind: a tenth of the main face's area.
        assert_eq!(rules.count(&[face(0.3, 0.9), face(0.09, 0.9)]), 1);
        assert_eq!(rules.count(&[face(0.3, 0.9), face(0.3, 0.5)]), 1);
    }
}
