//! Bandwidth and loss: a subscriber connection's estimate shared among the tracks it receives,
//! and the loss its receiver reports capping each video track's layer.

use str0m::bwe::Bitrate;
use str0m::media::{MediaKind, Mid};

use crate::allocation::{Want, allocate};
use crate::ids::TrackId;
use crate::layer::LayerSelector;

use super::Engine;
use crate::ids::PeerId;

impl Engine {
    /// A subscriber connection's bandwidth estimate changed: share it among the tracks it
    /// receives, and tell the estimator what to probe for.
    pub(super) fn reallocate(&mut self, id: PeerId, estimate_bps: u64) {
        let Engine {
            peers, tracks, now, ..
        } = self;
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let mut received: Vec<TrackId> = peer.subscribed.values().copied().collect();
        // A stable order, so the same estimate gives the same shares.
        received.sort_unstable();
        let shares: Vec<(TrackId, Want)> = received
            .iter()
            .filter_map(|t| {
                let track = tracks.get(t)?;
                let sub = track.subscribers.iter().find(|s| s.peer == id)?;
                let bitrates = track.meters.each_ref().map(|m| m.peek_bps(*now));
                let want = if bitrates.iter().any(Option::is_some) {
                    // No bandwidth for layers the loss cap keeps from it.
                    Want::Layered {
                        quality: sub.quality.min(sub.loss.cap()),
                        bitrates,
                    }
                } else {
                    Want::Plain(track.total.peek_bps(*now).unwrap_or(0))
                };
                Some((*t, want))
            })
            .collect();
        let wants: Vec<Want> = shares.iter().map(|(_, want)| *want).collect();
        let headroom = LayerSelector::default().headroom;
        let allocation = allocate((estimate_bps as f64 * headroom) as u64, &wants);
        for ((track, _), cap) in shares.iter().zip(&allocation.caps) {
            if let Some(sub) = tracks
                .get_mut(track)
                .and_then(|t| t.subscribers.iter_mut().find(|s| s.peer == id))
            {
                sub.cap = *cap;
            }
        }
        tracing::debug!(peer = id.0, estimate_bps, caps = ?allocation.caps, "bandwidth shared");
        peer.rtc.bwe().set_bitrate(
            Bitrate::bps(allocation.minimum_bps),
            Bitrate::bps(allocation.desired_bps),
        );
    }

    /// A subscriber's receiver reports for its m-line `mid` say it lost `loss` (a fraction) of
    /// what was sent since the last: a video track's layer cap follows (see `loss`).
    pub(super) fn on_egress_loss(&mut self, id: PeerId, mid: Mid, loss: f32) {
        let Some(track_id) = self.subscribed_track(id, mid) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(sub) = track.subscribers.iter_mut().find(|s| s.peer == id) else {
            return;
        };
        if let Some(cap) = sub.loss.report(loss) {
            // The next packet of the track picks the layer within the new cap.
            tracing::debug!(
                peer = id.0,
                track = track_id.0,
                loss,
                ?cap,
                "loss caps the layer"
            );
        }
    }
}
