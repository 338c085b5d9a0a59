//! Turning a take's segments into one seekable file.
//!
//! Each segment file keeps the take's own timeline: `splitmuxsink` writes every fragment with
//! timestamps counted from the start of the take, not from its own start. The join reads each
//! file in turn (`filesrc ! matroskademux ! appsink`) and hands its frames, timestamps unchanged,
//! to one muxer (`appsrc ! webmmux/matroskamux ! filesink`). A pause in the stream (a sender
//! starved of CPU, a simulcast layer switch waiting for a keyframe) often falls on a segment
//! boundary, since a segment is cut at the first keyframe after it: joining the files back to
//! back, by their own durations, would drop that pause and put the take out of step with the
//! others. Written to a seekable file, the muxer adds the duration and the cues (the seek index)
//! a player needs. Nothing is decoded or encoded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use crate::error::RecorderError;
use crate::writer::{Container, init};

/// Longest a remux may take (it copies data; an hour of video takes seconds).
const REMUX_TIMEOUT: Duration = Duration::from_secs(600);

fn make(factory: &str) -> Result<gst::Element, RecorderError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| RecorderError::Pipeline(format!("{factory}: {e}")))
}

/// Joins `segments` (in order) into one file at `out`, each frame at its time in the take.
/// Blocks until done.
pub fn remux(segments: &[PathBuf], container: Container, out: &Path) -> Result<(), RecorderError> {
    init()?;
    if segments.is_empty() {
        return Err(RecorderError::Pipeline("no segments to join".into()));
    }
    let deadline = Instant::now() + REMUX_TIMEOUT;
    let source = gst_app::AppSrc::builder()
        .format(gst::Format::Time)
        .block(true)
        .build();
    let muxer = make(container.muxer())?;
    let sink = make("filesink")?;
    sink.set_property("location", out.to_string_lossy().as_ref());
    let pipeline = gst::Pipeline::default();
    pipeline.add_many([source.upcast_ref::<gst::Element>(), &muxer, &sink])?;
    muxer.link(&sink)?;
    // The muxer has video and audio request pads: ask for the take's kind.
    let template = if container.is_video() {
        "video_%u"
    } else {
        "audio_%u"
    };
    let muxer_pad = muxer
        .request_pad_simple(template)
        .ok_or_else(|| RecorderError::Pipeline(format!("muxer has no {template} pad")))?;
    source
        .static_pad("src")
        .ok_or_else(|| RecorderError::Pipeline("appsrc has no source pad".into()))?
        .link(&muxer_pad)
        .map_err(|e| RecorderError::Pipeline(format!("linking the muxer: {e:?}")))?;
    pipeline.set_state(gst::State::Playing)?;
    let fed = segments
        .iter()
        .try_for_each(|segment| feed(segment, &source, deadline));
    let result = fed.and_then(|()| {
        source
            .end_of_stream()
            .map_err(|e| RecorderError::Pipeline(format!("end of stream: {e:?}")))?;
        wait_for_end(&pipeline, deadline)
    });
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// Hands every frame of one segment file to `to`, with the timestamps the file has.
fn feed(segment: &Path, to: &gst_app::AppSrc, deadline: Instant) -> Result<(), RecorderError> {
    let file = make("filesrc")?;
    file.set_property("location", segment.to_string_lossy().as_ref());
    let demuxer = make("matroskademux")?;
    let frames = gst_app::AppSink::builder().sync(false).build();
    let pipeline = gst::Pipeline::default();
    pipeline.add_many([&file, &demuxer, frames.upcast_ref::<gst::Element>()])?;
    file.link(&demuxer)?;
    let frames_pad = frames
        .static_pad("sink")
        .ok_or_else(|| RecorderError::Pipeline("appsink has no sink pad".into()))?;
    // One stream per take: link the first pad the demuxer makes.
    demuxer.connect_pad_added(move |_, pad| {
        if !frames_pad.is_linked() {
            let _ = pad.link(&frames_pad);
        }
    });
    pipeline.set_state(gst::State::Playing)?;
    let result = (|| {
        loop {
            match frames.try_pull_sample(gst::ClockTime::from_mseconds(100)) {
                Some(sample) => to
                    .push_sample(&sample)
                    .map(drop)
                    .map_err(|e| RecorderError::Pipeline(format!("push: {e:?}")))?,
                None if frames.is_eos() => return Ok(()),
                None => {
                    if let Some(err) = bus_error(&pipeline) {
                        return Err(err);
                    }
                    if Instant::now() >= deadline {
                        return Err(RecorderError::Pipeline(format!(
                            "{} was not read in time",
                            segment.display()
                        )));
                    }
                }
            }
        }
    })();
    let _ = pipeline.set_state(gst::State::Null);
    result
}

/// The error a pipeline posted, if any.
fn bus_error(pipeline: &gst::Pipeline) -> Option<RecorderError> {
    let bus = pipeline.bus()?;
    while let Some(message) = bus.pop() {
        if let gst::MessageView::Error(err) = message.view() {
            return Some(RecorderError::Pipeline(format!("remux: {}", err.error())));
        }
    }
    None
}

fn wait_for_end(pipeline: &gst::Pipeline, deadline: Instant) -> Result<(), RecorderError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| RecorderError::Pipeline("no bus".into()))?;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(RecorderError::Pipeline(
                "remux did not finish in time".into(),
            ));
        }
        let Some(message) = bus.timed_pop(gst::ClockTime::from_nseconds(left.as_nanos() as u64))
        else {
            continue;
        };
        match message.view() {
            gst::MessageView::Eos(_) => return Ok(()),
            gst::MessageView::Error(err) => {
                return Err(RecorderError::Pipeline(format!("remux: {}", err.error())));
            }
            _ => {}
        }
    }
}
