//! Writing one take to disk, without transcoding: RTP in, container segments out.
//!
//! The pipeline is `appsrc ! rtpjitterbuffer ! <depayloader> [! parser] ! splitmuxsink`:
//! the jitter buffer puts late and retransmitted packets back in order and, in its `none` mode,
//! timestamps the output from the RTP timestamps alone, so the file's timeline is the sender's
//! media clock; the depayloader takes the codec's frames out of RTP; `splitmuxsink` muxes them
//! into WebM (Matroska for H.264) files of about [`SEGMENT`], each closed and complete on its
//! own. Video segments can only start at a keyframe, and splitmuxsink closes a segment once the
//! keyframe interval after it is complete (it measures intervals before deciding where to cut):
//! the writer asks for a keyframe (through the tap) every half segment, so a crash loses the
//! segment being written and at most half a segment more.
//!
//! A `TrackWriter` is fed from one thread (a tap's blocking receiver); the recording session
//! learns about closed segments through [`TrackWriter::closed_segments`].

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use sightline_sfu::{Codec, TapPacket};

use crate::error::RecorderError;

/// Target length of a segment.
pub const SEGMENT: Duration = Duration::from_secs(10);
/// How long the jitter buffer waits for late packets.
const JITTER_LATENCY_MS: u32 = 200;
/// The RTP payload type written into the packets we hand GStreamer (any dynamic one will do:
/// the caps say what it carries).
const PAYLOAD_TYPE: u8 = 96;
/// The SSRC of the packets we hand GStreamer (one stream per pipeline).
const SSRC: u32 = 0x5147_4854;
/// How far apart two frames are put when a sender's clock jumped back (one frame at 30 fps).
const RESTAMP_STEP: gst::ClockTime = gst::ClockTime::from_nseconds(33_333_333);
/// Longest wait for a pipeline to finish its files after the end of the stream.
const FINISH_TIMEOUT: Duration = Duration::from_secs(30);

/// Keeps the timeline `pad` hands the muxer moving forward. A sender's RTP clock can jump back
/// (an encoder restarted, a clock reset): timestamps from it would go back too, and splitmuxsink
/// stops the whole take with "Timestamping error on input streams". From a jump on, frames are
/// moved forward by the jump, so they follow the last frame one frame apart; the decode time is
/// the presentation time (VP8, Opus and WebRTC's H.264 have no reordered frames).
fn keep_moving_forward(pad: &gst::Pad) {
    // (last timestamp handed on, shift added from the last jump on); one streaming thread.
    let state = std::sync::Mutex::new((None::<gst::ClockTime>, gst::ClockTime::ZERO));
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, info| {
        let Ok(mut guard) = state.lock() else {
            return gst::PadProbeReturn::Ok;
        };
        let (last, shift) = &mut *guard;
        let Some(gst::PadProbeData::Buffer(buffer)) = info.data.as_mut() else {
            return gst::PadProbeReturn::Ok;
        };
        let Some(pts) = buffer.pts() else {
            return gst::PadProbeReturn::Ok;
        };
        let mut moved = pts + *shift;
        if let Some(previous) = *last
            && moved < previous
        {
            let jump = previous - moved;
            tracing::warn!(
                back_ms = jump.mseconds(),
                "a sender's clock jumped back; frames follow on"
            );
            *shift += jump + RESTAMP_STEP;
            moved = pts + *shift;
        }
        *last = Some(moved);
        let buffer = buffer.make_mut();
        buffer.set_pts(moved);
        buffer.set_dts(moved);
        gst::PadProbeReturn::Ok
    });
}

/// How a codec is recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Container {
    /// RTP encoding name in caps.
    encoding: &'static str,
    /// `audio` or `video`.
    media: &'static str,
    depayloader: &'static str,
    parser: Option<&'static str>,
    muxer: &'static str,
    /// File name extension of the segments and the final file.
    pub extension: &'static str,
}

