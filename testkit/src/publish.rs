//! A publisher like a browser's: one publisher connection with an Opus microphone and a VP8
//! camera (optionally in three simulcast layers), sending the real encoded media in real time.
//! str0m in frame mode packetizes it, as a browser's RTP stack would.

use std::net::IpAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use str0m::change::{SdpAnswer, SdpOffer, SdpPendingOffer};
use str0m::format::Codec;
use str0m::media::{
    Direction, Frequency, MediaKind, MediaTime, Mid, Pt, Rid, Simulcast, SimulcastLayer,
};

use crate::media::{AUDIO_PACKET_MS, EncodedMedia, Layer, TONE_DBOV, VIDEO_FPS};
use crate::peer::UdpPeer;

/// A camera and microphone publisher.
#[derive(Debug)]
pub struct MediaPublisher {
    /// The publisher connection.
    pub peer: UdpPeer,
    /// The microphone's m-line.
    pub audio: Mid,
    /// The camera's m-line.
    pub video: Mid,
    simulcast: bool,
    pending: Option<SdpPendingOffer>,
    started: Option<Instant>,
    /// Set by the first `send_due`.
    sending: bool,
    audio_sent: u64,
    video_sent: u64,
    /// Per layer: frames skipped ahead in the media (see [`MediaPublisher::handle_event`]).
    skipped: [u64; 3],
    /// Per layer: a keyframe was asked for and goes out with the next frame.
    keyframe_wanted: [bool; 3],
    /// The video m-line was stopped ([`MediaPublisher::stop_video`]): no more frames.
    video_stopped: bool,
    /// Per layer: not sent ([`MediaPublisher::pause_layer`]).
    paused: [bool; 3],
}

impl MediaPublisher {
    /// A publisher and its offer (for `publish_offer`); with `simulcast`, the camera is sent in
    /// the three layers of [`Layer::ALL`], otherwise only the largest.
    pub async fn new(simulcast: bool) -> Result<(MediaPublisher, SdpOffer)> {
        MediaPublisher::with_peer(simulcast, UdpPeer::frames().await?)
    }

    /// [`MediaPublisher::new`] on another local address.
    pub async fn new_on(simulcast: bool, ip: IpAddr) -> Result<(MediaPublisher, SdpOffer)> {
        MediaPublisher::with_peer(simulcast, UdpPeer::frames_on(ip).await?)
    }

    fn with_peer(simulcast: bool, mut peer: UdpPeer) -> Result<(MediaPublisher, SdpOffer)> {
        let mut change = peer.rtc.sdp_api();
        let audio = change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
        let layers = simulcast.then(|| {
            let mut layers = Simulcast::new();
            for layer in Layer::ALL {
                layers.add_send_layer(SimulcastLayer::new(layer.rid));
            }
            layers
        });
        let video = change.add_media(MediaKind::Video, Direction::SendOnly, None, None, layers);
        let (offer, pending) = change.apply().context("a publisher offer")?;
        Ok((
            MediaPublisher {
                peer,
                audio,
                video,
                simulcast,
                pending: Some(pending),
                started: None,
                sending: false,
                audio_sent: 0,
                video_sent: 0,
                skipped: [0; 3],
                keyframe_wanted: [false; 3],
                video_stopped: false,
                paused: [false; 3],
            },
            offer,
        ))
    }

    /// Answers a keyframe request as a browser's encoder would, with a keyframe at once: the
    /// layer asked for jumps ahead to the next keyframe of its (looping, pre-encoded) media.
    /// The RTP timestamps keep real time; only the picture jumps. Other events are ignored.
    pub fn handle_event(&mut self, event: &str0m::Event) {
        let str0m::Event::KeyframeRequest(request) = event else {
            return;
        };
        if request.mid != self.video {
            return;
        }
        match &request.rid {
            Some(rid) => {
                if let Some(index) = Layer::ALL.iter().position(|layer| **rid == *layer.rid) {
                    self.keyframe_wanted[index] = true;
                }
            }
            // No rid: the whole camera, every layer (as a browser's encoder does).
            None => self.keyframe_wanted = [true; 3],
        }
    }

    /// Stops sending video, as a browser's "Stop sharing" does: returns an offer with the video
    /// m-line inactive (for `publish_offer`, then [`MediaPublisher::accept_answer`]); no more
    /// frames are written.
    pub fn stop_video(&mut self) -> Result<SdpOffer> {
        let mut change = self.peer.rtc.sdp_api();
        change.set_direction(self.video, Direction::Inactive);
        let (offer, pending) = change.apply().context("an offer stopping the video")?;
        self.pending = Some(pending);
        self.video_stopped = true;
        Ok(offer)
    }

    /// Stops or resumes sending one simulcast layer, as a browser does when an encoding is set
    /// inactive or it sheds a layer; the others go on. A resumed layer starts at a keyframe.
    pub fn pause_layer(&mut self, layer: Layer, paused: bool) {
        let Some(index) = Layer::ALL.iter().position(|l| *l == layer) else {
            return;
        };
        self.paused[index] = paused;
        if !paused {
            self.keyframe_wanted[index] = true;
        }
    }

