//! Forwarding: each packet a publisher sends, fanned out to its track's subscribers and taps;
//! keyframe requests back to the publisher.

use std::collections::VecDeque;

use str0m::Rtc;
use str0m::format::PayloadParams;
use str0m::media::{KeyframeRequestKind, MediaKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};

use crate::codec::Codec;
use crate::downtrack::{Decision, DownTrack, Incoming, SourceId};
use crate::ids::{PeerId, TrackId};
use crate::layer::Layer;
use crate::tap::{Offered, SenderClock, TapPacket};

use super::negotiate::negotiated_pt;
use super::peer::Peer;
use super::track::{Published, learn_codec};
use super::{Engine, Event, FastMap, Output};

/// What one published packet is, worked out once before it fans out.
struct Arrival<'a> {
    track: TrackId,
    codec: Codec,
    /// The publisher's payload type and its negotiated parameters.
    pt: u8,
    params: PayloadParams,
    packet: &'a RtpPacket,
    incoming: Incoming,
    /// The header extensions a subscriber gets: the audio level and voice activity, no more.
    ext_vals: ExtensionValues,
}

/// The streams of a track that a subscriber or tap waits for a keyframe on: a simulcast layer
/// (indexed by `Layer::index`), or the only stream of a track without simulcast.
#[derive(Default)]
struct KeyframeWants {
    layers: [bool; Layer::COUNT],
    plain: bool,
}

impl KeyframeWants {
    /// Notes a consumer that needs a keyframe, or (`asked`, a tap's request on video) wants
    /// one: on the layer it waits for when the packet is simulcast, else on the stream.
    fn note(&mut self, down: &DownTrack, asked: bool, arrival: &Arrival<'_>) {
        let waiting = down.needs_keyframe() || (asked && arrival.codec.is_video());
        if !waiting {
            return;
        }
        match arrival.incoming.layer.and(down.target()) {
            Some(target) => self.layers[target.index()] = true,
            None => self.plain = true,
        }
    }
}

impl Engine {
    /// A publisher's RTP packet: meters its track, lets each subscriber and tap follow the best
    /// live layer, fans it out, and asks the publisher for the keyframes they wait for.
    pub(super) fn on_rtp(&mut self, publisher: PeerId, packet: RtpPacket) {
        let Engine {
            peers,
            tracks,
            outputs,
            dirty,
            ..
        } = self;
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        let Some((track_id, layer)) = locate(peer, &packet) else {
            return;
        };
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        let pt = *packet.header.payload_type;
        let Some((codec, params)) = codec_of(track, &peer.rtc, pt) else {
            return;
        };
        let now = packet.timestamp;
        if track.arrived(packet.payload.len(), layer, now) {
            outputs.push_back(Output::Event(Event::TrackStalled {
                peer: publisher,
                track: track_id,
                stalled: false,
            }));
        }
        let incoming = Incoming::parse(
            codec,
            SourceId(*packet.header.ssrc),
            layer,
            *packet.seq_no,
            packet.time.numer(),
            now,
            &packet.payload,
        );
        if incoming.keyframe_start && codec.is_video() {
            // A track without simulcast uses the lowest layer's slot (as its requests do).
            track
                .keyframes
                .keyframe_arrived(layer.unwrap_or(Layer::Low));
        }
        if let Some(level) = packet.header.ext_vals.audio_level
            && let Some(speaking) = track.speech.observe(level)
        {
            outputs.push_back(Output::Event(Event::Speaking {
                peer: publisher,
                track: track_id,
                speaking,
            }));
        }
        let arrival = Arrival {
            track: track_id,
            codec,
            pt,
            params,
            packet: &packet,
            incoming,
            ext_vals: ExtensionValues {
                audio_level: packet.header.ext_vals.audio_level,
                voice_activity: packet.header.ext_vals.voice_activity,
                ..Default::default()
            },
        };
        let mut wants = KeyframeWants::default();
        to_taps(track, &arrival, &mut wants);
        to_subscribers(track, peers, outputs, dirty, &arrival, &mut wants);
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        for (index, want) in wants.layers.iter().enumerate() {
            let layer = Layer::ALL[index];
            if *want && track.keyframes.try_request(layer, now) {
                request_keyframe(&mut peer.rtc, track.mid, Some(layer.rid().into()));
            }
        }
        // A track without simulcast uses the lowest layer's slot in the throttle.
        if wants.plain && track.keyframes.try_request(Layer::Low, now) {
            request_keyframe(&mut peer.rtc, track.mid, None);
        }
        // A viewer's request that came too soon goes once its interval is over (this layer's own
        // packets are the clock), if someone still gets this layer: a viewer that moved to
        // another, paused or left needs no keyframe of it.
        let slot = layer.unwrap_or(Layer::Low);
        if track.keyframes.deferred(slot) {
            let watched = track
                .subscribers
                .iter()
                .any(|sub| sub.down.forwarding() && sub.down.current() == layer);
            if !watched {
                track.keyframes.cancel_deferred(slot);
            } else if track.keyframes.take_deferred(slot, now) {
                request_keyframe(&mut peer.rtc, track.mid, layer.map(|l| l.rid().into()));
            }
        }
        if !peer.queued {
            peer.queued = true;
            dirty.push_back(publisher);
        }
    }

