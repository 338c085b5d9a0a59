//! Decoded frames as the checks see them: packed 8-bit RGB.

use crate::error::ProctorError;
use crate::frame::LumaStats;

/// A packed RGB image (3 bytes per pixel, rows without padding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RgbImage {
    /// Width in pixels.
    pub width: usize,
    /// Height in pixels.
    pub height: usize,
    /// `width * height * 3` bytes.
    pub data: Vec<u8>,
}

impl RgbImage {
    /// An image over `data`; fails unless it holds exactly `width * height` pixels.
    pub fn new(width: usize, height: usize, data: Vec<u8>) -> Result<RgbImage, ProctorError> {
        let expected = width
            .checked_mul(height)
            .and_then(|n| n.checked_mul(3))
            .ok_or_else(|| ProctorError::Frame(format!("{width}×{height} is too large")))?;
        if data.len() != expected || width == 0 || height == 0 {
            return Err(ProctorError::Frame(format!(
                "{width}×{height} RGB needs {expected} bytes, got {}",
                data.len()
            )));
        }
        Ok(RgbImage {
            width,
            height,
            data,
        })
    }

    /// The colour at (`x`, `y`) in pixel coordinates (pixel centres at +0.5), bilinear, clamped
    /// to the edges.
    pub fn sample(&self, x: f32, y: f32) -> [f32; 3] {
        let max_x = (self.width - 1) as f32;
        let max_y = (self.height - 1) as f32;
        let x = x.clamp(0.0, max_x);
        let y = y.clamp(0.0, max_y);
        let (x0, y0) = (x.floor() as usize, y.floor() as usize);
        let (x1, y1) = ((x0 + 1).min(self.width - 1), (y0 + 1).min(self.height - 1));
        let (fx, fy) = (x - x0 as f32, y - y0 as f32);
        let at = |x: usize, y: usize, c: usize| f32::from(self.data[(y * self.width + x) * 3 + c]);
        let mut out = [0.0; 3];
        for (c, value) in out.iter_mut().enumerate() {
            let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
            let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
            *value = top * (1.0 - fy) + bottom * fy;
        }
        out
    }

    /// The luma plane (BT.601), one byte per pixel.
    pub fn luma(&self) -> Vec<u8> {
        self.data
            .chunks_exact(3)
            .map(|p| {
                let y = 0.299 * f32::from(p[0]) + 0.587 * f32::from(p[1]) + 0.114 * f32::from(p[2]);
                y.round().clamp(0.0, 255.0) as u8
            })
            .collect()
    }

    /// Brightness statistics of the image.
    pub fn luma_stats(&self) -> Option<LumaStats> {
        LumaStats::of(&self.luma(), self.width, self.height, self.width)
    }

    /// The image scaled to fit within `max_width` × `max_height` (never enlarged).
    pub fn fit_within(&self, max_width: usize, max_height: usize) -> RgbImage {
        let scale = (max_width as f32 / self.width as f32)
            .min(max_height as f32 / self.height as f32)
            .min(1.0);
        let width = ((self.width as f32 * scale).round() as usize).max(1);
        let height = ((self.height as f32 * scale).round() as usize).max(1);
        let step = (
            self.width as f32 / width as f32,
            self.height as f32 / height as f32,
        );
        let mut data = Vec::with_capacity(width * height * 3);
        for y in 0..height {
            for x in 0..width {
                let pixel = self.sample(
                    (x as f32 + 0.5) * step.0 - 0.5,
                    (y as f32 + 0.5) * step.1 - 0.5,
                );
                data.extend(pixel.iter().map(|v| v.round().clamp(0.0, 255.0) as u8));
            }
        }
        RgbImage {
            width,
            height,
            data,
        }
    }

    /// The image as a JPEG of quality `quality` (1–100).
    pub fn to_jpeg(&self, quality: u8) -> Result<Vec<u8>, ProctorError> {
        let (width, height) = (
            u16::try_from(self.width).map_err(|_| ProctorError::Snapshot("too wide".into()))?,
            u16::try_from(self.height).map_err(|_| ProctorError::Snapshot("too tall".into()))?,
        );
        let mut out = Vec::new();
        jpeg_encoder::Encoder::new(&mut out, quality)
            .encode(&self.data, width, height, jpeg_encoder::ColorType::Rgb)
            .map_err(|e| ProctorError::Snapshot(e.to_string()))?;
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gradient(width: usize, height: usize) -> RgbImage {
        let data = (0..width * height)
            .flat_map(|i| {
                let v = (i % width * 255 / (width - 1)) as u8;
                [v, v, v]
            })
            .collect();
        RgbImage::new(width, height, data).expect("whole image")
    }

    #[test]
    fn a_short_buffer_is_refused() {
        assert!(RgbImage::new(4, 4, vec![0; 47]).is_err());
        assert!(RgbImage::new(0, 4, vec![]).is_err());
    }

    #[test]
    fn sampling_interpolates_between_pixels_and_clamps_at_the_edges() {
        let image = gradient(3, 1); // 0, 127, 255
        assert_eq!(image.sample(0.5, 0.0)[0], 63.5);
        assert_eq!(image.sample(-4.0, 0.0)[0], 0.0);
        assert_eq!(image.sample(9.0, 3.0)[0], 255.0);
    }

    #[test]
    fn fitting_keeps_the_aspect_ratio_and_a_snapshot_is_a_jpeg() {
        let image = gradient(640, 360);
        let small = image.fit_within(320, 240);
        assert_eq!((small.width, small.height), (320, 180));
        let jpeg = small.to_jpeg(80).expect("encodes");
        assert_eq!(&jpeg[..2], &[0xFF, 0xD8]);
        assert_eq!(image.fit_within(1920, 1080).width, 640, "never enlarged");
    }
}
