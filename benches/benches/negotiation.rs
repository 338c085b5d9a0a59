//! What a new publisher connection costs the server: creating its `Rtc` (DTLS certificate
//! included) and answering a browser-like offer with audio and three-layer simulcast video.

use std::time::Instant;

use criterion::{BatchSize, Criterion, criterion_group, criterion_main};
use sightline_sfu::sdp::SdpOffer;
use sightline_sfu::{Engine, PeerId};
use str0m::Rtc;
use str0m::media::{Direction, MediaKind, Simulcast, SimulcastLayer};

fn browser_like_offer() -> SdpOffer {
    let mut client = Rtc::builder().build(Instant::now());
    let mut change = client.sdp_api();
    change.add_media(MediaKind::Audio, Direction::SendOnly, None, None, None);
    let mut simulcast = Simulcast::new();
    for rid in ["q", "h", "f"] {
        simulcast.add_send_layer(SimulcastLayer::new(rid));
    }
    change.add_media(
        MediaKind::Video,
        Direction::SendOnly,
        None,
        None,
        Some(simulcast),
    );
    let (offer, _pending) = change.apply().expect("an offer");
    offer
}

fn negotiation(c: &mut Criterion) {
    let local = "127.0.0.1:5000".parse().expect("address");
    c.bench_function("publisher_offer/audio+simulcast_video", |b| {
        b.iter_batched(
            || {
                (
                    Engine::new(local, &[], Instant::now()),
                    browser_like_offer(),
                )
            },
            |(mut engine, offer)| {
                let answer = engine.publisher_offer(PeerId(1), offer, Instant::now());
                (engine, answer)
            },
            BatchSize::SmallInput,
        );
    });
}

criterion_group!(benches, negotiation);
criterion_main!(benches);
