//! The track registry: published tracks, who subscribes to them and at what quality, taps, holds
//! and stalls.

use std::time::Instant;

use str0m::Rtc;
use str0m::format::{Codec as Str0mCodec, PayloadParams};
use str0m::media::{MediaKind, Mid, Pt};

use crate::codec::Codec;
use crate::downtrack::DownTrack;
use crate::ids::{PeerId, TrackId};
use crate::keyframe::KeyframeThrottle;
use crate::layer::{BitrateMeter, Layer, LayerSelector, Quality};
use crate::loss::LossCap;
use crate::speech::SpeechDetector;
use crate::tap::{Tap, TapReceiver};

use super::peer::{Peer, Role};
use super::{Engine, Event, Output, STALL_AFTER, STALL_SWEEP, SfuError};

/// One subscriber's copy of one published track.
#[derive(Debug)]
pub(super) struct Subscription {
    pub(super) peer: PeerId,
    /// What the subscriber asked for; the layer sent is the best live one within it (or, when
    /// none within it arrives, the lowest live one above: see `Published::arrived`).
    pub(super) quality: Quality,
    /// What the subscriber's bandwidth estimate allows this track (see `allocation`).
    pub(super) cap: Quality,
    /// What the loss the subscriber reports allows this track (see `loss`).
    pub(super) loss: LossCap,
    /// The subscriber's m-line, once an offer added it.
    pub(super) mid: Option<Mid>,
    pub(super) down: DownTrack,
    /// Set once the client answered the offer that added the m-line.
    pub(super) negotiated: bool,
    /// The payload type the subscriber's m-line takes the track's latest codec as, found once per
    /// codec rather than per packet: (the publisher's payload type, the subscriber's, or `None`
    /// when the client's answer refused that codec).
    pub(super) out_pt: Option<(u8, Option<Pt>)>,
    /// The subscriber was told it cannot take the track's codec ([`Event::CodecUnsupported`]).
    pub(super) unsupported: bool,
}

impl Subscription {
    /// The best quality to send: what the subscriber asked for, within what its bandwidth
    /// estimate and its loss allow.
    pub(super) fn allowed(&self) -> Quality {
        self.quality.min(self.cap).min(self.loss.cap())
    }
}

/// A track a publisher sends.
#[derive(Debug)]
pub(super) struct Published {
    pub(super) origin: PeerId,
    pub(super) mid: Mid,
    pub(super) kind: MediaKind,
    /// Codec of each payload type seen, learned from the publisher's negotiated parameters.
    pub(super) codecs: Vec<(u8, Codec, PayloadParams)>,
    pub(super) meters: [BitrateMeter; Layer::COUNT],
    /// Every packet of the track, whatever its layer: what a subscriber of a plain stream costs.
    pub(super) total: BitrateMeter,
    pub(super) keyframes: KeyframeThrottle,
    pub(super) speech: SpeechDetector,
    pub(super) subscribers: Vec<Subscription>,
    /// Non-WebRTC consumers of this track (recorder, proctoring sampler).
    pub(super) taps: Vec<Tap>,
    /// A moderator muted it: no subscriber gets its media until it is released.
    pub(super) held: bool,
    /// When its last packet arrived.
    pub(super) last_packet: Instant,
    /// When it began to flow: its publishing, or its first packet after a meter's window of
    /// silence.
    pub(super) flowing_since: Instant,
    /// Whether it was reported stalled.
    pub(super) stalled: bool,
}

impl Published {
    /// The codec its packets arrive in: the first one seen, or before any, its kind's usual one.
    fn codec(&self) -> Codec {
        self.codecs.first().map(|c| c.1).unwrap_or(match self.kind {
            MediaKind::Audio => Codec::Opus,
            MediaKind::Video => Codec::Vp8,
        })
    }

    /// Whether a subscription asking for `quality` gets nothing (see [`paused`]).
    fn paused_for(&self, quality: Quality) -> bool {
        paused(self.held, self.kind, quality)
    }

