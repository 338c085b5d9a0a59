//! Keyframe requests towards a publisher, one outstanding per layer.
//!
//! Every subscriber switching layers or joining late wants a keyframe; a publisher flooded with
//! PLIs spends its bitrate on keyframes and the picture gets worse for everyone. A request for a
//! layer is outstanding until that layer's next keyframe arrives, and while it is, others are
//! not sent: the keyframe that answers it fans out to all who wait. Once it has arrived, the next
//! request may go out at once (a subscriber switching right after someone else's keyframe is
//! not made to wait), though never sooner than [`MIN_SPACING`] after the last one, so a client
//! flipping its tile size cannot make a publisher send keyframes back to back; a request that went
//! unanswered for an interval (lost, or ignored) is sent again. A subscriber's own requests
//! (PLIs after loss) are passed on at most once per interval, answered or not; one that comes
//! too soon is not dropped but deferred (as mediasoup's key frame request delay does): it goes
//! out when the interval is over, unless a keyframe of that layer arrived meanwhile. A browser
//! may not ask again soon (it asks when it notices damage), so a dropped request can leave its
//! picture broken until the publisher's next periodic keyframe.

use std::time::{Duration, Instant};

use crate::layer::Layer;

/// The default time after which an unanswered request for one layer is sent again.
pub const DEFAULT_INTERVAL: Duration = Duration::from_millis(500);
/// The least time between two requests for one layer, answered or not.
pub const MIN_SPACING: Duration = Duration::from_millis(100);

/// The outstanding keyframe request of each layer of one published track.
#[derive(Debug, Clone)]
pub struct KeyframeThrottle {
    interval: Duration,
    /// When each layer's last request was sent.
    sent: [Option<Instant>; Layer::COUNT],
    /// Whether that request is still waiting for its keyframe.
    outstanding: [bool; Layer::COUNT],
    /// A subscriber's request that came too soon and waits for the interval to end.
    deferred: [bool; Layer::COUNT],
}

impl Default for KeyframeThrottle {
    fn default() -> Self {
        KeyframeThrottle::new(DEFAULT_INTERVAL)
    }
}

impl KeyframeThrottle {
    /// A throttle that sends an unanswered request again after `interval`.
    pub fn new(interval: Duration) -> KeyframeThrottle {
        KeyframeThrottle {
            interval,
            sent: [None; Layer::COUNT],
            outstanding: [false; Layer::COUNT],
            deferred: [false; Layer::COUNT],
        }
    }

    /// Whether a request for `layer` may go out at `now`; if so, it is counted as outstanding.
    pub fn try_request(&mut self, layer: Layer, now: Instant) -> bool {
        let index = layer.index();
        let allowed = match self.sent[index] {
            None => true,
            Some(sent) => {
                let since = now.saturating_duration_since(sent);
                let wait = if self.outstanding[index] {
                    self.interval
                } else {
                    MIN_SPACING
                };
                since >= wait
            }
        };
        if allowed {
            self.sent[index] = Some(now);
            self.outstanding[index] = true;
        }
        allowed
    }

    /// Whether a subscriber's own keyframe request (a PLI after loss) for `layer` may be passed
    /// on at `now`: at most one per interval, answered or not, so one lossy or hostile
    /// subscriber cannot make the publisher send keyframe after keyframe. One that may not is
    /// deferred: [`KeyframeThrottle::take_deferred`] sends it when it may go.
    pub fn try_relay(&mut self, layer: Layer, now: Instant) -> bool {
        let index = layer.index();
        let allowed = self.sent[index]
            .is_none_or(|sent| now.saturating_duration_since(sent) >= self.interval);
        if allowed {
            self.sent[index] = Some(now);
            self.outstanding[index] = true;
        }
        self.deferred[index] = !allowed;
        allowed
    }

    /// Whether a subscriber's request for `layer` waits for its interval to end. Cheap enough to
    /// ask on every packet of the layer.
    pub fn deferred(&self, layer: Layer) -> bool {
        self.deferred[layer.index()]
    }

    /// Takes the deferred request for `layer` if it may go out at `now`: then it counts as sent
    /// and is no longer deferred.
    pub fn take_deferred(&mut self, layer: Layer, now: Instant) -> bool {
        self.deferred[layer.index()] && self.try_relay(layer, now)
    }

    /// Forgets the deferred request for `layer` (nobody who asked still gets that layer).
    pub fn cancel_deferred(&mut self, layer: Layer) {
        self.deferred[layer.index()] = false;
    }

    /// A keyframe of `layer` arrived: its request, if any, is answered, and a deferred one too.
    pub fn keyframe_arrived(&mut self, layer: Layer) {
        self.outstanding[layer.index()] = false;
        self.deferred[layer.index()] = false;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_outstanding_request_per_layer() {
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
        assert!(
            throttle.try_request(Layer::High, at(500)),
            "unanswered: asked again"
        );
        assert!(!throttle.try_request(Layer::High, at(900)));
    }

    #[test]
    fn an_answered_request_lets_the_next_go_at_once() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.try_request(Layer::High, at(0)));
        throttle.keyframe_arrived(Layer::Low);
        assert!(
            !throttle.try_request(Layer::High, at(40)),
            "another layer's keyframe answers nothing"
        );
        throttle.keyframe_arrived(Layer::High);
        assert!(
            !throttle.try_request(Layer::High, at(60)),
            "not sooner than the least spacing"
        );
        assert!(throttle.try_request(Layer::High, at(100)));
        assert!(
            !throttle.try_request(Layer::High, at(300)),
            "outstanding again"
        );
    }

    #[test]
    fn a_subscribers_own_requests_go_at_most_once_per_interval() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.try_relay(Layer::Medium, at(0)));
        throttle.keyframe_arrived(Layer::Medium);
        assert!(
            !throttle.try_relay(Layer::Medium, at(200)),
            "answered, but a PLI flood stays throttled"
        );
        assert!(throttle.try_relay(Layer::Medium, at(500)));
    }

    #[test]
    fn a_request_that_came_too_soon_goes_when_the_interval_is_over() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        // The SFU asked for a keyframe for a layer switch, and it came.
        assert!(throttle.try_request(Layer::High, at(0)));
        throttle.keyframe_arrived(Layer::High);
        // A viewer lost it and asks: too soon, so it waits.
        assert!(!throttle.try_relay(Layer::High, at(200)));
        assert!(throttle.deferred(Layer::High));
        assert!(!throttle.take_deferred(Layer::Low, at(600)), "per layer");
        assert!(!throttle.take_deferred(Layer::High, at(499)));
        assert!(throttle.take_deferred(Layer::High, at(500)));
        assert!(!throttle.deferred(Layer::High));
        assert!(!throttle.take_deferred(Layer::High, at(600)), "sent once");
        // One nobody needs any more is forgotten.
        assert!(!throttle.try_relay(Layer::High, at(700)));
        throttle.cancel_deferred(Layer::High);
        assert!(!throttle.take_deferred(Layer::High, at(1500)));
    }

    #[test]
    fn a_keyframe_answers_a_deferred_request() {
        let start = Instant::now();
        let at = |ms| start + Duration::from_millis(ms);
        let mut throttle = KeyframeThrottle::default();
        assert!(throttle.try_relay(Layer::Low, at(0)));
        assert!(!throttle.try_relay(Layer::Low, at(100)));
        throttle.keyframe_arrived(Layer::Low);
        assert!(!throttle.take_deferred(Layer::Low, at(600)));
        assert!(!throttle.take_deferred(Layer::Low, at(1200)));
    }
}
