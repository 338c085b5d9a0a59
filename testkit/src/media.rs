//! Real encoded media for test clients: what a browser would send, so that the SFU forwards
//! (and a browser could decode) the real thing rather than payloads shaped like it.
//!
//! GStreamer encodes it once per process into a temporary directory, one file per encoded frame
//! (`multifilesink`), which is read into memory and removed. Encoding takes well under a second.

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use anyhow::{Context, Result, anyhow, bail};

/// Video frames per second.
pub const VIDEO_FPS: u32 = 30;
/// Audio packet duration in milliseconds (Opus at 48 kHz).
pub const AUDIO_PACKET_MS: u32 = 20;
/// The tone's level as RFC 6464 puts it in each audio packet's header: a sine of amplitude 0.5
/// has an RMS of 0.354, which is -9 dBov. Browsers send the measured level; ours is constant.
pub const TONE_DBOV: i8 = -9;
/// Three seconds of video, with a keyframe at least every second.
const VIDEO_FRAMES: u32 = 90;
/// Three seconds of audio.
const AUDIO_PACKETS: u32 = 150;

/// One simulcast encoding, as browsers publish them (the SFU names them by RID).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Layer {
    /// The RID: `q`, `h` or `f`.
    pub rid: &'static str,
    /// Frame width.
    pub width: u32,
    /// Frame height.
    pub height: u32,
    /// The encoder's target bitrate in kbit/s (the browser's `maxBitrate` for the layer).
    pub kbps: u32,
}

impl Layer {
    /// The three layers, lowest first, matching the web app's `SIMULCAST` settings.
    pub const ALL: [Layer; 3] = [
        Layer {
            rid: "q",
            width: 160,
            height: 120,
            kbps: 150,
        },
        Layer {
            rid: "h",
            width: 320,
            height: 240,
            kbps: 500,
        },
        Layer {
            rid: "f",
            width: 640,
            height: 480,
            kbps: 1_500,
        },
    ];
}

/// One encoded VP8 frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Vp8Frame {
    /// The frame as the encoder produced it (what an RTP depacketizer gives back).
    pub data: Vec<u8>,
    /// Whether a decoder can start here.
    pub keyframe: bool,
}

/// Encoded audio and video to publish.
#[derive(Debug)]
pub struct EncodedMedia {
    /// Opus packets of a 440 Hz tone at [`TONE_DBOV`], 20 ms each, mono 48 kHz.
    pub opus: Vec<Vec<u8>>,
    /// VP8 frames of a moving test pattern for each of [`Layer::ALL`], 30 per second.
    pub video: [Vec<Vp8Frame>; 3],
}

impl EncodedMedia {
    /// Which layer and frame `data` is, if it is one of ours.
    pub fn find_frame(&self, data: &[u8]) -> Option<(usize, usize)> {
        self.video.iter().enumerate().find_map(|(layer, frames)| {
            frames
                .iter()
                .position(|f| f.data == data)
                .map(|index| (layer, index))
        })
    }
}

/// The media, encoded on first use.
pub fn media() -> Result<&'static EncodedMedia> {
    static MEDIA: OnceLock<Result<EncodedMedia, String>> = OnceLock::new();
    MEDIA
        .get_or_init(|| encode().map_err(|err| format!("{err:#}")))
        .as_ref()
        .map_err(|err| anyhow!("encoding test media: {err}"))
}