    /// Meters a packet of `bytes` that arrived at `now` on `layer`, and lets each subscriber and
    /// tap follow the best layer that is actually arriving within what it asked for (a browser
    /// sends fewer layers for small or slow cameras, or drops the top one when its CPU is
    /// busy). When none within it arrives, it gets the lowest live layer above rather than a
    /// frozen picture, even past its bandwidth or loss cap; only once the track has flowed for a
    /// meter's window, so the layers a publisher starts together are all seen before a
    /// subscriber is sent a bigger one than it asked for. Returns whether the track had been
    /// reported stalled and flows again.
    pub(super) fn arrived(&mut self, bytes: usize, layer: Option<Layer>, now: Instant) -> bool {
        self.total.record(bytes, now);
        if now.saturating_duration_since(self.last_packet) >= BitrateMeter::WINDOW {
            self.flowing_since = now;
        }
        self.last_packet = now;
        let resumed = std::mem::replace(&mut self.stalled, false);
        let Some(layer) = layer else {
            return resumed;
        };
        self.meters[layer.index()].record(bytes, now);
        let live = self.meters.each_ref().map(|m| m.peek_bps(now));
        let settled = now.saturating_duration_since(self.flowing_since) >= BitrateMeter::WINDOW;
        let selector = LayerSelector::default();
        let wanted = self
            .subscribers
            .iter_mut()
            .map(|sub| (sub.allowed(), &mut sub.down))
            .chain(self.taps.iter_mut().map(|tap| (tap.quality, &mut tap.down)));
        for (quality, down) in wanted {
            let best = selector
                .select(quality, None, &live)
                .or_else(|| settled.then(|| selector.above(quality, &live)).flatten());
            if best.is_some() && best != down.target() {
                down.set_target(best);
            }
        }
        resumed
    }
}

impl Engine {
    /// Reports tracks whose packets stopped arriving.
    pub(super) fn sweep_stalls(&mut self, now: Instant) {
        if now < self.next_sweep {
            return;
        }
        self.next_sweep = now + STALL_SWEEP;
        for (id, track) in &mut self.tracks {
            if !track.stalled && now.saturating_duration_since(track.last_packet) >= STALL_AFTER {
                track.stalled = true;
                self.outputs.push_back(Output::Event(Event::TrackStalled {
                    peer: track.origin,
                    track: *id,
                    stalled: true,
                }));
            }
        }
    }

    /// Starts sending `track` to subscriber connection `peer`, at the best live simulcast layer
    /// within `quality`. The offer that adds it comes out as [`Event::Offer`].
    pub fn subscribe(
        &mut self,
        peer_id: PeerId,
        track_id: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        self.add_subscription(peer_id, track_id, quality)?;
        self.offer_if_possible(peer_id);
        self.still_open(peer_id)
    }

    /// Subscribes `peer` to every track of `tracks` at once, in one offer: a participant joining
    /// a room gets everything already there in one negotiation, not one per track. A track gone
    /// meanwhile is skipped (its unpublish is on its way to signaling).
    pub fn subscribe_all(
        &mut self,
        peer_id: PeerId,
        tracks: &[TrackId],
        quality: Quality,
    ) -> Result<(), SfuError> {
        for track in tracks {
            match self.add_subscription(peer_id, *track, quality) {
                Ok(()) => {}
                Err(SfuError::UnknownTrack(gone)) => {
                    tracing::debug!(
                        peer = peer_id.0,
                        track = gone.0,
                        "subscribed to a track that is gone"
                    );
                }
                Err(err) => return Err(err),
            }
        }
        self.offer_if_possible(peer_id);
        self.still_open(peer_id)
    }

    /// Adds a subscription without offering it yet.
    fn add_subscription(
        &mut self,
        peer_id: PeerId,
        track_id: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let peer = self
            .peers
            .get_mut(&peer_id)
            .ok_or(SfuError::UnknownPeer(peer_id))?;
        if peer.role != Role::Subscriber {
            return Err(SfuError::WrongRole(peer_id, Role::Subscriber));
        }
        if track.subscribers.iter().any(|s| s.peer == peer_id) {
            return Ok(());
        }
        peer.to_add.push(track_id);
        let mut down = DownTrack::new(track.codec(), quality.max_layer());
        down.set_paused(track.paused_for(quality));
        track.subscribers.push(Subscription {
            peer: peer_id,
            quality,
            cap: Quality::High,
            loss: LossCap::default(),
            mid: None,
            down,
            negotiated: false,
            out_pt: None,
            unsupported: false,
        });
        Ok(())
    }

