//! Simulcast layers: which ones exist, how much each one costs, which one a subscriber gets.

use std::time::{Duration, Instant};

/// One simulcast encoding of a video track. Browsers publish three, named by RID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Layer {
    /// RID `q`: quarter resolution.
    Low,
    /// RID `h`: half resolution.
    Medium,
    /// RID `f`: full resolution.
    High,
}

impl Layer {
    /// Number of layers.
    pub const COUNT: usize = 3;
    /// Every layer, lowest first.
    pub const ALL: [Layer; Layer::COUNT] = [Layer::Low, Layer::Medium, Layer::High];

    /// Position in [`Layer::ALL`].
    pub fn index(self) -> usize {
        match self {
            Layer::Low => 0,
            Layer::Medium => 1,
            Layer::High => 2,
        }
    }

    /// The layer a simulcast RID names (`q`, `h`, `f`), if any.
    pub fn from_rid(rid: &str) -> Option<Layer> {
        match rid {
            "q" => Some(Layer::Low),
            "h" => Some(Layer::Medium),
            "f" => Some(Layer::High),
            _ => None,
        }
    }

    /// The quality whose best layer this is.
    pub fn quality(self) -> Quality {
        match self {
            Layer::Low => Quality::Low,
            Layer::Medium => Quality::Medium,
            Layer::High => Quality::High,
        }
    }

    /// The RID this layer is published under.
    pub fn rid(self) -> &'static str {
        match self {
            Layer::Low => "q",
            Layer::Medium => "h",
            Layer::High => "f",
        }
    }
}

/// The quality a subscriber asks for, from the size and visibility of its video tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Quality {
    /// The tile is hidden: send no video at all.
    Off,
    /// A thumbnail.
    Low,
    /// A medium tile.
    Medium,
    /// A large or full-screen tile.
    High,
}

impl Quality {
    /// The best layer this quality can use, or `None` for [`Quality::Off`].
    pub fn max_layer(self) -> Option<Layer> {
        match self {
            Quality::Off => None,
            Quality::Low => Some(Layer::Low),
            Quality::Medium => Some(Layer::Medium),
            Quality::High => Some(Layer::High),
        }
    }
}

/// Chooses the layer to send one subscriber.
#[derive(Debug, Clone, Copy)]
pub struct LayerSelector {
    /// Share of the budget a layer may use; the rest absorbs bitrate spikes (keyframes).
    pub headroom: f64,
}

impl Default for LayerSelector {
    fn default() -> Self {
        LayerSelector { headroom: 0.85 }
    }
}

impl LayerSelector {
    /// The best layer that is being published (`bitrates[i]` is `Some` for live layers), is no
    /// better than `quality`, and fits `budget_bps` (unlimited when the estimate is not known yet).
    /// If none fits, the lowest live layer within `quality`, so video degrades rather than
    /// disappears. `None` when the tile is off or no layer within it is live (see
    /// [`LayerSelector::above`]).
    pub fn select(
        &self,
        quality: Quality,
        budget_bps: Option<u64>,
        bitrates: &[Option<u64>; Layer::COUNT],
    ) -> Option<Layer> {
        let max = quality.max_layer()?;
        let within = Layer::ALL
            .into_iter()
            .filter(move |layer| *layer <= max)
            .filter(|layer| bitrates[layer.index()].is_some());
        let fits = |layer: &Layer| match (budget_bps, bitrates[layer.index()]) {
            (Some(budget), Some(rate)) => (rate as f64) <= (budget as f64) * self.headroom,
            _ => true,
        };
        within.clone().filter(fits).max().or_else(|| within.min())
    }

    /// The lowest live layer better than `quality`: what a subscriber gets when no layer within
    /// its quality arrives (a publisher may stop its lower layers), since a picture that costs
    /// more than asked beats a frozen one. `None` when the tile is off or nothing above is live.
    pub fn above(&self, quality: Quality, bitrates: &[Option<u64>; Layer::COUNT]) -> Option<Layer> {
        let max = quality.max_layer()?;
        Layer::ALL
            .into_iter()
            .filter(|layer| *layer > max)
            .find(|layer| bitrates[layer.index()].is_some())
    }
}

/// Bytes per second of one stream over the last second, in ten 100 ms buckets: O(1) per packet,
/// no allocation.
#[derive(Debug, Clone)]
pub struct BitrateMeter {
    buckets: [u64; BitrateMeter::BUCKETS],
    current: usize,
    bucket_start: Option<Instant>,
}

impl Default for BitrateMeter {
    fn default() -> Self {
        BitrateMeter::new()
    }
}

impl BitrateMeter {
    const BUCKETS: usize = 10;
    const BUCKET: Duration = Duration::from_millis(100);
    /// How far back a meter looks (its buckets together): a stream silent for this long reads
    /// as absent.
    pub const WINDOW: Duration = Duration::from_secs(1);

    /// An empty meter.
    pub fn new() -> BitrateMeter {
        BitrateMeter {
            buckets: [0; BitrateMeter::BUCKETS],
            current: 0,
            bucket_start: None,
        }
    }

