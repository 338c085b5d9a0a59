//! The SFU's per-packet cost in the sans-IO core: parsing a published packet once, then deciding
//! and rewriting it for each of N subscribers (1 → N fan-out). SRTP and socket costs are not
//! included; they belong to the end-to-end load figures.

use std::time::{Duration, Instant};

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use sightline_sfu::{Codec, DownTrack, Incoming, Layer, SourceId};

const KEYFRAME: [u8; 8] = [0x90, 0x80, 0x80, 0x01, 0x00, 0x9d, 0x01, 0x2a];
const DELTA: [u8; 8] = [0x90, 0x80, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00];

fn fan_out(c: &mut Criterion) {
    let mut group = c.benchmark_group("forward_fan_out");
    for subscribers in [1usize, 3, 10] {
        group.throughput(Throughput::Elements(subscribers as u64));
        group.bench_with_input(
            BenchmarkId::from_parameter(subscribers),
            &subscribers,
            |b, &n| {
                let start = Instant::now();
                let mut tracks: Vec<DownTrack> = (0..n)
                    .map(|_| DownTrack::new(Codec::Vp8, Some(Layer::High)))
                    .collect();
                let mut seq = 0u64;
                b.iter(|| {
                    let payload: &[u8] = if seq.is_multiple_of(300) {
                        &KEYFRAME
                    } else {
                        &DELTA
                    };
                    let packet = Incoming::parse(
                        Codec::Vp8,
                        SourceId(7),
                        Some(Layer::High),
                        seq,
                        (seq / 3) * 3000,
                        start + Duration::from_micros(seq * 3700),
                        payload,
                    );
                    seq += 1;
                    for track in &mut tracks {
                        std::hint::black_box(track.forward(&packet));
                    }
                });
            },
        );
    }
    group.finish();
}

criterion_group!(benches, fan_out);
criterion_main!(benches);
