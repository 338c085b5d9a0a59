//! Forwarding: each packet a publisher sends, fanned out to its track's subscribers and taps;
//! keyframe requests back to the publisher.

use str0m::Rtc;
use str0m::media::{KeyframeRequestKind, Mid, Rid};
use str0m::rtp::{ExtensionValues, RtpPacket, RtpWrite, Vp8Descriptor};

use crate::downtrack::{Decision, DownTrack, Incoming, SourceId};
use crate::ids::PeerId;
use crate::layer::{Layer, LayerSelector};
use crate::tap::{Offered, SenderClock, TapPacket};

use super::negotiate::negotiated_pt;
use super::track::learn_codec;
use super::{Engine, Event, Output};

impl Engine {
    pub(super) fn on_rtp(&mut self, publisher: PeerId, packet: RtpPacket) {
        let Engine { peers, tracks, .. } = self;
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        let now = packet.timestamp;
        let ssrc = packet.header.ssrc;
        let (mid, rid) = {
            let mut api = peer.rtc.direct_api();
            let Some(rx) = api.stream_rx(&ssrc) else {
                return;
            };
            (rx.mid(), rx.rid())
        };
        let Some(track_id) = peer.published.get(&mid).copied() else {
            return;
        };
        let Some(track) = tracks.get_mut(&track_id) else {
            return;
        };
        let pt = *packet.header.payload_type;
        let codec = match track.codecs.iter().find(|c| c.0 == pt) {
            Some(known) => Some(known.1),
            None => learn_codec(&peer.rtc, pt).map(|(codec, params)| {
                track.codecs.push((pt, codec, params));
                codec
            }),
        };
        let Some(codec) = codec else {
            return;
        };
        let Some(params) = track.codecs.iter().find(|c| c.0 == pt).map(|c| c.2) else {
            return;
        };
        let layer = rid.as_ref().and_then(|r| Layer::from_rid(r));
        track.total.record(packet.payload.len(), now);
        track.last_packet = now;
        if track.stalled {
            track.stalled = false;
            self.outputs.push_back(Output::Event(Event::TrackStalled {
                peer: publisher,
                track: track_id,
                stalled: false,
            }));
        }
        if let Some(layer) = layer {
            track.meters[layer.index()].record(packet.payload.len(), now);
            // Layers come and go (a browser sends fewer for small or slow cameras, or drops
            // the top one when its CPU is busy): each subscriber and tap gets the best layer that
            // is actually arriving within what it asked for.
            let live = track.meters.each_ref().map(|m| m.peek_bps(now));
            let selector = LayerSelector::default();
            let wanted = track
                .subscribers
                .iter_mut()
                .map(|sub| (sub.quality.min(sub.cap), &mut sub.down))
                .chain(
                    track
                        .taps
                        .iter_mut()
                        .map(|tap| (tap.quality, &mut tap.down)),
                );
            for (quality, down) in wanted {
                let best = selector.select(quality, None, &live);
                if best.is_some() && best != down.target() {
                    down.set_target(best);
                }
            }
        }
        let incoming = Incoming::parse(
            codec,
            SourceId(*ssrc),
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
            self.outputs.push_back(Output::Event(Event::Speaking {
                peer: publisher,
                track: track_id,
                speaking,
            }));
        }
        let ext_vals = ExtensionValues {
            audio_level: packet.header.ext_vals.audio_level,
            voice_activity: packet.header.ext_vals.voice_activity,
            ..Default::default()
        };
        // Which stream a waiting subscriber needs a keyframe on: a layer, or the only stream.
        let mut wanted_layers = [false; Layer::COUNT];
        let mut wanted_plain = false;
        // A simulcast packet asks on the layer the subscriber or tap waits for (or, for a tap
        // that asked, the one it gets); a plain stream has only itself to ask.
        let video = codec.is_video();
        let mut want_keyframe = |down: &DownTrack, asked: bool| {
            if down.needs_keyframe() || (asked && video) {
                match layer.and(down.target()) {
                    Some(target) => wanted_layers[target.index()] = true,
                    None => wanted_plain = true,
                }
            }
        };
        let mut consumer_gone = false;
        for tap in &mut track.taps {
            let decision = tap.down.forward(&incoming);
            want_keyframe(&tap.down, tap.take_keyframe_request());
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
                track: track_id,
                codec,
                seq: rewritten.seq,
                rtp_time: rewritten.rtp_time,
                marker: packet.header.marker,
                keyframe: incoming.keyframe_start,
                payload: packet.payload.clone(),
                arrival: now,
                sender_time: clock
                    .and_then(|c| c.time_of(packet.header.timestamp, codec.clock_rate())),
            });
            consumer_gone |= offered == Offered::Gone;
        }
        if consumer_gone {
            track.taps.retain(|tap| !tap.is_detached());
        }
        for sub in &mut track.subscribers {
            // Only a subscriber that can receive now may advance its stream: a keyframe written
            // before its m-line is negotiated and its connection up would be lost, and its
            // decoder would wait for the next one.
            let Some(out) = peers.get_mut(&sub.peer) else {
                continue;
            };
            let (true, true, Some(sub_mid)) = (out.connected, sub.negotiated, sub.mid) else {
                continue;
            };
            let out_pt = match sub.out_pt {
                Some((seen, out_pt)) if seen == pt => out_pt,
                _ => {
                    let found = negotiated_pt(&out.rtc, sub_mid, params);
                    sub.out_pt = Some((pt, found));
                    found
                }
            };
            // A client that refused this codec would drop the packets unseen (black video, no
            // error): say so once, and neither forward nor ask for keyframes on its behalf.
            let Some(out_pt) = out_pt else {
                if !std::mem::replace(&mut sub.unsupported, true) {
                    tracing::info!(
                        peer = sub.peer.0,
                        track = track_id.0,
                        ?codec,
                        "subscriber cannot decode the track's codec"
                    );
                    self.outputs
                        .push_back(Output::Event(Event::CodecUnsupported {
                            peer: sub.peer,
                            track: track_id,
                            codec: Some(codec),
                        }));
                }
                continue;
            };
            let decision = sub.down.forward(&incoming);
            want_keyframe(&sub.down, false);
            let Decision::Forward(rewritten) = decision else {
                continue;
            };
            let mut write = RtpWrite::new(
                out_pt,
                rewritten.seq.into(),
                rewritten.rtp_time as u32,
                now,
                packet.payload.clone(),
            )
            .marker(packet.header.marker)
            .nackable(codec.is_video())
            .ext_vals(ext_vals.clone());
            if let (Some(picture_id), Some(original)) =
                (rewritten.vp8_picture_id, incoming.vp8_picture_id)
                && picture_id != original
                && let Ok(descriptor) = Vp8Descriptor::parse(&packet.payload)
                && let Ok(patch) = descriptor.patch().picture_id(picture_id).build()
            {
                write = write.vp8_patch(patch);
            }
            let mut api = out.rtc.direct_api();
            if let Some(stream) = api.stream_tx_by_mid(sub_mid, None) {
                stream.write_rtp(write);
                if !out.queued {
                    out.queued = true;
                    self.dirty.push_back(sub.peer);
                }
            }
        }
        let Some(peer) = peers.get_mut(&publisher) else {
            return;
        };
        for (index, want) in wanted_layers.iter().enumerate() {
            let layer = Layer::ALL[index];
            if *want && track.keyframes.try_request(layer, now) {
                request_keyframe(&mut peer.rtc, track.mid, Some(layer.rid().into()));
            }
        }
        // A track without simulcast uses the lowest layer's slot in the throttle.
        if wanted_plain && track.keyframes.try_request(Layer::Low, now) {
            request_keyframe(&mut peer.rtc, track.mid, None);
        }
        if !peer.queued {
            peer.queued = true;
            self.dirty.push_back(publisher);
        }
    }

    pub(super) fn on_keyframe_request(&mut self, subscriber: PeerId, mid: Mid) {
        let Some(track_id) = self
            .peers
            .get(&subscriber)
            .and_then(|p| p.subscribed.get(&mid))
            .copied()
        else {
            return;
        };
        let Some(track) = self.tracks.get_mut(&track_id) else {
            return;
        };
        let Some(sub) = track.subscribers.iter().find(|s| s.peer == subscriber) else {
            return;
        };
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

fn request_keyframe(rtc: &mut Rtc, mid: Mid, rid: Option<Rid>) {
    if let Some(rx) = rtc.direct_api().stream_rx_by_mid(mid, rid) {
        rx.request_keyframe(KeyframeRequestKind::Pli);
    }
}