    /// Changes the quality a subscriber wants of a track ([`Quality::Off`] pauses its video).
    pub fn set_quality(
        &mut self,
        peer: PeerId,
        track: TrackId,
        quality: Quality,
    ) -> Result<(), SfuError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        let paused = published.paused_for(quality);
        let subscription = published
            .subscribers
            .iter_mut()
            .find(|s| s.peer == peer)
            .ok_or(SfuError::UnknownPeer(peer))?;
        subscription.quality = quality;
        subscription.down.set_paused(paused);
        let allowed = subscription.allowed();
        subscription.down.set_target(allowed.max_layer());
        Ok(())
    }

    /// Holds a track (a moderator muted it) or releases it: while held no subscriber gets its
    /// media, whatever the publisher sends; released, each resumes at a keyframe. Taps keep
    /// their stream (a recording shows what the publisher really sent).
    pub fn hold(&mut self, track: TrackId, held: bool) -> Result<(), SfuError> {
        let published = self
            .tracks
            .get_mut(&track)
            .ok_or(SfuError::UnknownTrack(track))?;
        published.held = held;
        let kind = published.kind;
        for sub in &mut published.subscribers {
            sub.down.set_paused(paused(held, kind, sub.quality));
        }
        Ok(())
    }

    /// Attaches a consumer outside WebRTC to `track`: it receives the best live simulcast layer
    /// within `quality` (the lowest above when none within arrives), starting at a keyframe,
    /// through a queue of `capacity` packets (see the `tap` module). Dropping the receiver
    /// detaches it; the track ending closes it.
    pub fn add_tap(
        &mut self,
        track_id: TrackId,
        quality: Quality,
        capacity: usize,
    ) -> Result<TapReceiver, SfuError> {
        let track = self
            .tracks
            .get_mut(&track_id)
            .ok_or(SfuError::UnknownTrack(track_id))?;
        let codec = track.codec();
        let (tap, receiver) = Tap::new(
            DownTrack::new(codec, quality.max_layer()),
            quality,
            codec,
            capacity,
        );
        track.taps.push(tap);
        Ok(receiver)
    }

    pub(super) fn on_media_added(&mut self, id: PeerId, mid: Mid, kind: MediaKind) {
        let Some(peer) = self.peers.get_mut(&id) else {
            return;
        };
        if peer.role != Role::Publisher || peer.published.contains_key(&mid) {
            return;
        }
        let track = TrackId::new(self.track_space, self.next_track);
        // Four billion tracks into one worker's life, numbering starts again.
        self.next_track = self.next_track.checked_add(1).unwrap_or(1);
        peer.published.insert(mid, track);
        self.tracks.insert(
            track,
            Published {
                origin: id,
                mid,
                kind,
                codecs: Vec::new(),
                meters: Default::default(),
                total: BitrateMeter::default(),
                keyframes: KeyframeThrottle::default(),
                speech: SpeechDetector::default(),
                subscribers: Vec::new(),
                taps: Vec::new(),
                held: false,
                last_packet: self.now,
                flowing_since: self.now,
                stalled: false,
            },
        );
        self.outputs.push_back(Output::Event(Event::TrackPublished {
            peer: id,
            track,
            mid: mid.to_string(),
            kind,
        }));
    }

    /// Ends a published track: every subscriber's m-line for it is stopped (collected in
    /// `renegotiate` for the next offer), so clients release it.
    pub(super) fn unpublish(
        &mut self,
        origin: PeerId,
        track: TrackId,
        renegotiate: &mut Vec<PeerId>,
    ) {
        let Some(published) = self.tracks.remove(&track) else {
            return;
        };
        for sub in published.subscribers {
            let Some(subscriber) = self.peers.get_mut(&sub.peer) else {
                continue;
            };
            match sub.mid {
                Some(mid) => {
                    subscriber.subscribed.remove(&mid);
                    subscriber.to_stop.push(mid);
                }
                None => subscriber.to_add.retain(|t| *t != track),
            }
            renegotiate.push(sub.peer);
        }
        self.outputs
            .push_back(Output::Event(Event::TrackUnpublished {
                peer: origin,
                track,
            }));
    }
}

/// Whether a subscription asking for `quality` of a track of `kind` gets nothing: the track is
/// `held`, or it is video and the subscriber's tile is hidden.
fn paused(held: bool, kind: MediaKind, quality: Quality) -> bool {
    held || (quality == Quality::Off && kind == MediaKind::Video)
}

pub(super) fn learn_codec(rtc: &Rtc, pt: u8) -> Option<(Codec, PayloadParams)> {
    let params = rtc
        .codec_config()
        .params()
        .iter()
        .find(|p| *p.pt() == pt)
        .copied()?;
    let codec = match params.spec().codec {
        Str0mCodec::Opus => Codec::Opus,
        Str0mCodec::Vp8 => Codec::Vp8,
        Str0mCodec::Vp9 => Codec::Vp9,
        Str0mCodec::H264 => Codec::H264,
        _ => return None,
    };
    Some((codec, params))
}

/// The codecs a track may arrive in: those seen so far or, before its first packet, each one its
/// publisher negotiated for its m-line that the SFU forwards.
pub(super) fn track_codecs(
    track: &Published,
    publisher: Option<&Peer>,
) -> Vec<(Codec, PayloadParams)> {
    if !track.codecs.is_empty() {
        return track.codecs.iter().map(|c| (c.1, c.2)).collect();
    }
    let Some(rtc) = publisher.map(|p| &p.rtc) else {
        return Vec::new();
    };
    let Some(media) = rtc.media(track.mid) else {
        return Vec::new();
    };
    media
        .remote_pts()
        .iter()
        .filter_map(|pt| learn_codec(rtc, **pt))
        .collect()
}