impl Container {
    /// The container and elements for a codec.
    pub fn for_codec(codec: Codec) -> Container {
        match codec {
            Codec::Opus => Container {
                encoding: "OPUS",
                media: "audio",
                depayloader: "rtpopusdepay",
                // The depayloader's caps lack the sample rate WebM needs; the parser adds it.
                parser: Some("opusparse"),
                muxer: "webmmux",
                extension: "webm",
            },
            Codec::Vp8 => Container {
                encoding: "VP8",
                media: "video",
                depayloader: "rtpvp8depay",
                parser: None,
                muxer: "webmmux",
                extension: "webm",
            },
            Codec::Vp9 => Container {
                encoding: "VP9",
                media: "video",
                depayloader: "rtpvp9depay",
                parser: None,
                muxer: "webmmux",
                extension: "webm",
            },
            // WebM has no H.264; Matroska does, still without transcoding.
            Codec::H264 => Container {
                encoding: "H264",
                media: "video",
                depayloader: "rtph264depay",
                parser: Some("h264parse"),
                muxer: "matroskamux",
                extension: "mkv",
            },
        }
    }

    /// The muxer element's name (for remuxing segments into one file).
    pub fn muxer(&self) -> &'static str {
        self.muxer
    }

    /// Whether it holds video.
    pub fn is_video(&self) -> bool {
        self.media == "video"
    }
}

/// A segment file that is complete on disk.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClosedSegment {
    /// Position in the take, from 0.
    pub index: u32,
    /// The file.
    pub path: PathBuf,
    /// Media time covered, from the take's start.
    pub start: Duration,
    /// End of the media time covered.
    pub end: Duration,
}

/// The index in a segment file's name (`seg-00042.webm` is 42).
pub fn segment_index(path: &str) -> Option<u32> {
    let name = Path::new(path).file_stem()?.to_str()?;
    name.strip_prefix("seg-")?.parse().ok()
}

/// Initialises GStreamer once per process.
pub fn init() -> Result<(), RecorderError> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| result = gst::init().map_err(RecorderError::from));
    result
}

/// The RTP packet for a tapped packet, with the payload type and SSRC the caps name.
pub fn rtp_packet(packet: &TapPacket) -> Vec<u8> {
    packet.to_rtp(PAYLOAD_TYPE, SSRC)
}

/// One take being written.
pub struct TrackWriter {
    pipeline: gst::Pipeline,
    source: gst_app::AppSrc,
    codec: Codec,
    /// When the pipeline started: buffers carry their arrival as running time.
    started: Instant,
    /// Media time of the last keyframe pushed, and whether one was asked for since.
    last_keyframe_rtp: Option<u64>,
    keyframe_asked_at: Option<Instant>,
    /// Target segment length.
    segment: Duration,
    /// Segments open (being written), by index, with the media time they start at.
    opened: Vec<(u32, Duration)>,
    /// Segments reported closed, by index.
    closed: BTreeSet<u32>,
}

impl std::fmt::Debug for TrackWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackWriter")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

fn make(factory: &str) -> Result<gst::Element, RecorderError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| RecorderError::Pipeline(format!("{factory}: {e}")))
}

impl TrackWriter {
    /// Starts a pipeline writing segments `seg-00000.<ext>`, `seg-00001.<ext>`, … of about
    /// `segment` each into `dir`.
    pub fn start(
        dir: &Path,
        codec: Codec,
        segment: Duration,
    ) -> Result<TrackWriter, RecorderError> {
        init()?;
        std::fs::create_dir_all(dir)?;
        let container = Container::for_codec(codec);
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", container.media)
            .field(
                "clock-rate",
                i32::try_from(codec.clock_rate()).unwrap_or(90_000),
            )
            .field("encoding-name", container.encoding)
            .field("payload", i32::from(PAYLOAD_TYPE))
            .build();
        let source = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(false)
            .build();
        let jitter = make("rtpjitterbuffer")?;
        jitter.set_property("latency", JITTER_LATENCY_MS);
        jitter.set_property_from_str("mode", "none");
        let depay = make(container.depayloader)?;
        let sink = make("splitmuxsink")?;
        let location = dir.join(format!("seg-%05d.{}", container.extension));
        sink.set_property("location", location.to_string_lossy().as_ref());
        sink.set_property("max-size-time", segment.as_nanos() as u64);
        sink.set_property_from_str("muxer-factory", container.muxer);
        let pipeline = gst::Pipeline::default();
        let mut chain = vec![source.upcast_ref::<gst::Element>().clone(), jitter, depay];
        if let Some(parser) = container.parser {
            chain.push(make(parser)?);
        }
        pipeline.add_many(&chain)?;
        pipeline.add(&sink)?;
        gst::Element::link_many(&chain)?;
        // splitmuxsink has one video pad and numbered audio pads: ask for the right kind.
        let template = if container.is_video() {
            "video"
        } else {
            "audio_%u"
        };
        let sink_pad = sink.request_pad_simple(template).ok_or_else(|| {
            RecorderError::Pipeline(format!("splitmuxsink has no {template} pad"))
        })?;
        let last = chain
            .last()
            .and_then(|e| e.static_pad("src"))
            .ok_or_else(|| RecorderError::Pipeline("no source pad to link".into()))?;
        keep_moving_forward(&last);
        last.link(&sink_pad)
            .map_err(|e| RecorderError::Pipeline(format!("linking to splitmuxsink: {e:?}")))?;
        pipeline.set_state(gst::State::Playing)?;
        Ok(TrackWriter {
            pipeline,
            source,
            codec,
            started: Instant::now(),
            last_keyframe_rtp: None,
            keyframe_asked_at: None,
            segment,
            opened: Vec::new(),
            closed: BTreeSet::new(),
        })
    }

