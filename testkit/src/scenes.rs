//! Camera pictures for the proctoring tests, made from one photograph (`data/one_face.png`):
//! one face, two faces, no face, a black picture, and a frozen one. Each is a 640×480 picture
//! that moves a few pixels from side to side (as a person in front of a laptop does), except the
//! frozen one, which is the one-face picture held still.
//!
//! [`scene_media`] encodes a scene as the publisher sends it (VP8 in the three simulcast sizes,
//! the same tone as [`crate::media`]), once per process and scene.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, OnceLock};

use anyhow::{Context, Result, anyhow, bail};

use crate::media::{EncodedMedia, VIDEO_FPS, encode_layers, encode_opus, gst_launch};

/// Width and height of a scene picture.
pub const SCENE_SIZE: (usize, usize) = (640, 480);
/// Frames in a scene's loop: 1.5 s, one side-to-side movement.
const LOOP_FRAMES: usize = 45;
/// How far the picture moves to each side, in pixels.
const SWAY: f32 = 6.0;
/// Grey behind the photograph.
const BACKDROP: u8 = 96;

/// What the camera sees.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scene {
    /// One person, head and shoulders, filling the height.
    OneFace,
    /// Two people side by side.
    TwoFaces,
    /// The lower half of the photograph: a space suit and a helmet, no face.
    NoFace,
    /// A covered lens.
    Black,
    /// The one-face picture, not moving at all (a photo held to the camera).
    Frozen,
}

impl Scene {
    /// Every scene.
    pub const ALL: [Scene; 5] = [
        Scene::OneFace,
        Scene::TwoFaces,
        Scene::NoFace,
        Scene::Black,
        Scene::Frozen,
    ];
}

/// The photograph every scene is made from.
pub fn photo_path() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("data/one_face.png")
}

/// A crop of the photograph (`left`, `top`, `width`, `height` in its 512×512 pixels) scaled to
/// `out` pixels, as packed RGB.
pub fn photo_crop(crop: (usize, usize, usize, usize), out: (usize, usize)) -> Result<Vec<u8>> {
    let (left, top, width, height) = crop;
    if left + width > 512 || top + height > 512 {
        bail!("crop {crop:?} is outside the 512×512 photograph");
    }
    let dir = tempfile_dir("crop")?;
    let target = dir.join("crop.rgb");
    let result = gst_launch(&[
        "filesrc",
        &format!("location={}", photo_path().display()),
        "!",
        "pngdec",
        "!",
        "videoconvert",
        "!",
        "videocrop",
        &format!("left={left}"),
        &format!("top={top}"),
        &format!("right={}", 512 - left - width),
        &format!("bottom={}", 512 - top - height),
        "!",
        "videoscale",
        "!",
        &format!("video/x-raw,format=RGB,width={},height={}", out.0, out.1),
        "!",
        "filesink",
        &format!("location={}", target.display()),
    ])
    .and_then(|()| std::fs::read(&target).context("reading the crop"));
    let _ = std::fs::remove_dir_all(&dir);
    let data = result?;
    // GStreamer pads RGB rows to 4 bytes; keep the rows packed.
    let stride = (out.0 * 3).div_ceil(4) * 4;
    if data.len() != stride * out.1 {
        bail!("crop is {} bytes, expected {}", data.len(), stride * out.1);
    }
    Ok(data
        .chunks(stride)
        .flat_map(|row| row[..out.0 * 3].to_vec())
        .collect())
}

/// Frame `index` of `scene`'s loop: packed RGB of [`SCENE_SIZE`].
pub fn scene_frame(scene: Scene, index: usize) -> Result<Vec<u8>> {
    let parts = scene_parts(scene)?;
    let phase = (index % LOOP_FRAMES) as f32 / LOOP_FRAMES as f32;
    let sway = match scene {
        Scene::Frozen | Scene::Black => 0,
        _ => (SWAY * (phase * std::f32::consts::TAU).sin()).round() as isize,
    };
    let (width, height) = SCENE_SIZE;
    let fill = if scene == Scene::Black { 0 } else { BACKDROP };
    let mut frame = vec![fill; width * height * 3];
    for part in parts {
        paste(&mut frame, part, sway);
    }
    Ok(frame)
}

/// A piece of the photograph placed on the picture.
struct Part {
    rgb: Vec<u8>,
    size: (usize, usize),
    at: (isize, isize),
}