    /// The track a subscriber connection's m-line `mid` carries.
    pub(super) fn subscribed_track(&self, subscriber: PeerId, mid: Mid) -> Option<TrackId> {
        self.peers.get(&subscriber)?.subscribed.get(&mid).copied()
    }

    pub(super) fn on_keyframe_request(&mut self, subscriber: PeerId, mid: Mid) {
        let Some(track_id) = self.subscribed_track(subscriber, mid) else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        if track.kind != MediaKind::Video {
            return;
        }
        let Some(sub) = track.subscribers.iter().find(|s| s.peer == subscriber) else {
            return;
        };
        // Paused, or waiting for its first keyframe: the engine asks for that one itself.
        if !sub.down.forwarding() {
            return;
        }
        let current = sub.down.current();
        if !track
            .keyframes
            .try_relay(current.unwrap_or(Layer::Low), self.now)
        {
            return;
        }
        let rid: Option<Rid> = current.map(|layer| layer.rid().into());
        if let Some(peer) = self.peers.get_mut(&track.origin) {
            request_keyframe(&mut peer.rtc, track.mid, rid);
            if !peer.queued {
                peer.queued = true;
                self.dirty.push_back(track.origin);
            }
        }
    }
}

/// The track a packet belongs to and its simulcast layer, from the stream it arrived on.
fn locate(peer: &mut Peer, packet: &RtpPacket) -> Option<(TrackId, Option<Layer>)> {
    let (mid, rid) = {
        let mut api = peer.rtc.direct_api();
        let rx = api.stream_rx(&packet.header.ssrc)?;
        (rx.mid(), rx.rid())
    };
    let track = peer.published.get(&mid).copied()?;
    Some((track, rid.as_ref().and_then(|r| Layer::from_rid(r))))
}

/// The codec of payload type `pt` on `track`, learned from the publisher's negotiated
/// parameters the first time it is seen; `None` for a codec the SFU does not forward.
fn codec_of(track: &mut Published, rtc: &Rtc, pt: u8) -> Option<(Codec, PayloadParams)> {
    if let Some(known) = track.codecs.iter().find(|c| c.0 == pt) {
        return Some((known.1, known.2));
    }
    let (codec, params) = learn_codec(rtc, pt)?;
    track.codecs.push((pt, codec, params));
    Some((codec, params))
}

