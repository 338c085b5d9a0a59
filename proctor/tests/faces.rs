//! The face detector on pictures made from the test photograph: it must find the one face
//! however the picture was taken (mirrored, darker, smaller, through a low-bitrate VP8 round
//! trip), find two where there are two, and none where there is none.

use std::path::PathBuf;

use sightline_proctor::{FaceDetector, FaceRules, RgbImage};
use sightline_testkit::{SCENE_SIZE, Scene, scene_frame};

fn models() -> PathBuf {
    std::env::var_os("SIGHTLINE_MODELS_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../models")))
}

fn front() -> FaceDetector {
    let path = models().join(sightline_proctor::watch::FRONT_MODEL);
    FaceDetector::load(&path)
        .unwrap_or_else(|err| panic!("{err} (scripts/test installs the models into models/)"))
}

fn back() -> FaceDetector {
    FaceDetector::load(&models().join(sightline_proctor::watch::BACK_MODEL)).expect("back model")
}

fn scene(scene: Scene) -> RgbImage {
    let (width, height) = SCENE_SIZE;
    RgbImage::new(width, height, scene_frame(scene, 0).expect("scene")).expect("image")
}

fn count(detector: &FaceDetector, image: &RgbImage) -> u32 {
    let faces = detector.detect(image, 0.5).expect("detection runs");
    FaceRules::default().count(&faces)
}

fn mirrored(image: &RgbImage) -> RgbImage {
    let mut data = Vec::with_capacity(image.data.len());
    for row in image.data.chunks(image.width * 3) {
        for pixel in row.chunks(3).rev() {
            data.extend_from_slice(pixel);
        }
    }
    RgbImage::new(image.width, image.height, data).expect("image")
}

/// Darker by `stops` (each stop halves the light), in linear light as a camera would see it.
fn darkened(image: &RgbImage, stops: i32) -> RgbImage {
    let factor = 0.5f32.powi(stops);
    let data = image
        .data
        .iter()
        .map(|&v| {
            let linear = (f32::from(v) / 255.0).powf(2.2) * factor;
            (linear.powf(1.0 / 2.2) * 255.0).round() as u8
        })
        .collect();
    RgbImage::new(image.width, image.height, data).expect("image")
}

#[test]
fn one_face_is_found_however_the_picture_was_taken() {
    let detector = front();
    let face = scene(Scene::OneFace);
    assert_eq!(count(&detector, &face), 1, "the plain picture");
    assert_eq!(count(&detector, &mirrored(&face)), 1, "mirrored");
    assert_eq!(count(&detector, &face.fit_within(160, 120)), 1, "160×120");
    for stops in 1..=2 {
        assert_eq!(
            count(&detector, &darkened(&face, stops)),
            1,
            "{stops} stops darker"
        );
    }
    // The larger model, which confirms "no face", still sees it 4 stops darker.
    let back = back();
    for stops in 3..=4 {
        assert_eq!(
            count(&back, &darkened(&face, stops)),
            1,
            "{stops} stops darker"
        );
    }
}

#[test]
fn two_faces_are_two_and_no_face_is_none() {
    let detector = front();
    assert_eq!(count(&detector, &scene(Scene::TwoFaces)), 2);
    assert_eq!(count(&detector, &scene(Scene::NoFace)), 0);
    assert_eq!(count(&back(), &scene(Scene::NoFace)), 0);
    assert_eq!(count(&detector, &scene(Scene::Black)), 0);
}

#[test]
fn the_face_box_is_where_the_face_is() {
    let faces = front().detect(&scene(Scene::OneFace), 0.75).expect("runs");
    let face = faces.first().expect("a face");
    // The head is in the middle third of the picture, in its upper half.
    assert!((0.33..0.67).contains(&face.center.0), "{face:?}");
    assert!((0.1..0.5).contains(&face.center.1), "{face:?}");
    assert!(face.size.0 > 0.1 && face.size.0 < 0.5, "{face:?}");
}
