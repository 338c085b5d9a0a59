//! Subscriber negotiation: the offers the server makes, the answers it takes, and the m-line
//! bookkeeping that keeps a long interview's SDP bounded.

use std::collections::HashMap;
use std::time::Duration;

use str0m::Rtc;
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::{CodecConfig, PayloadParams};
use str0m::media::{Direction, MediaKind, Mid, Pt};

use crate::ids::{PeerId, TrackId};
use crate::sdp::{Narrowing, narrow_offer};

use super::guard::{Fault, guarded};
use super::peer::Line;
use super::track::track_codecs;
use super::{CloseReason, Engine, Event, MID_DRAWS, Output, SfuError};

/// What a subscriber's next offer changes, taken from the peer before str0m builds it.
#[derive(Debug)]
pub(super) struct OfferPlan {
    restart_ice: bool,
    /// The subscriber's first m-line: made inactive rather than stopped when its track ends (see
    /// `offer_if_possible`).
    anchor: Option<Mid>,
    to_stop: Vec<Mid>,
    /// Each new track: its id, kind and publisher.
    to_add: Vec<(TrackId, MediaKind, PeerId)>,
    /// The run of stopped m-lines at the end of the SDP, whose slots the new tracks take (RFC
    /// 8829 §5.2.2).
    recycled: Vec<Mid>,
    /// One inactive m-line of each kind for the recycled slots the new tracks leave over.
    placeholders: Vec<MediaKind>,
}

impl Engine {
    /// The client's answer to the last [`Event::Offer`] for `peer`.
    pub fn accept_answer(&mut self, peer_id: PeerId, answer: SdpAnswer) -> Result<(), SfuError> {
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        if peer.pending_offer.is_none() {
            return Ok(());
        }
        let answered = sdp_mids(&answer.to_sdp_string());
        if answered.iter().any(|mid| !peer.offered_mids.contains(mid)) {
            tracing::debug!(peer = peer_id.0, ?answered, offered = ?peer.offered_mids, "stale answer");
            return Err(SfuError::StaleAnswer(peer_id));
        }
        let Some(pending) = peer.pending_offer.take() else {
            return Ok(());
        };
        match guarded(peer, |rtc| rtc.sdp_api().accept_answer(pending, answer)) {
            Ok(()) => {}
            // The offer is spent and its m-lines are neither negotiated nor offered again: the
            // connection cannot recover. Closing it lets signaling start the client afresh.
            Err(Fault::Refused(err)) => {
                self.close(
                    peer_id,
                    CloseReason::Failed(format!("answer refused: {err}")),
                );
                return Err(err.into());
            }
            Err(fault) => return Err(self.fail(peer_id, fault)),
        }
        // An ICE restart we offered takes effect with the answer.
        self.follow_ice_credentials(peer_id);
        let Some(peer) = self.peers.get(&peer_id) else {
            return Ok(());
        };
        let mut answered = Vec::new();
        for (mid, track_id) in &peer.subscribed {
            if let Some(track) = self.tracks.get_mut(track_id)
                && let Some(sub) = track
                    .subscribers
                    .iter_mut()
                    .find(|s| s.peer == peer_id && s.mid == Some(*mid))
                && !sub.negotiated
            {
                sub.negotiated = true;
                answered.push((*mid, *track_id));
            }
        }
        if let Some(peer) = self.peers.get_mut(&peer_id) {
            for (mid, _) in &answered {
                repair_generously(&mut peer.rtc, *mid);
            }
        }
        for (mid, track) in answered {
            self.check_codecs(peer_id, mid, track);
        }
        self.offer_if_possible(peer_id);
        self.mark_dirty(peer_id);
        self.still_open(peer_id)
    }