    fn advance(&mut self, now: Instant) {
        let Some(start) = self.bucket_start else {
            self.bucket_start = Some(now);
            return;
        };
        let elapsed = now.saturating_duration_since(start);
        let steps = (elapsed.as_millis() / BitrateMeter::BUCKET.as_millis()) as usize;
        if steps == 0 {
            return;
        }
        for _ in 0..steps.min(BitrateMeter::BUCKETS) {
            self.current = (self.current + 1) % BitrateMeter::BUCKETS;
            self.buckets[self.current] = 0;
        }
        let step = BitrateMeter::BUCKET.saturating_mul(u32::try_from(steps).unwrap_or(u32::MAX));
        self.bucket_start = start.checked_add(step).or(Some(now));
    }

    /// Counts a packet of `bytes` arriving at `now`.
    pub fn record(&mut self, bytes: usize, now: Instant) {
        self.advance(now);
        self.buckets[self.current] = self.buckets[self.current].saturating_add(bytes as u64);
    }

    /// Bits per second over the last second as of `now`; `None` if nothing arrived in it.
    pub fn bps(&mut self, now: Instant) -> Option<u64> {
        self.advance(now);
        self.peek_bps(now)
    }

    /// Like [`BitrateMeter::bps`] without moving the window: buckets older than a second as of
    /// `now` are left out, so a layer that stopped reads as absent.
    pub fn peek_bps(&self, now: Instant) -> Option<u64> {
        let start = self.bucket_start?;
        let stale =
            now.saturating_duration_since(start).as_millis() / BitrateMeter::BUCKET.as_millis();
        if stale as usize >= BitrateMeter::BUCKETS {
            return None;
        }
        // Buckets are a ring ending at `current`; the `stale` newest slots would be zeroed by an
        // advance to `now`, so the oldest ones past them are what still counts.
        let keep = BitrateMeter::BUCKETS - stale as usize;
        let bytes: u64 = (0..keep)
            .map(|back| {
                let index = (self.current + BitrateMeter::BUCKETS - back) % BitrateMeter::BUCKETS;
                self.buckets[index]
            })
            .sum();
        (bytes > 0).then_some(bytes.saturating_mul(8))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_LIVE: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_500_000)];

    #[test]
    fn rids_map_to_layers() {
        for layer in Layer::ALL {
            assert_eq!(Layer::from_rid(layer.rid()), Some(layer));
        }
        assert_eq!(Layer::from_rid("x"), None);
    }

    #[test]
    fn best_layer_within_quality_and_budget() {
        let selector = LayerSelector::default();
        assert_eq!(
            selector.select(Quality::High, None, &ALL_LIVE),
            Some(Layer::High)
        );
        assert_eq!(
            selector.select(Quality::Medium, None, &ALL_LIVE),
            Some(Layer::Medium)
        );
        assert_eq!(
            selector.select(Quality::High, Some(1_000_000), &ALL_LIVE),
            Some(Layer::Medium)
        );
        assert_eq!(
            selector.select(Quality::High, Some(2_000_000), &ALL_LIVE),
            Some(Layer::High)
        );
    }

    #[test]
    fn degrades_to_lowest_and_skips_missing_layers() {
        let selector = LayerSelector::default();
        assert_eq!(
            selector.select(Quality::High, Some(10_000), &ALL_LIVE),
            Some(Layer::Low)
        );
        let no_high = [Some(150_000), Some(500_000), None];
        assert_eq!(
            selector.select(Quality::High, None, &no_high),
            Some(Layer::Medium)
        );
        let only_high = [None, None, Some(1_500_000)];
        assert_eq!(selector.select(Quality::Low, None, &only_high), None);
        assert_eq!(selector.select(Quality::Off, None, &ALL_LIVE), None);
    }

    #[test]
    fn above_a_quality_is_the_lowest_live_layer_better_than_it() {
        let selector = LayerSelector::default();
        let only_high = [None, None, Some(1_500_000)];
        assert_eq!(selector.above(Quality::Low, &only_high), Some(Layer::High));
        let no_low = [None, Some(500_000), Some(1_500_000)];
        assert_eq!(selector.above(Quality::Low, &no_low), Some(Layer::Medium));
        assert_eq!(selector.above(Quality::High, &ALL_LIVE), None);
        assert_eq!(selector.above(Quality::Off, &only_high), None);
        assert_eq!(selector.above(Quality::Low, &[None; 3]), None);
    }

    #[test]
    fn meter_measures_the_last_second() {
        let start = Instant::now();
        let mut meter = BitrateMeter::new();
        assert_eq!(meter.bps(start), None);
        // 50 packets of 1000 bytes over one second: 400 kbit/s.
        for i in 0..50u64 {
            meter.record(1000, start + Duration::from_millis(i * 20));
        }
        let rate = meter.bps(start + Duration::from_millis(990)).expect("data");
        assert_eq!(rate, 400_000);
        // Peeking half a second later counts only what is still inside the window.
        let half = meter
            .peek_bps(start + Duration::from_millis(1490))
            .expect("some left");
        assert!(half < rate && half > 0, "{half}");
        assert_eq!(meter.peek_bps(start + Duration::from_millis(2500)), None);
        // Two seconds of silence later, nothing is left.
        assert_eq!(meter.bps(start + Duration::from_millis(3000)), None);
    }
}
