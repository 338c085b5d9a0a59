//! Decoding a tapped video track into sampled RGB frames (GStreamer).
//!
//! `appsrc ! rtpjitterbuffer ! rtpvp8depay ! vp8dec ! videoscale ! videoconvert ! appsink`.
//! Every frame of the tapped layer is decoded (VP8 frames depend on the ones before); a probe
//! after the decoder only drops, down to the sampling rate the checks need, and the sink keeps
//! just the newest frame, so a slow consumer loses samples rather than building a queue.
//!
//! A packet lost on the way (dropped by a full tap, by the leaky source, or never arrived)
//! leaves the depayloader waiting for a keyframe; it (and the decoder) then ask upstream for
//! one, and
//! [`DecoderInput::wants_keyframe`] says so to whoever reads the tap, which asks the publisher
//! (a publisher's natural keyframes can be many seconds apart).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use sightline_sfu::{Codec, TapPacket};

use crate::error::ProctorError;
use crate::image::RgbImage;

/// RTP payload type and SSRC the pipeline's caps name (the tap's packets are rewritten to them).
const PAYLOAD_TYPE: u8 = 96;
const SSRC: u32 = 0x5167_6874;
/// How long the jitter buffer waits for a late packet.
const JITTER_LATENCY_MS: u32 = 200;

/// Initialises GStreamer once per process.
pub fn init() -> Result<(), ProctorError> {
    static INIT: Once = Once::new();
    let mut result = Ok(());
    INIT.call_once(|| result = gst::init().map_err(ProctorError::from));
    result
}

/// Lets at most one decoded frame per `interval` (of arrival) through `pad`; the rest are
/// dropped before they are scaled and converted. (`videorate` would do this from timestamps,
/// but it aborts the process on frames without a duration, which a depayloaded RTP stream
/// has.)
fn sample_at_most(pad: &gst::Pad, interval: Duration) {
    let last = std::sync::Mutex::new(None::<Instant>);
    pad.add_probe(gst::PadProbeType::BUFFER, move |_, _| {
        let Ok(mut last) = last.lock() else {
            return gst::PadProbeReturn::Drop;
        };
        let now = Instant::now();
        if last.is_some_and(|at| now.saturating_duration_since(at) < interval) {
            return gst::PadProbeReturn::Drop;
        }
        *last = Some(now);
        gst::PadProbeReturn::Ok
    });
}

/// Notes on `wanted` every keyframe request (GStreamer's upstream force-key-unit event) that
/// leaves through `pad`, going upstream.
fn note_keyframe_requests(pad: &gst::Pad, wanted: Arc<AtomicBool>) {
    pad.add_probe(gst::PadProbeType::EVENT_UPSTREAM, move |_, info| {
        let asks = info
            .event()
            .and_then(|event| event.structure())
            .is_some_and(|s| s.name() == "GstForceKeyUnit");
        if asks {
            wanted.store(true, Ordering::Relaxed);
        }
        gst::PadProbeReturn::Ok
    });
}

/// A running decoder for one tapped VP8 track.
pub struct Decoder {
    pipeline: gst::Pipeline,
    source: gst_app::AppSrc,
    sink: gst_app::AppSink,
    started: Instant,
    /// The depayloader lost packets and waits for a keyframe.
    keyframe_wanted: Arc<AtomicBool>,
}

impl std::fmt::Debug for Decoder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Decoder").finish_non_exhaustive()
    }
}

fn make(factory: &str) -> Result<gst::Element, ProctorError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| ProctorError::Pipeline(format!("{factory}: {e}")))
}

impl Decoder {
    /// Starts decoding a track of `codec` (VP8 only), sampling at most `fps` frames a second,
    /// scaled to `width` pixels wide (the height keeps the picture's shape).
    pub fn start(codec: Codec, fps: u32, width: u32) -> Result<Decoder, ProctorError> {
        if codec != Codec::Vp8 {
            return Err(ProctorError::Pipeline(format!(
                "{codec:?} video is not decoded for checks"
            )));
        }
        init()?;
        let caps = gst::Caps::builder("application/x-rtp")
            .field("media", "video")
            .field("clock-rate", 90_000i32)
            .field("encoding-name", "VP8")
            .field("payload", i32::from(PAYLOAD_TYPE))
            .build();
        let source = gst_app::AppSrc::builder()
            .caps(&caps)
            .format(gst::Format::Time)
            .is_live(true)
            .do_timestamp(false)
            // A decoder that falls behind must not hold the feeder: drop the oldest.
            .max_bytes(4 * 1024 * 1024)
            .leaky_type(gst_app::AppLeakyType::Downstream)
            .build();
        let jitter = make("rtpjitterbuffer")?;
        jitter.set_property("latency", JITTER_LATENCY_MS);
        jitter.set_property_from_str("mode", "none");
        let depay = make("rtpvp8depay")?;
        // Wait for a keyframe after loss instead of decoding garbage, and ask for one.
        depay.set_property("wait-for-keyframe", true);
        depay.set_property("request-keyframe", true);
        let keyframe_wanted = Arc::new(AtomicBool::new(false));
        let depay_sink = depay
            .static_pad("sink")
            .ok_or_else(|| ProctorError::Pipeline("rtpvp8depay has no sink pad".into()))?;
        note_keyframe_requests(&depay_sink, Arc::clone(&keyframe_wanted));
        let decoder = make("vp8dec")?;
        let scale = make("videoscale")?;
        let convert = make("videoconvert")?;
        let out_caps = gst::Caps::builder("video/x-raw")
            .field("format", "RGB")
            .field("width", i32::try_from(width.max(16)).unwrap_or(320))
            .field("pixel-aspect-ratio", gst::Fraction::new(1, 1))
            .build();
        let sink = gst_app::AppSink::builder()
            .caps(&out_caps)
            .max_buffers(1)
            .drop(true)
            .sync(false)
            .build();
        let pipeline = gst::Pipeline::default();
        let chain = [
            source.upcast_ref::<gst::Element>().clone(),
            jitter,
            depay,
            decoder.clone(),
            scale,
            convert,
            sink.upcast_ref::<gst::Element>().clone(),
        ];
        pipeline.add_many(&chain)?;
        gst::Element::link_many(&chain)?;
        let decoded = decoder
            .static_pad("src")
            .ok_or_else(|| ProctorError::Pipeline("vp8dec has no source pad".into()))?;
        sample_at_most(&decoded, Duration::from_secs(1) / fps.max(1));
        pipeline.set_state(gst::State::Playing)?;
        Ok(Decoder {
            pipeline,
            source,
            sink,
            started: Instant::now(),
            keyframe_wanted,
        })
    }