    /// Reports a subscriber whose answer accepted none of the codecs a track may arrive in: those
    /// seen so far or, before the first packet, every one its publisher negotiated. The m-line
    /// offered those alone (`sdp::narrow_offer`); the answer is where a client says which of them
    /// it can decode.
    fn check_codecs(&mut self, subscriber: PeerId, mid: Mid, track_id: TrackId) {
        let Some(track) = self.tracks.get(&track_id) else {
            return;
        };
        let possible = track_codecs(track, self.peers.get(&track.origin));
        let Some(out) = self.peers.get(&subscriber) else {
            return;
        };
        if possible.is_empty()
            || possible
                .iter()
                .any(|(_, params)| negotiated_pt(&out.rtc, mid, *params).is_some())
        {
            return;
        }
        // One codec (in however many payload types) names itself; several name the one seen.
        let first = possible.first().map(|c| c.0);
        let codec = if possible.iter().all(|c| Some(c.0) == first) {
            first
        } else {
            track.codecs.first().map(|c| c.1)
        };
        if let Some(track) = self.tracks.get_mut(&track_id)
            && let Some(sub) = track.subscribers.iter_mut().find(|s| s.peer == subscriber)
        {
            sub.unsupported = true;
        }
        tracing::info!(
            peer = subscriber.0,
            track = track_id.0,
            ?codec,
            "subscriber cannot decode the track's codec"
        );
        self.outputs
            .push_back(Output::Event(Event::CodecUnsupported {
                peer: subscriber,
                track: track_id,
                codec,
            }));
    }

