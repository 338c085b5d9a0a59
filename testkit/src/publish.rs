//! A publisher like a browser's: one publisher connection with an Opus microphone and a VP8
//! camera (optionally in three simulcast layers), sending the real encoded media in real time.
//! str0m in frame mode packetizes it, as a browser's RTP stack would.

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
    audio_sent: u64,
    video_sent: u64,
}

impl MediaPublisher {
    /// A publisher and its offer (for `publish_offer`); with `simulcast`, the camera is sent in
    /// the three layers of [`Layer::ALL`], otherwise only the largest.
    pub async fn new(simulcast: bool) -> Result<(MediaPublisher, SdpOffer)> {
        let mut peer = UdpPeer::frames().await?;
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
                audio_sent: 0,
                video_sent: 0,
            },
            offer,
        ))
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

    /// Writes every audio packet and video frame due by `now`, from the first call on, looping
    /// over `media`. Call it once the connection is up (str0m drops media written before), and
    /// often: it keeps real-time pace, 20 ms per Opus packet and 30 frames per second.
    pub fn send_due(&mut self, media: &EncodedMedia, now: Instant) -> Result<()> {
        let started = *self.started.get_or_insert(now);
        let elapsed = now.saturating_duration_since(started);
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
        let video_pt = self.payload_type(self.video, Codec::Vp8)?;
        let fps = u64::from(VIDEO_FPS);
        let video_due = elapsed.as_micros() as u64 * fps / 1_000_000 + 1;
        while self.video_sent < video_due {
            let n = self.video_sent;
            let wallclock = started + Duration::from_micros(n * 1_000_000 / fps);
            let time = MediaTime::new(n * 90_000 / fps, Frequency::NINETY_KHZ);
            for (index, layer) in Layer::ALL.iter().enumerate() {
                if !self.simulcast && index + 1 < Layer::ALL.len() {
                    continue;
                }
                let frames = &media.video[index];
                let frame = &frames[(n % frames.len() as u64) as usize];
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