    /// The decoder's input, for the thread that reads the tap.
    pub fn input(&self) -> DecoderInput {
        DecoderInput {
            source: self.source.clone(),
            started: self.started,
            keyframe_wanted: Arc::clone(&self.keyframe_wanted),
        }
    }

    /// The end of the track: the decoder finishes what it has.
    pub fn end(&self) {
        let _ = self.source.end_of_stream();
    }

    /// The next sampled frame, waiting at most `timeout`; `None` if there was none.
    pub fn next_frame(&self, timeout: Duration) -> Result<Option<RgbImage>, ProctorError> {
        self.check_bus()?;
        let Some(sample) = self
            .sink
            .try_pull_sample(gst::ClockTime::from_nseconds(timeout.as_nanos() as u64))
        else {
            return Ok(None);
        };
        let caps = sample
            .caps()
            .ok_or_else(|| ProctorError::Frame("a sample without caps".into()))?;
        let structure = caps
            .structure(0)
            .ok_or_else(|| ProctorError::Frame("empty caps".into()))?;
        let width = structure
            .get::<i32>("width")
            .map_err(|e| ProctorError::Frame(e.to_string()))?;
        let height = structure
            .get::<i32>("height")
            .map_err(|e| ProctorError::Frame(e.to_string()))?;
        let (width, height) = (
            usize::try_from(width).map_err(|_| ProctorError::Frame("width".into()))?,
            usize::try_from(height).map_err(|_| ProctorError::Frame("height".into()))?,
        );
        let buffer = sample
            .buffer()
            .ok_or_else(|| ProctorError::Frame("a sample without a buffer".into()))?;
        let map = buffer
            .map_readable()
            .map_err(|e| ProctorError::Frame(e.to_string()))?;
        // GStreamer pads RGB rows to a multiple of 4 bytes.
        let stride = (width * 3).div_ceil(4) * 4;
        if map.len() < stride * height {
            return Err(ProctorError::Frame(format!(
                "{width}×{height} frame of {} bytes",
                map.len()
            )));
        }
        let mut data = Vec::with_capacity(width * height * 3);
        for row in map.chunks(stride).take(height) {
            data.extend_from_slice(&row[..width * 3]);
        }
        RgbImage::new(width, height, data).map(Some)
    }

    fn check_bus(&self) -> Result<(), ProctorError> {
        let Some(bus) = self.pipeline.bus() else {
            return Ok(());
        };
        while let Some(message) = bus.pop() {
            if let gst::MessageView::Error(err) = message.view() {
                return Err(ProctorError::Pipeline(err.error().to_string()));
            }
        }
        Ok(())
    }
}

/// Where a decoder's packets go in (cheap to clone, usable from any thread).
#[derive(Debug, Clone)]
pub struct DecoderInput {
    source: gst_app::AppSrc,
    started: Instant,
    keyframe_wanted: Arc<AtomicBool>,
}

impl DecoderInput {
    /// Whether the decoder lost packets and waits for a keyframe since this was last asked
    /// (asking clears it).
    pub fn wants_keyframe(&self) -> bool {
        self.keyframe_wanted.swap(false, Ordering::Relaxed)
    }

    /// Hands one tapped packet to the decoder.
    pub fn push(&self, packet: &TapPacket) -> Result<(), ProctorError> {
        let mut buffer = gst::Buffer::from_mut_slice(packet.to_rtp(PAYLOAD_TYPE, SSRC));
        let arrival = packet.arrival.saturating_duration_since(self.started);
        if let Some(buffer) = buffer.get_mut() {
            // The jitter buffer reads arrival times from DTS.
            buffer.set_dts(gst::ClockTime::from_nseconds(arrival.as_nanos() as u64));
        }
        self.source
            .push_buffer(buffer)
            .map(|_| ())
            .map_err(|e| ProctorError::Pipeline(format!("push: {e:?}")))
    }
}

impl Drop for Decoder {
    fn drop(&mut self) {
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}
