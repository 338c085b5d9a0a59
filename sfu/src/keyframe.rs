//! Keyframe requests towards a publisher, throttled.
//!
//! Every subscriber switching layers or joining late wants a keyframe; a publisher flooded with
//! PLIs spends its bitrate on keyframes and the picture gets worse for everyone. One request per
//! layer per interval serves all of them: the keyframe that answers it fans out to all.

use std::time::{Duration, Instant};

use crate::layer::Layer;

/// The default spacing of keyframe requests for one layer.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);

/// Remembers when a keyframe was last requested, per layer of one published track.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    last: [Option<Instant>; Layer::COUNT],
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        KeyframeThrottle::new(DEFAULT_INTERVAL)
    }
}

impl KeyframeThrottle {
    /// A throttle allowing one request per `interval` per layer.
    pub fn new(interval: Duration) -> KeyframeThrottle {
        KeyframeThrottle {
            interval,
            last: [None; Layer::COUNT],
        }
    }

    /// Whether a request for `layer` may go out at `now`; if so, it is counted as sent.
    pub fn try_request(&mut self, layer: Layer, now: Instant) -> bool {
        let slot = &mut self.last[layer.index()];
        let allowed = slot.is_none_or(|last| now.saturating_duration_since(last) >= self.interval);
        if allowed {
            *slot = Some(now);
        }
        allowed
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_request_per_interval_per_layer() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.try_request(Layer::High, at(0)));
        assert!(!throttle.try_request(Layer::High, at(10)));
        assert!(!throttle.try_request(Layer::High, at(499)));
        assert!(
            throttle.try_request(Layer::Low, at(499)),
            "layers are independent"
        );
        assert!(throttle.try_request(Layer::High, at(500)));
        assert!(!throttle.try_request(Layer::High, at(900)));
    }
}
