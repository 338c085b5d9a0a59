//! Sharing one subscriber's estimated bandwidth among the tracks it receives.
//!
//! Greedy, as LiveKit's allocator is: streams without layers (audio, screen share) are taken as
//! they come; every visible simulcast track first gets its lowest live layer (video degrades
//! before it disappears), then tracks are raised one layer at a time, round robin in the order
//! given, while the budget allows. The result caps each subscription's quality; the per-packet
//! layer choice ([`crate::LayerSelector`]) stays within the cap, except that a track with no
//! live layer within its quality gets the lowest live one above (counted here as its only
//! layer, so its cost is in the budget). It also says what to ask str0m's
//! estimator for: enough to start the next layer, and the rate every track's preferred layer
//! would need, so the estimate probes up to what the subscriber wants.
//!
//! Runs when an estimate arrives (a few times a second per subscriber), never per packet.

use crate::layer::{Layer, Quality};

/// One track a subscriber receives.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Want {
    /// A stream without simulcast layers, at its live bitrate.
    Plain(u64),
    /// A simulcast video track.
    Layered {
        /// What the subscriber asked for (from its tile).
        quality: Quality,
        /// The live bitrate of each layer (`None`: not arriving).
        bitrates: [Option<u64>; Layer::COUNT],
    },
}

/// How a budget was shared.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The quality cap of each want, in order (`Quality::High` for plain streams).
    pub caps: Vec<Quality>,
    /// The rate to keep the estimator probing towards: the allocation plus the cheapest upgrade
    /// that did not fit.
    pub minimum_bps: u64,
    /// The rate every track at its preferred layer would need.
    pub desired_bps: u64,
}