    /// Hands one packet to the pipeline. Returns whether a keyframe should be asked for now:
    /// the last one is older than half a segment (video only, at most once a second).
    pub fn push(&mut self, packet: &TapPacket) -> Result<bool, RecorderError> {
        let mut buffer = gst::Buffer::from_mut_slice(rtp_packet(packet));
        let arrival = packet.arrival.saturating_duration_since(self.started);
        if let Some(buffer) = buffer.get_mut() {
            // The jitter buffer reads arrival times from DTS.
            buffer.set_dts(gst::ClockTime::from_nseconds(arrival.as_nanos() as u64));
        }
        self.source
            .push_buffer(buffer)
            .map_err(|e| RecorderError::Pipeline(format!("push: {e:?}")))?;
        if !self.codec.is_video() {
            return Ok(false);
        }
        if packet.keyframe {
            self.last_keyframe_rtp = Some(packet.rtp_time);
            self.keyframe_asked_at = None;
            return Ok(false);
        }
        let since_keyframe = self.last_keyframe_rtp.map_or(Duration::ZERO, |rtp| {
            let ticks = packet.rtp_time.saturating_sub(rtp);
            Duration::from_millis(ticks * 1000 / u64::from(self.codec.clock_rate()))
        });
        let asked_recently = self.keyframe_asked_at.is_some_and(|at| {
            packet.arrival.saturating_duration_since(at) < Duration::from_secs(1)
        });
        // Twice per segment: splitmuxsink closes a segment only once the keyframe interval
        // after it is complete, so the interval bounds what a crash loses beyond the segment.
        let want = since_keyframe >= self.segment / 2 && !asked_recently;
        if want {
            self.keyframe_asked_at = Some(packet.arrival);
        }
        Ok(want)
    }

    /// Segments finished since the last call, without waiting.
    pub fn closed_segments(&mut self) -> Result<Vec<ClosedSegment>, RecorderError> {
        let Some(bus) = self.pipeline.bus() else {
            return Ok(Vec::new());
        };
        let mut closed = Vec::new();
        while let Some(message) = bus.pop() {
            self.handle(&message, &mut closed)?;
        }
        Ok(closed)
    }