    /// The server's answer to the offer.
    pub fn accept_answer(&mut self, answer: SdpAnswer) -> Result<()> {
        let pending = self.pending.take().context("no offer is pending")?;
        self.peer.rtc.sdp_api().accept_answer(pending, answer)?;
        Ok(())
    }

    fn payload_type(&mut self, mid: Mid, codec: Codec) -> Result<Pt> {
        let writer = self
            .peer
            .rtc
            .writer(mid)
            .context("a writer for the m-line")?;
        writer
            .payload_params()
            .find(|p| p.spec().codec == codec)
            .map(|p| p.pt())
            .with_context(|| format!("{codec:?} negotiated"))
    }

    /// Schedules the media on a clock shared with other publishers: audio packet n is due at
    /// `epoch` + 20 ms × n and video frame n at `epoch` + n / 30 s (so a receiver can tell how
    /// late a frame is from which frame it is). Without it the first `send_due` sets the epoch.
    pub fn set_epoch(&mut self, epoch: Instant) {
        self.started = Some(epoch);
    }

    /// Makes every layer's next frame a keyframe (as after a keyframe request): call it when
    /// switching [`send_due`](Self::send_due) to other media, so receivers decode the new
    /// picture from its start.
    pub fn force_keyframe(&mut self) {
        self.keyframe_wanted = [true; 3];
    }

    /// When the next audio packet or video frame is due, once sending has started.
    pub fn next_due(&self) -> Option<Instant> {
        let started = self.started?;
        let audio = started + Duration::from_millis(self.audio_sent * u64::from(AUDIO_PACKET_MS));
        let video =
            started + Duration::from_micros(self.video_sent * 1_000_000 / u64::from(VIDEO_FPS));
        Some(audio.min(video))
    }

    /// Writes every audio packet and video frame due by `now`, looping over `media`. Call it
    /// once the connection is up (str0m drops media written before), and often: it keeps
    /// real-time pace, 20 ms per Opus packet and 30 frames per second. What fell due before the
    /// first call is skipped, not sent in a burst.
    pub fn send_due(&mut self, media: &EncodedMedia, now: Instant) -> Result<()> {
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
        if !self.sending {
            self.sending = true;
            self.audio_sent = elapsed.as_millis() as u64 / u64::from(AUDIO_PACKET_MS);
            self.video_sent = elapsed.as_micros() as u64 * u64::from(VIDEO_FPS) / 1_000_000;
        }
        let audio_pt = self.payload_type(self.audio, Codec::Opus)?;
        let audio_due = elapsed.as_millis() as u64 / u64::from(AUDIO_PACKET_MS) + 1;
        while self.audio_sent < audio_due {
            let n = self.audio_sent;
            let packet = &media.opus[(n % media.opus.len() as u64) as usize];
            let wallclock = started + Duration::from_millis(n * u64::from(AUDIO_PACKET_MS));
            let time = MediaTime::new(n * 960, Frequency::FORTY_EIGHT_KHZ);
            self.peer
                .rtc
                .writer(self.audio)
                .context("audio writer")?
                // As browsers do: the level in the header lets the SFU see who speaks.
                .audio_level(TONE_DBOV, true)
                .write(audio_pt, wallclock, time, packet.clone())?;
            self.audio_sent += 1;
        }
        if self.video_stopped {
            return Ok(());
        }
        let video_pt = self.payload_type(self.video, Codec::Vp8)?;
        let fps = u64::from(VIDEO_FPS);
        let video_due = elapsed.as_micros() as u64 * fps / 1_000_000 + 1;
        while self.video_sent < video_due {
            let n = self.video_sent;
            let wallclock = started + Duration::from_micros(n * 1_000_000 / fps);
            let time = MediaTime::new(n * 90_000 / fps, Frequency::NINETY_KHZ);
            for (index, layer) in Layer::ALL.iter().enumerate() {
                if (!self.simulcast && index + 1 < Layer::ALL.len()) || self.paused[index] {
                    continue;
                }
                let frames = &media.video[index];
                let length = frames.len() as u64;
                if std::mem::take(&mut self.keyframe_wanted[index]) {
                    // The nearest keyframe at or after this frame (every layer has them).
                    if let Some(ahead) = (0..length).find(|ahead| {
                        frames[((n + self.skipped[index] + ahead) % length) as usize].keyframe
                    }) {
                        self.skipped[index] += ahead;
                    }
                }
                let frame = &frames[((n + self.skipped[index]) % length) as usize];
                let mut writer = self.peer.rtc.writer(self.video).context("video writer")?;
                if self.simulcast {
                    writer = writer.rid(Rid::from(layer.rid));
                }
                writer.write(video_pt, wallclock, time, frame.data.clone())?;
            }
            self.video_sent += 1;
        }
        Ok(())
    }
}