    /// Sends the subscriber an offer adding its queued tracks and stopping its ended ones, unless
    /// one is still unanswered (then the answer triggers the next offer: one negotiation at a
    /// time, no glare).
    ///
    /// m-lines are never removed from a session, so without care a subscriber's SDP grows by one
    /// m-line per track it ever received. Three rules keep it in bounds:
    /// - New tracks take the slots of the stopped m-lines at the end of the SDP (RFC 8829 §5.2.2
    ///   recycling, with new mids). str0m 0.25 recycles only slots a remote offer reuses and
    ///   always appends the m-lines of a local offer, so the engine removes that whole run of
    ///   stopped lines from the session first: str0m then puts the new lines exactly where those
    ///   were. Fewer new tracks than slots leave the rest to inactive placeholders, stopped in the
    ///   next offer; they stay last, so the next tracks can take them in turn. Stopped lines
    ///   followed by a live one cannot be recycled (see `lines`).
    /// - Tracks wait one negotiation when the last m-line is being stopped, so that they can take
    ///   its slot rather than land after it.
    /// - Stopped lines followed by a live one stay. Past the connection's limit of those, the
    ///   engine asks for a fresh connection ([`Event::RenewSubscriber`]), which bounds the SDP
    ///   by the live tracks plus the limit however long the interview runs.
    /// - The first m-line is made inactive, never stopped. It keeps the BUNDLE group from becoming
    ///   empty when every track ends (a client would drop the transport, and str0m would not make
    ///   a new one), and it is the only m-line str0m writes ICE candidates into, which an ICE
    ///   restart needs in a live m-line.
    pub(super) fn offer_if_possible(&mut self, id: PeerId) {
        let Engine {
            peers,
            tracks,
            outputs,
            stopped_line_limit,
            ..
        } = self;
        // What each track may arrive in, read before the subscriber is borrowed for the offer:
        // its new m-lines offer those codecs alone.
        let arrives_in: HashMap<TrackId, Vec<PayloadParams>> = peers
            .get(&id)
            .map(|peer| {
                peer.to_add
                    .iter()
                    .filter_map(|t| tracks.get(t).map(|track| (t, track)))
                    .map(|(t, track)| {
                        let codecs = track_codecs(track, peers.get(&track.origin));
                        (*t, codecs.into_iter().map(|c| c.1).collect())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let Some(peer) = peers.get_mut(&id) else {
            return;
        };
        let nothing_to_change =
            peer.to_add.is_empty() && peer.to_stop.is_empty() && !peer.restart_ice;
        if peer.pending_offer.is_some() || nothing_to_change {
            return;
        }
        let anchor = peer.lines.first().map(|line| line.mid);
        let last_stops = peer
            .lines
            .last()
            .is_some_and(|line| Some(line.mid) != anchor && peer.to_stop.contains(&line.mid));
        let to_add: Vec<(TrackId, MediaKind, PeerId)> = if last_stops {
            Vec::new()
        } else {
            peer.to_add
                .drain(..)
                .filter_map(|t| tracks.get(&t).map(|track| (t, track.kind, track.origin)))
                .collect()
        };
        // No offer is pending, so every stopped line was stopped by an offer the client answered:
        // recycling needs the client to know the slot is free.
        let run = if to_add.is_empty() {
            0
        } else {
            peer.lines
                .iter()
                .rev()
                .take_while(|line| line.stopped)
                .count()
        };
        let kept = peer.lines.len() - run;
        let filled = kept + run.min(to_add.len());
        let plan = OfferPlan {
            restart_ice: std::mem::take(&mut peer.restart_ice),
            anchor,
            to_stop: std::mem::take(&mut peer.to_stop),
            to_add,
            recycled: peer.lines[kept..].iter().map(|line| line.mid).collect(),
            placeholders: peer.lines[filled..].iter().map(|line| line.kind).collect(),
        };
        let built = guarded(peer, |rtc| Ok(build_offer(rtc, &plan)));
        let (added, placeholders, offer) = match built {
            Ok(built) => built,
            Err(fault) => {
                self.close(id, fault.into_reason());
                return;
            }
        };
        let narrowing: Vec<Narrowing> = plan
            .to_add
            .iter()
            .zip(&added)
            .filter_map(|((track, _, _), mid)| {
                let payload_types = offered_payload_types(&peer.rtc, arrives_in.get(track)?);
                (!payload_types.is_empty()).then_some(Narrowing {
                    mid: *mid,
                    payload_types,
                })
            })
            .collect();
        peer.lines.truncate(kept);
        for line in &mut peer.lines {
            if plan.to_stop.contains(&line.mid) && Some(line.mid) != plan.anchor {
                line.stopped = true;
            }
        }
        for (&(track_id, kind, _), mid) in plan.to_add.iter().zip(added) {
            peer.lines.push(Line {
                mid,
                kind,
                stopped: false,
            });
            peer.subscribed.insert(mid, track_id);
            if let Some(sub) = tracks
                .get_mut(&track_id)
                .and_then(|t| t.subscribers.iter_mut().find(|s| s.peer == id))
            {
                sub.mid = Some(mid);
            }
        }
        for (kind, mid) in plan.placeholders.iter().zip(placeholders) {
            peer.lines.push(Line {
                mid,
                kind: *kind,
                stopped: false,
            });
            peer.to_stop.push(mid);
        }
        if let Some((offer, pending)) = offer {
            peer.pending_offer = Some(pending);
            let offer = narrow_offer(offer, &narrowing);
            peer.offered_mids = sdp_mids(&offer.to_sdp_string());
            outputs.push_back(Output::Event(Event::Offer { peer: id, offer }));
        }
        // Stopped lines followed by a live one keep their slots (see `lines`): past the limit,
        // only a new connection gives them back.
        let trailing = peer.lines.iter().rev().take_while(|l| l.stopped).count();
        let stopped = peer.lines[..peer.lines.len() - trailing]
            .iter()
            .filter(|l| l.stopped)
            .count();
        if stopped > *stopped_line_limit && !peer.renewal_asked {
            peer.renewal_asked = true;
            tracing::info!(peer = id.0, stopped, "subscriber connection to be renewed");
            outputs.push_back(Output::Event(Event::RenewSubscriber { peer: id, stopped }));
        }
    }
}

/// The m-lines of a subscriber offer's added tracks and placeholders, and the offer.
type BuiltOffer = (Vec<Mid>, Vec<Mid>, Option<(SdpOffer, SdpPendingOffer)>);

/// Builds a subscriber's next offer on its `Rtc` as `plan` says (see
/// `Engine::offer_if_possible`).
fn build_offer(rtc: &mut Rtc, plan: &OfferPlan) -> BuiltOffer {
    // str0m places a local offer's new m-lines after all it has; without the stopped run at the
    // end, that is where the run was.
    for mid in &plan.recycled {
        rtc.direct_api().remove_media(*mid);
    }
    let mut draws = 0;
    loop {
        draws += 1;
        let mut change = rtc.sdp_api();
        if plan.restart_ice {
            change.ice_restart(true);
        }
        for mid in &plan.to_stop {
            if Some(*mid) == plan.anchor {
                change.set_direction(*mid, Direction::Inactive);
            } else {
                change.stop_media(*mid);
            }
        }
        let added: Vec<Mid> = plan
            .to_add
            .iter()
            .map(|(track, kind, origin)| {
                change.add_media(
                    *kind,
                    Direction::SendOnly,
                    Some(format!("p{}", origin.0)),
                    Some(track.to_string()),
                    None,
                )
            })
            .collect();
        let placeholders: Vec<Mid> = plan
            .placeholders
            .iter()
            .map(|kind| change.add_media(*kind, Direction::Inactive, None, None, None))
            .collect();
        // Dropping an unapplied change discards it; stops and directions already took effect in
        // the session and are offered from there.
        let reused = added
            .iter()
            .chain(&placeholders)
            .any(|mid| plan.recycled.contains(mid));
        if reused && draws < MID_DRAWS {
            continue;
        }
        return (added, placeholders, change.apply());
    }
}

/// The mids of a session description's m-lines, in order.
fn sdp_mids(sdp: &str) -> Vec<String> {
    sdp.lines()
        .filter_map(|line| line.strip_prefix("a=mid:"))
        .map(|mid| mid.trim().to_owned())
        .collect()
}

/// The payload types a subscriber connection offers a track arriving in `codecs` as: the one its
/// configuration matches each codec with, and that one's retransmission type.
fn offered_payload_types(rtc: &Rtc, codecs: &[PayloadParams]) -> Vec<u8> {
    let config = rtc.codec_config();
    let mut payload_types = Vec::new();
    for params in codecs {
        let Some(offered) = config.match_params(*params) else {
            continue;
        };
        for pt in std::iter::once(offered.pt()).chain(offered.resend()) {
            if !payload_types.contains(&*pt) {
                payload_types.push(*pt);
            }
        }
    }
    payload_types
}

/// The payload type a subscriber connection sends `params` as on m-line `mid`, if its client's
/// answer accepted that codec there. The connection's codec configuration is shared by all its
/// m-lines and lists codecs the client may have refused, so the match is narrowed to this
/// m-line's negotiated payload types.
pub(super) fn negotiated_pt(rtc: &Rtc, mid: Mid, params: PayloadParams) -> Option<Pt> {
    let accepted = rtc.media(mid)?.remote_pts();
    let config = rtc.codec_config();
    if let Some(best) = config.match_params(params)
        && accepted.contains(&best.pt())
    {
        return Some(best.pt());
    }
    let narrowed: Vec<PayloadParams> = config
        .params()
        .iter()
        .filter(|p| accepted.contains(&p.pt()))
        .copied()
        .collect();
    CodecConfig::new_from_payload_params(narrowed)
        .match_params(params)
        .map(|p| p.pt())
}

/// Packets a subscriber's stream keeps for retransmission: several seconds of the highest layer
/// (str0m's own default for video is 1,000).
const RTX_CACHE_PACKETS: usize = 1024;
/// How long a subscriber's stream keeps them (str0m's default).
const RTX_CACHE_AGE: Duration = Duration::from_secs(3);
/// The share of a subscriber's stream retransmissions may take. str0m's default, 15%, drops
/// every queued repair above it: at 20% loss nothing would be repaired and the picture would
/// freeze. The loss cap lowers the bitrate first, so repairing a low layer generously costs
/// little; beyond half, the path is hopeless and repairs would only add to it.
const RTX_RATIO_CAP: f32 = 0.5;

/// Lets a subscriber's answered m-line `mid` repair what its path loses (see [`RTX_RATIO_CAP`]).
fn repair_generously(rtc: &mut Rtc, mid: Mid) {
    if let Some(stream) = rtc.direct_api().stream_tx_by_mid(mid, None) {
        stream.set_rtx_cache(RTX_CACHE_PACKETS, RTX_CACHE_AGE, Some(RTX_RATIO_CAP));
    }
}