/// Offers the packet to each tap of the track (at its own layer, from a keyframe); detaches taps
/// whose consumer is gone.
fn to_taps(track: &mut Published, arrival: &Arrival<'_>, wants: &mut KeyframeWants) {
    let packet = arrival.packet;
    let mut consumer_gone = false;
    for tap in &mut track.taps {
        let decision = tap.down.forward(&arrival.incoming);
        wants.note(&tap.down, tap.take_keyframe_request(), arrival);
        let Decision::Forward(rewritten) = decision else {
            continue;
        };
        // str0m hands each packet its stream's latest sender report.
        let clock = packet.last_sender_info.map(|report| SenderClock {
            ntp: report.ntp_time,
            // The low 32 bits are the timestamp on the wire; str0m extends it.
            rtp_time: report.rtp_time.numer() as u32,
        });
        let offered = tap.offer(|| TapPacket {
            track: arrival.track,
            codec: arrival.codec,
            seq: rewritten.seq,
            rtp_time: rewritten.rtp_time,
            marker: packet.header.marker,
            keyframe: arrival.incoming.keyframe_start,
            payload: packet.payload.clone(),
            arrival: arrival.incoming.arrival,
            sender_time: clock
                .and_then(|c| c.time_of(packet.header.timestamp, arrival.codec.clock_rate())),
        });
        consumer_gone |= offered == Offered::Gone;
    }
    if consumer_gone {
        track.taps.retain(|tap| !tap.is_detached());
    }
}

/// Writes the packet to each subscriber that can take it now (connected, its m-line answered,
/// the codec accepted), rewritten into its continuous stream; marks them for draining.
fn to_subscribers(
    track: &mut Published,
    peers: &mut FastMap<PeerId, Peer>,
    outputs: &mut VecDeque<Output>,
    dirty: &mut VecDeque<PeerId>,
    arrival: &Arrival<'_>,
    wants: &mut KeyframeWants,
) {
    let packet = arrival.packet;
    let codec = arrival.codec;
    for sub in &mut track.subscribers {
        // Only a subscriber that can receive now may advance its stream: a keyframe written
        // before its m-line is negotiated and its connection up would be lost, and its decoder
        // would wait for the next one.
        let Some(out) = peers.get_mut(&sub.peer) else {
            continue;
        };
        let (true, true, Some(sub_mid)) = (out.connected, sub.negotiated, sub.mid) else {
            continue;
        };
        let out_pt = match sub.out_pt {
            Some((seen, out_pt)) if seen == arrival.pt => out_pt,
            _ => {
                let found = negotiated_pt(&out.rtc, sub_mid, arrival.params);
                sub.out_pt = Some((arrival.pt, found));
                found
            }
        };
        // A client that refused this codec would drop the packets unseen (black video, no
        // error): say so once, and neither forward nor ask for keyframes on its behalf.
        let Some(out_pt) = out_pt else {
            if !std::mem::replace(&mut sub.unsupported, true) {
                tracing::info!(
                    peer = sub.peer.0,
                    track = arrival.track.0,
                    ?codec,
                    "subscriber cannot decode the track's codec"
                );
                outputs.push_back(Output::Event(Event::CodecUnsupported {
                    peer: sub.peer,
                    track: arrival.track,
                    codec: Some(codec),
                }));
            }
            continue;
        };
        let decision = sub.down.forward(&arrival.incoming);
        wants.note(&sub.down, false, arrival);
        let Decision::Forward(rewritten) = decision else {
            continue;
        };
        let mut write = RtpWrite::new(
            out_pt,
            rewritten.seq.into(),
            rewritten.rtp_time as u32,
            arrival.incoming.arrival,
            packet.payload.clone(),
        )
        .marker(packet.header.marker)
        .nackable(codec.is_video())
        .ext_vals(arrival.ext_vals.clone());
        if let (Some(picture_id), Some(original)) =
            (rewritten.vp8_picture_id, arrival.incoming.vp8_picture_id)
            && picture_id != original
            && let Ok(descriptor) = Vp8Descriptor::parse(&packet.payload)
            && let Ok(patch) = descriptor.patch().picture_id(picture_id).build()
        {
            write = write.vp8_patch(patch);
        }
        let mut api = out.rtc.direct_api();
        if let Some(stream) = api.stream_tx_by_mid(sub_mid, None) {
            stream.write_rtp(write);
            out.written = true;
            if !out.queued {
                out.queued = true;
                dirty.push_back(sub.peer);
            }
        }
    }
}

fn request_keyframe(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) {
    if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
        rx.request_keyframe(KeyframeRequestKind::Pli);
    }
}
