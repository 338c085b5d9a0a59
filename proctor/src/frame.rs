//! What the checks need to know about a frame, computed from its luma (Y) plane: how bright and
//! how uniform it is, and how much it changed since the previous frame.

/// Brightness statistics of one frame's luma plane (0–255).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LumaStats {
    /// Mean luma.
    pub mean: f32,
    /// Variance of the luma: near zero for a covered lens or a uniform picture.
    pub variance: f32,
}

impl LumaStats {
    /// The statistics of a `width` × `height` luma plane laid out with `stride` bytes per row;
    /// `None` when the plane is smaller than that says (a malformed frame).
    pub fn of(plane: &[u8], width: usize, height: usize, stride: usize) -> Option<LumaStats> {
        if width == 0 || height == 0 || stride < width {
            return None;
        }
        let needed = stride.checked_mul(height - 1)?.checked_add(width)?;
        if plane.len() < needed {
            return None;
        }
        let (mut sum, mut squares) = (0u64, 0u64);
        for row in plane.chunks(stride).take(height) {
            for &y in &row[..width] {
                sum += u64::from(y);
                squares += u64::from(y) * u64::from(y);
            }
        }
        let count = (width * height) as f64;
        let mean = sum as f64 / count;
        let variance = (squares as f64 / count - mean * mean).max(0.0);
        Some(LumaStats {
            mean: mean as f32,
            variance: variance as f32,
        })
    }
}

/// Mean absolute difference (0–255) between two luma planes of the same size, or `None` when
/// their sizes differ (the picture changed size: it is not frozen).
pub fn mean_abs_difference(previous: &[u8], current: &[u8]) -> Option<f32> {
    if previous.len() != current.len() || current.is_empty() {
        return None;
    }
    let total: u64 = previous
        .iter()
        .zip(current)
        .map(|(a, b)| u64::from(a.abs_diff(*b)))
        .sum();
    Some((total as f64 / current.len() as f64) as f32)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_uniform_plane_has_its_value_as_mean_and_no_variance() {
        let plane = vec![16u8; 8 * 4];
        let stats = LumaStats::of(&plane, 8, 4, 8).expect("a whole plane");
        assert_eq!(stats.mean, 16.0);
        assert_eq!(stats.variance, 0.0);
    }

    #[test]
    fn stride_padding_is_not_counted_and_short_planes_are_refused() {
        // Two rows of 2 pixels (0 and 200) with 2 bytes of padding each (255, ignored).
        let plane = [0, 200, 255, 255, 0, 200, 255, 255];
        let stats = LumaStats::of(&plane, 2, 2, 4).expect("a whole plane");
        assert_eq!(stats.mean, 100.0);
        assert_eq!(stats.variance, 10_000.0);
        assert_eq!(LumaStats::of(&plane[..5], 2, 2, 4), None);
        assert_eq!(LumaStats::of(&plane, 2, 2, 1), None, "stride below width");
        assert_eq!(LumaStats::of(&plane, 0, 2, 4), None);
    }

    #[test]
    fn difference_is_the_mean_change_per_pixel() {
        assert_eq!(
            mean_abs_difference(&[10, 20, 30, 40], &[10, 20, 30, 40]),
            Some(0.0)
        );
        assert_eq!(mean_abs_difference(&[0, 0, 0, 0], &[4, 0, 8, 0]), Some(3.0));
        assert_eq!(mean_abs_difference(&[0, 0], &[0, 0, 0]), None);
        assert_eq!(mean_abs_difference(&[], &[]), None);
    }
}