fn encode() -> Result<EncodedMedia> {
    let dir = std::env::temp_dir().join(format!("sightline-media-{}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    let result = encode_into(&dir);
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn encode_into(dir: &Path) -> Result<EncodedMedia> {
    let opus = encode_opus(dir)?;
    let video = encode_layers(dir, |layer| {
        vec![
            "videotestsrc".into(),
            format!("num-buffers={VIDEO_FRAMES}"),
            "pattern=smpte".into(),
            "horizontal-speed=4".into(),
            "!".into(),
            format!(
                "video/x-raw,width={},height={},framerate={VIDEO_FPS}/1",
                layer.width, layer.height
            ),
        ]
    })?;
    Ok(EncodedMedia { opus, video })
}

/// Each of [`Layer::ALL`] encoded as the browser would (VP8 at the layer's bitrate, a keyframe
/// every second) in `dir`, from the raw video the GStreamer elements `source(layer)` produce at
/// the layer's size.
pub(crate) fn encode_layers(
    dir: &Path,
    source: impl Fn(&Layer) -> Vec<String>,
) -> Result<[Vec<Vp8Frame>; 3]> {
    let mut video: [Vec<Vp8Frame>; 3] = Default::default();
    for (layer, frames) in Layer::ALL.iter().zip(&mut video) {
        let layer_dir = dir.join(layer.rid);
        let mut pipeline = source(layer);
        pipeline.extend([
            "!".into(),
            "vp8enc".into(),
            format!("keyframe-max-dist={VIDEO_FPS}"),
            format!("target-bitrate={}", layer.kbps * 1000),
            "deadline=1".into(),
            "cpu-used=8".into(),
            "!".into(),
            "multifilesink".into(),
            format!("location={}/%05d.vp8", dir_for(&layer_dir)?),
        ]);
        gst_launch(&pipeline.iter().map(String::as_str).collect::<Vec<_>>())?;
        *frames = vp8_frames(read_frames(&layer_dir)?, layer.rid)?;
    }
    Ok(video)
}

/// The tone, as Opus packets, encoded in `dir`.
pub(crate) fn encode_opus(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let audio_dir = dir.join("opus");
    gst_launch(&[
        "audiotestsrc",
        &format!("num-buffers={AUDIO_PACKETS}"),
        "wave=sine",
        "freq=440",
        "volume=0.5",
        "samplesperbuffer=960",
        "!",
        "audio/x-raw,rate=48000,channels=1",
        "!",
        "opusenc",
        "frame-size=20",
        "!",
        "multifilesink",
        &format!("location={}/%05d.opus", dir_for(&audio_dir)?),
    ])?;
    let opus = read_frames(&audio_dir)?;
    Ok(opus)
}

/// Encoded VP8 frames of layer `rid`, which must start with a keyframe.
pub(crate) fn vp8_frames(encoded: Vec<Vec<u8>>, rid: &str) -> Result<Vec<Vp8Frame>> {
    let frames: Vec<Vp8Frame> = encoded
        .into_iter()
        .map(|data| Vp8Frame {
            // RFC 6386 frame tag: the lowest bit of the first byte is 0 for a keyframe.
            keyframe: data.first().is_some_and(|b| b & 1 == 0),
            data,
        })
        .collect();
    if !frames.first().is_some_and(|f| f.keyframe) {
        bail!("the {rid} layer does not start with a keyframe");
    }
    Ok(frames)
}

fn dir_for(path: &Path) -> Result<String> {
    std::fs::create_dir_all(path)?;
    path.to_str()
        .map(str::to_owned)
        .context("temporary directory path is not UTF-8")
}

pub(crate) fn gst_launch(pipeline: &[&str]) -> Result<()> {
    let output = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline)
        .output()
        .context("running gst-launch-1.0 (GStreamer's tools; scripts/test installs them)")?;
    if !output.status.success() {
        bail!(
            "gst-launch-1.0 {} failed: {}",
            pipeline.join(" "),
            String::from_utf8_lossy(&output.stderr)
        );
    }
    Ok(())
}

/// Every file of a directory in name order, one encoded frame each.
pub(crate) fn read_frames(dir: &Path) -> Result<Vec<Vec<u8>>> {
    let mut paths: Vec<_> = std::fs::read_dir(dir)?
        .map(|entry| entry.map(|e| e.path()))
        .collect::<Result<_, _>>()?;
    paths.sort();
    let frames = paths
        .iter()
        .map(std::fs::read)
        .collect::<Result<Vec<_>, _>>()?;
    if frames.is_empty() {
        bail!("GStreamer wrote no frames into {}", dir.display());
    }
    Ok(frames)
}