/// Shares `budget_bps` among `wants`.
pub fn allocate(budget_bps: u64, wants: &[Want]) -> Allocation {
    // The live layers each simulcast track may use, lowest first (empty for plain streams).
    let ladders: Vec<Vec<(Layer, u64)>> = wants
        .iter()
        .map(|want| match want {
            Want::Plain(_) => Vec::new(),
            Want::Layered { quality, bitrates } => {
                let Some(max) = quality.max_layer() else {
                    return Vec::new();
                };
                let live = |layer: Layer| bitrates[layer.index()].map(|rate| (layer, rate));
                let within: Vec<(Layer, u64)> = Layer::ALL
                    .into_iter()
                    .filter(|layer| *layer <= max)
                    .filter_map(live)
                    .collect();
                if !within.is_empty() {
                    return within;
                }
                // What the per-packet choice falls back to: the lowest live layer above.
                Layer::ALL
                    .into_iter()
                    .filter(|layer| *layer > max)
                    .find_map(live)
                    .into_iter()
                    .collect()
            }
        })
        .collect();
    let plain: u64 = wants
        .iter()
        .map(|want| match want {
            Want::Plain(rate) => *rate,
            Want::Layered { .. } => 0,
        })
        .sum();
    let mut chosen = vec![0usize; wants.len()];
    let mut used: u64 = plain
        + ladders
            .iter()
            .filter_map(|ladder| ladder.first().map(|(_, rate)| *rate))
            .sum::<u64>();
    loop {
        let mut raised = false;
        for (step, ladder) in chosen.iter_mut().zip(&ladders) {
            let (Some((_, now)), Some((_, next))) = (ladder.get(*step), ladder.get(*step + 1))
            else {
                continue;
            };
            let extra = next.saturating_sub(*now);
            if used.saturating_add(extra) <= budget_bps {
                used += extra;
                *step += 1;
                raised = true;
            }
        }
        if !raised {
            break;
        }
    }
    let next_upgrade = chosen
        .iter()
        .zip(&ladders)
        .filter_map(|(step, ladder)| {
            let (_, now) = ladder.get(*step)?;
            let (_, next) = ladder.get(*step + 1)?;
            Some(next.saturating_sub(*now))
        })
        .min()
        .unwrap_or(0);
    let desired_bps = plain
        + ladders
            .iter()
            .filter_map(|ladder| ladder.last().map(|(_, rate)| *rate))
            .sum::<u64>();
    let caps = chosen
        .iter()
        .zip(&ladders)
        .zip(wants)
        .map(|((step, ladder), want)| match (ladder.get(*step), want) {
            (Some((layer, _)), _) => layer.quality(),
            // Nothing live to decide about, or the tile is off: leave the request as it is.
            (None, Want::Layered { quality, .. }) => *quality,
            (None, Want::Plain(_)) => Quality::High,
        })
        .collect();
    Allocation {
        caps,
        minimum_bps: used.saturating_add(next_upgrade),
        desired_bps,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL_LIVE: [Option<u64>; 3] = [Some(150_000), Some(500_000), Some(1_500_000)];

    fn layered(quality: Quality) -> Want {
        Want::Layered {
            quality,
            bitrates: ALL_LIVE,
        }
    }

    #[test]
    fn plenty_of_bandwidth_gives_everyone_what_they_asked_for() {
        let wants = [
            layered(Quality::High),
            layered(Quality::Medium),
            Want::Plain(40_000),
        ];
        let allocation = allocate(10_000_000, &wants);
        assert_eq!(
            allocation.caps,
            vec![Quality::High, Quality::Medium, Quality::High]
        );
        assert_eq!(allocation.desired_bps, 2_040_000);
        assert_eq!(allocation.minimum_bps, 2_040_000, "nothing left to upgrade");
    }

    #[test]
    fn scarce_bandwidth_is_shared_round_robin_from_the_lowest_layers() {
        // Audio 100k, then 150k + 150k; both step to 500k (1,100k in all); one more step would
        // need another 1,000k.
        let wants = [
            layered(Quality::High),
            layered(Quality::High),
            Want::Plain(100_000),
        ];
        let allocation = allocate(1_300_000, &wants);
        assert_eq!(
            allocation.caps,
            vec![Quality::Medium, Quality::Medium, Quality::High]
        );
        assert_eq!(allocation.minimum_bps, 1_100_000 + 1_000_000);
        assert_eq!(allocation.desired_bps, 3_100_000);

        // Enough for one upgrade: the first track in order gets it.
        let allocation = allocate(2_100_000, &wants);
        assert_eq!(allocation.caps[..2], [Quality::High, Quality::Medium]);
    }

    #[test]
    fn video_degrades_to_the_lowest_layer_rather_than_disappearing() {
        let allocation = allocate(10_000, &[layered(Quality::High), layered(Quality::Low)]);
        assert_eq!(allocation.caps, vec![Quality::Low, Quality::Low]);
        assert_eq!(allocation.minimum_bps, 300_000 + 350_000);
    }

    #[test]
    fn hidden_tiles_and_missing_layers_take_nothing() {
        let only_low = Want::Layered {
            quality: Quality::High,
            bitrates: [Some(150_000), None, None],
        };
        let nothing = Want::Layered {
            quality: Quality::High,
            bitrates: [None; 3],
        };
        let wants = [
            layered(Quality::Off),
            only_low,
            nothing,
            layered(Quality::High),
        ];
        let allocation = allocate(700_000, &wants);
        assert_eq!(
            allocation.caps,
            vec![Quality::Off, Quality::Low, Quality::High, Quality::Medium]
        );
        assert_eq!(allocation.desired_bps, 150_000 + 1_500_000);
    }

    #[test]
    fn a_track_whose_layers_within_its_quality_stopped_is_charged_the_one_it_gets() {
        let only_high = Want::Layered {
            quality: Quality::Low,
            bitrates: [None, None, Some(1_500_000)],
        };
        let allocation = allocate(2_000_000, &[only_high, layered(Quality::High)]);
        // 1,500k for the first leaves room for the second's lowest layer and one step, not two.
        assert_eq!(allocation.caps, vec![Quality::High, Quality::Medium]);
        assert_eq!(allocation.desired_bps, 1_500_000 + 1_500_000);
    }
}
