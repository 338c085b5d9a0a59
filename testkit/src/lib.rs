//! What Sightline's integration tests and load tool use to act like browsers: a str0m peer
//! connection over a real UDP socket ([`UdpPeer`]), and real encoded media to publish
//! ([`EncodedMedia`]: Opus voice and VP8 video in three simulcast sizes, encoded once per
//! process by GStreamer's `opusenc` and `vp8enc`), and [`discover`], what a recorded file holds, and
//! [`scene_media`], camera pictures with and without faces for the proctoring tests, and
//! [`NatsServer`], a private NATS for the cluster tests (optionally with a password and TLS
//! from a throwaway CA, [`TestPki`]), and [`RtcClient`], a typed client of the `/rtc` socket.
//!
//! Not used by the server. Every wait here is bounded by the caller.

mod inspect;
mod media;
mod nats;
mod peer;
mod pki;
mod publish;
mod rtc_client;
mod scenes;
mod smtp;
mod vp8;

pub use inspect::{Discovered, discover};
pub use media::{AUDIO_PACKET_MS, EncodedMedia, Layer, TONE_DBOV, VIDEO_FPS, Vp8Frame, media};
pub use nats::{NatsSecurity, NatsServer, NatsTlsFiles};
pub use peer::{UdpPeer, candidate_addr, tcp_candidate_addr, tcp_candidates_only};
pub use pki::TestPki;
pub use publish::MediaPublisher;
pub use rtc_client::RtcClient;
pub use scenes::{SCENE_SIZE, Scene, photo_crop, photo_path, scene_frame, scene_media};
pub use smtp::SmtpSink;
pub use vp8::vp8_descriptor;
