//! What proctoring costs per sampled frame: one face detection with each BlazeFace model (the
//! front model on every sample, the back model to confirm "no face"), and the frame statistics
//! every sample gets (luma, change, the side view's thumbnail). The models come from `models/`
//! (scripts/test installs them) or `SIGHTLINE_MODELS_DIR`.

use std::path::PathBuf;

use criterion::{Criterion, criterion_group, criterion_main};
use sightline_proctor::side::thumbnail;
use sightline_proctor::watch::{BACK_MODEL, FRONT_MODEL};
use sightline_proctor::{FaceDetector, LumaStats, RgbImage, mean_abs_difference};
use sightline_testkit::{SCENE_SIZE, Scene, scene_frame};

fn models() -> PathBuf {
    std::env::var_os("SIGHTLINE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| concat!(env!("CARGO_MANIFEST_DIR"), "/../models").into())
}

/// The one-face scene at the size the checks see it (320 wide, as the decoder scales it).
fn frame() -> RgbImage {
    let (width, height) = SCENE_SIZE;
    let full = RgbImage::new(
        width,
        height,
        scene_frame(Scene::OneFace, 0).expect("scene"),
    )
    .expect("image");
    full.fit_within(320, 240)
}

fn detection(c: &mut Criterion) {
    let image = frame();
    for (name, file) in [("front_128", FRONT_MODEL), ("back_256", BACK_MODEL)] {
        let detector = FaceDetector::load(&models().join(file)).expect("model");
        c.bench_function(&format!("proctor/detect_{name}"), |b| {
            b.iter(|| detector.detect(std::hint::black_box(&image), 0.75))
        });
    }
}

fn statistics(c: &mut Criterion) {
    let image = frame();
    let previous = image.luma();
    c.bench_function("proctor/frame_statistics", |b| {
        b.iter(|| {
            let luma = image.luma();
            let stats = LumaStats::of(&luma, image.width, image.height, image.width);
            let change = mean_abs_difference(&previous, &luma);
            let thumb = thumbnail(&luma, image.width, image.height);
            (stats, change, thumb)
        })
    });
}

criterion_group!(benches, detection, statistics);
criterion_main!(benches);
