//! Turning a take's segments into one seekable file.
//!
//! `splitmuxsrc` plays the segments back to back as one stream (each file's timestamps continue
//! the previous one's), and the take's muxer writes them into one file. Written to a seekable
//! file, `webmmux`/`matroskamux` add the duration and the cues (the seek index) a player needs.
//! Nothing is decoded or encoded.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;

use crate::error::RecorderError;
use crate::writer::{Container, init};

/// Longest a remux may take (it copies data; an hour of video takes seconds).
const REMUX_TIMEOUT: Duration = Duration::from_secs(600);

fn make(factory: &str) -> Result<gst::Element, RecorderError> {
    gst::ElementFactory::make(factory)
        .build()
        .map_err(|e| RecorderError::Pipeline(format!("{factory}: {e}")))
}

/// Joins `segments` (in order) into one file at `out`. Blocks until done.
pub fn remux(segments: &[PathBuf], container: Container, out: &Path) -> Result<(), RecorderError> {
    init()?;
    if segments.is_empty() {
        return Err(RecorderError::Pipeline("no segments to join".into()));
    }
    let source = make("splitmuxsrc")?;
    // The exact list of files, rather than a glob that a path could confuse.
    let files: Vec<String> = segments
        .iter()
        .map(|p| p.to_string_lossy().into_owned())
        .collect();
    source.connect("format-location", false, move |_| {
        Some(gst::glib::StrV::from(files.clone()).to_value())
    });
    let queue = make("queue")?;
    let muxer = make(container.muxer())?;
    let sink = make("filesink")?;
    sink.set_property("location", out.to_string_lossy().as_ref());
    let pipeline = gst::Pipeline::default();
    pipeline.add_many([&source, &queue, &muxer, &sink])?;
    gst::Element::link_many([&muxer, &sink])?;
    // The muxer has video and audio request pads: ask for the take's kind.
    let template = if container.is_video() {
        "video_%u"
    } else {
        "audio_%u"
    };
    let muxer_pad = muxer
        .request_pad_simple(template)
        .ok_or_else(|| RecorderError::Pipeline(format!("muxer has no {template} pad")))?;
    queue
        .static_pad("src")
        .ok_or_else(|| RecorderError::Pipeline("queue has no source pad".into()))?
        .link(&muxer_pad)
        .map_err(|e| RecorderError::Pipeline(format!("linking the muxer: {e:?}")))?;
    let queue_sink = queue
        .static_pad("sink")
        .ok_or_else(|| RecorderError::Pipeline("queue has no sink pad".into()))?;
    // One stream per take: link the first pad splitmuxsrc makes.
    source.connect_pad_added(move |_, pad| {
        if !queue_sink.is_linked() {
            let _ = pad.link(&queue_sink);
        }
    });
    pipeline.set_state(gst::State::Playing)?;
    let result = wait_for_end(&pipeline);
    let _ = pipeline.set_state(gst::State::Null);
    result
}

fn wait_for_end(pipeline: &gst::Pipeline) -> Result<(), RecorderError> {
    let bus = pipeline
        .bus()
        .ok_or_else(|| RecorderError::Pipeline("no bus".into()))?;
    let deadline = Instant::now() + REMUX_TIMEOUT;
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