    fn handle(
        &mut self,
        message: &gst::Message,
        closed: &mut Vec<ClosedSegment>,
    ) -> Result<bool, RecorderError> {
        match message.view() {
            gst::MessageView::Element(element) => {
                let Some(structure) = element.structure() else {
                    return Ok(false);
                };
                let running = structure
                    .get::<u64>("running-time")
                    .map(Duration::from_nanos)
                    .unwrap_or_default();
                let location = structure.get::<String>("location").ok();
                // The index comes from the file's name, never from counting messages: it names
                // the file recovery looks for, and a segment's close may be reported after the
                // next one opened.
                let index = location.as_deref().and_then(segment_index);
                match (structure.name().as_str(), location, index) {
                    ("splitmuxsink-fragment-opened", Some(_), Some(index)) => {
                        self.opened.retain(|(open, _)| *open != index);
                        self.opened.push((index, running));
                    }
                    // splitmuxsink (GStreamer before 1.27) may report a file closed twice: a
                    // state change that was waiting for the file's sink posts its end of stream
                    // again (seen for the first segment under load). The file was complete at
                    // the first report; a second one would upload and join it twice.
                    ("splitmuxsink-fragment-closed", Some(_), Some(index))
                        if self.closed.contains(&index) =>
                    {
                        tracing::debug!(index, "segment reported closed again; ignored");
                    }
                    ("splitmuxsink-fragment-closed", Some(location), Some(index)) => {
                        self.closed.insert(index);
                        let start = self
                            .opened
                            .iter()
                            .position(|(open, _)| *open == index)
                            .map(|at| self.opened.remove(at).1)
                            .unwrap_or(running);
                        closed.push(ClosedSegment {
                            index,
                            path: PathBuf::from(location),
                            start,
                            end: running.max(start),
                        });
                    }
                    (name, location, None) if name.starts_with("splitmuxsink-fragment") => {
                        tracing::warn!(?location, "segment file not named as asked; ignored");
                    }
                    _ => {}
                }
                Ok(false)
            }
            gst::MessageView::Error(err) => Err(RecorderError::Pipeline(format!(
                "{}: {}",
                err.src()
                    .map(|s| s.path_string().to_string())
                    .unwrap_or_default(),
                err.error()
            ))),
            gst::MessageView::Eos(_) => Ok(true),
            _ => Ok(false),
        }
    }

    /// Ends the take: the last segment is closed and complete. Returns the segments closed
    /// since the last [`TrackWriter::closed_segments`].
    pub fn finish(mut self) -> Result<Vec<ClosedSegment>, RecorderError> {
        let mut closed = Vec::new();
        let result = (|| {
            self.source
                .end_of_stream()
                .map_err(|e| RecorderError::Pipeline(format!("end of stream: {e:?}")))?;
            let bus = self
                .pipeline
                .bus()
                .ok_or_else(|| RecorderError::Pipeline("no bus".into()))?;
            let deadline = Instant::now() + FINISH_TIMEOUT;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(RecorderError::Pipeline("did not finish in time".into()));
                }
                let Some(message) =
                    bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
                else {
                    continue;
                };
                if self.handle(&message, &mut closed)? {
                    return Ok(());
                }
            }
        })();
        let _ = self.pipeline.set_state(gst::State::Null);
        result.map(|()| closed)
    }
}

impl Drop for TrackWriter {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_segment_is_known_by_the_number_in_its_file_name() {
        assert_eq!(segment_index("/spool/r1/t2/seg-00042.webm"), Some(42));
        assert_eq!(segment_index("seg-00000.mkv"), Some(0));
        assert_eq!(segment_index("/spool/r1/t2/take.webm"), None);
        assert_eq!(segment_index("/spool/r1/t2/seg-x.webm"), None);
    }

    fn fragment(name: &str, dir: &Path, index: u32, running: Duration) -> gst::Message {
        let location = dir.join(format!("seg-{index:05}.webm"));
        gst::message::Element::new(
            gst::Structure::builder(name)
                .field("location", location.to_string_lossy().as_ref())
                .field("running-time", running.as_nanos() as u64)
                .build(),
        )
    }

    #[test]
    fn a_segment_reported_closed_twice_is_closed_once() {
        init().expect("gstreamer");
        let dir = tempfile::tempdir().expect("dir");
        let mut writer =
            TrackWriter::start(dir.path(), Codec::Vp8, Duration::from_secs(2)).expect("pipeline");
        let second = Duration::from_secs(1);
        let mut closed = Vec::new();
        // What GStreamer 1.22 posts when a state change re-sends the first file's end of stream
        // while the streaming thread waits to open the next one.
        for message in [
            fragment(
                "splitmuxsink-fragment-opened",
                dir.path(),
                0,
                Duration::ZERO,
            ),
            fragment("splitmuxsink-fragment-closed", dir.path(), 0, second),
            fragment("splitmuxsink-fragment-closed", dir.path(), 0, second),
            fragment("splitmuxsink-fragment-opened", dir.path(), 1, second),
            fragment("splitmuxsink-fragment-closed", dir.path(), 1, second * 2),
        ] {
            writer.handle(&message, &mut closed).expect("handled");
        }
        let seen: Vec<(u32, Duration, Duration)> =
            closed.iter().map(|c| (c.index, c.start, c.end)).collect();
        assert_eq!(
            seen,
            vec![(0, Duration::ZERO, second), (1, second, second * 2)]
        );
    }
}