fn scene_parts(scene: Scene) -> Result<&'static [Part]> {
    static PARTS: OnceLock<Mutex<HashMap<Scene, &'static [Part]>>> = OnceLock::new();
    let parts = PARTS.get_or_init(Default::default);
    let mut parts = parts.lock().map_err(|_| anyhow!("scene cache poisoned"))?;
    if let Some(found) = parts.get(&scene) {
        return Ok(found);
    }
    // Head and shoulders: 192×256 of the photograph around the face.
    const HEAD: (usize, usize, usize, usize) = (120, 0, 192, 256);
    let made: Vec<Part> = match scene {
        Scene::OneFace | Scene::Frozen => vec![Part {
            rgb: photo_crop(HEAD, (360, 480))?,
            size: (360, 480),
            at: (140, 0),
        }],
        Scene::TwoFaces => {
            let rgb = photo_crop(HEAD, (300, 400))?;
            vec![
                Part {
                    rgb: rgb.clone(),
                    size: (300, 400),
                    at: (14, 40),
                },
                Part {
                    rgb,
                    size: (300, 400),
                    at: (326, 40),
                },
            ]
        }
        Scene::NoFace => vec![Part {
            rgb: photo_crop((0, 300, 512, 212), (640, 480))?,
            size: (640, 480),
            at: (0, 0),
        }],
        Scene::Black => Vec::new(),
    };
    let leaked: &'static [Part] = Box::leak(made.into_boxed_slice());
    parts.insert(scene, leaked);
    Ok(leaked)
}

fn paste(frame: &mut [u8], part: &Part, sway: isize) {
    let (width, height) = SCENE_SIZE;
    for row in 0..part.size.1 {
        let y = part.at.1 + row as isize;
        if y < 0 || y >= height as isize {
            continue;
        }
        for col in 0..part.size.0 {
            let x = part.at.0 + sway + col as isize;
            if x < 0 || x >= width as isize {
                continue;
            }
            let from = (row * part.size.0 + col) * 3;
            let to = (y as usize * width + x as usize) * 3;
            frame[to..to + 3].copy_from_slice(&part.rgb[from..from + 3]);
        }
    }
}

/// `scene` encoded as the test publisher sends it, on first use (seconds of work: a publisher
/// that will switch scenes should fetch them all before its media flows). One slot per scene,
/// so a scene being encoded never holds up a lookup of another.
pub fn scene_media(scene: Scene) -> Result<&'static EncodedMedia> {
    static MEDIA: [OnceLock<Result<EncodedMedia, String>>; Scene::ALL.len()] =
        [const { OnceLock::new() }; Scene::ALL.len()];
    let index = Scene::ALL
        .iter()
        .position(|known| *known == scene)
        .context("a scene of Scene::ALL")?;
    MEDIA[index]
        .get_or_init(|| {
            let dir = tempfile_dir("scene").map_err(|err| format!("{err:#}"))?;
            let result = encode_scene(scene, &dir);
            let _ = std::fs::remove_dir_all(&dir);
            result.map_err(|err| format!("{err:#}"))
        })
        .as_ref()
        .map_err(|err| anyhow!("encoding {scene:?}: {err}"))
}

fn encode_scene(scene: Scene, dir: &Path) -> Result<EncodedMedia> {
    let raw = dir.join("scene.rgb");
    let mut bytes = Vec::new();
    for index in 0..LOOP_FRAMES * 2 {
        bytes.extend(scene_frame(scene, index)?);
    }
    std::fs::write(&raw, bytes).context("writing the raw scene")?;
    let opus = encode_opus(dir)?;
    let (width, height) = SCENE_SIZE;
    let video = encode_layers(dir, |layer| {
        vec![
            "filesrc".into(),
            format!("location={}", raw.display()),
            "!".into(),
            "rawvideoparse".into(),
            "format=rgb".into(),
            format!("width={width}"),
            format!("height={height}"),
            format!("framerate={VIDEO_FPS}/1"),
            "!".into(),
            "videoscale".into(),
            "!".into(),
            "videoconvert".into(),
            "!".into(),
            format!(
                "video/x-raw,format=I420,width={},height={}",
                layer.width, layer.height
            ),
        ]
    })?;
    Ok(EncodedMedia { opus, video })
}

fn tempfile_dir(what: &str) -> Result<PathBuf> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir = std::env::temp_dir().join(format!("sightline-{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
