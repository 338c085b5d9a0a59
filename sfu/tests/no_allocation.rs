//! The per-packet forwarding path must not allocate: at thousands of packets per second per
//! subscriber, allocator traffic would dominate the cost and add latency jitter. This test counts
//! every allocation the process makes while packets fan out to ten subscribers.
//!
//! The count is process-wide, so this test runs without libtest's harness (`harness = false`):
//! no runner thread may allocate while it measures, which made it fail now and then on a busy
//! machine.

use std::alloc::System;
use std::time::{Duration, Instant};

use sightline_sfu::{Codec, Decision, DownTrack, Incoming, Layer, SourceId};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn main() {
    fan_out_does_not_allocate();
    println!("1 passed, 0 failed");
}

fn fan_out_does_not_allocate() {
    let start = Instant::now();
    let payload_key = [0x90u8, 0x80, 0x80, 0x01, 0x00, 0x9d, 0x01, 0x2a];
    let payload_delta = [0x90u8, 0x80, 0x80, 0x02, 0x01, 0x00, 0x00, 0x00];
    let mut tracks: Vec<DownTrack> = (0..10)
        .map(|_| DownTrack::new(Codec::Vp8, Some(Layer::High)))
        .collect();
    let mut forwarded = 0usize;

    let region = Region::new(GLOBAL);
    for i in 0..3000u64 {
        let payload: &[u8] = if i.is_multiple_of(300) {
            &payload_key
        } else {
            &payload_delta
        };
        let packet = Incoming::parse(
            Codec::Vp8,
            SourceId(42),
            Some(Layer::High),
            60_000 + i,
            (i / 3) * 3000,
            start + Duration::from_millis(i * 11),
            payload,
        );
        for track in &mut tracks {
            if let Decision::Forward(_) = track.forward(&packet) {
                forwarded += 1;
            }
            if i == 1500 {
                // A switch to a layer that never arrives: the current one keeps flowing, and the
                // pending-switch path is measured too.
                track.set_target(Some(Layer::Low));
            }
        }
    }
    let stats = region.change();

    assert_eq!(forwarded, 30_000, "every packet reached every subscriber");
    assert_eq!(stats.allocations, 0, "forwarding allocated: {stats:?}");
    assert_eq!(stats.reallocations, 0, "forwarding reallocated: {stats:?}");
}
