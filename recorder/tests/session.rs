//! Whole recordings into a local store, from packet sources that behave like media taps: two
//! takes that start at different times line up on the session clock and each ends as one
//! seekable file; a recording whose server died is finished as `interrupted` with what was
//! stored. Real VP8 and Opus from the test kit; packets carry real-time arrival times.

use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_recorder::{
    LocalStore, Manifest, ObjectStore, PacketSource, Recorder, RecordingStatus, TakeInfo,
};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::{discover, media};
use tokio::sync::mpsc;

/// A tap stand-in: packets from a channel, keyframe requests counted.
struct ChannelSource {
    packets: mpsc::UnboundedReceiver<TapPacket>,
}

impl PacketSource for ChannelSource {
    async fn recv(&mut self) -> Option<TapPacket> {
        self.packets.recv().await
    }

    fn request_keyframe(&self) {}
}

fn source() -> (mpsc::UnboundedSender<TapPacket>, ChannelSource) {
    let (tx, packets) = mpsc::unbounded_channel();
    (tx, ChannelSource { packets })
}

/// `seconds` of video frames arriving in real time from `first_arrival` on.
fn video(first_arrival: Instant, seconds: u64) -> Vec<TapPacket> {
    let frames = &media().expect("media").video[1];
    (0..seconds * 30)
        .map(|n| {
            let frame = &frames[n as usize % frames.len()];
            let mut payload = vec![0x10];
            payload.extend_from_slice(&frame.data);
            TapPacket {
                track: TrackId(1),
                codec: Codec::Vp8,
                seq: n,
                rtp_time: n * 3000,
                marker: true,
                keyframe: frame.keyframe,
                payload: Arc::from(payload),
                arrival: first_arrival + Duration::from_micros(n * 33_333),
                sender_time: None,
            }
        })
        .collect()
}

/// `seconds` of Opus packets arriving in real time from `first_arrival` on.
fn audio(first_arrival: Instant, seconds: u64) -> Vec<TapPacket> {
    let opus = &media().expect("media").opus;
    (0..seconds * 50)
        .map(|n| TapPacket {
            track: TrackId(2),
            codec: Codec::Opus,
            seq: n,
            rtp_time: n * 960,
            marker: false,
            keyframe: true,
            payload: Arc::from(opus[n as usize % opus.len()].clone()),
            arrival: first_arrival + Duration::from_millis(n * 20),
            sender_time: None,
        })
        .collect()
}

fn take(id: &str, participant: &str, source: &str, codec: Codec) -> TakeInfo {
    TakeInfo {
        id: id.into(),
        participant: participant.into(),
        source: source.into(),
        codec,
    }
}

/// Segments the spool's manifest at `path` says are stored (0 before there is one).
fn stored_segments(path: &std::path::Path) -> usize {
    let Ok(manifest) = std::fs::read(path) else {
        return 0;
    };
    let Ok(manifest) = serde_json::from_slice::<serde_json::Value>(&manifest) else {
        return 0;
    };
    manifest["tracks"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|track| track["segments"].as_array().into_iter().flatten())
        .filter(|segment| segment["stored"] == true)
        .count()
}

/// A server that records `seconds` of camera video (take `t1` of interview `i1`) as `recording`
/// into the store at `objects`, spooling in `spool`, and then dies: its runtime stops
/// mid-recording, leaving the stored segments and the spool as a crash would.
fn record_then_crash(
    objects: &std::path::Path,
    spool: &std::path::Path,
    recording: &str,
    seconds: u64,
) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(objects));
        let recorder = Recorder::with_segment(store, spool, Duration::from_secs(1));
        let started = recorder.start(recording, "i1").expect("started");
        let (tx, camera) = source();
        started.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
        // Real-time pacing, so segments close (and upload) while the recording runs; from
        // after the media is encoded (on first use, which takes seconds on a busy machine), or
        // every packet would be due at once.
        media().expect("media");
        for packet in video(Instant::now(), seconds) {
            let due = packet.arrival;
            tokio::time::sleep_until(due.into()).await;
            tx.send(packet).expect("sent");
        }
        // What it closed by now is stored before it dies (the tests count on all but the last
        // two seconds), however slowly this machine uploads.
        let local = spool.join(recording).join("manifest.json");
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline && stored_segments(&local) + 2 < seconds as usize {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        std::mem::forget(tx);
        std::mem::forget(started);
    });
    runtime.shutdown_background();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn takes_line_up_on_the_session_clock_and_end_as_one_file_each() {
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("objects")));
    let recorder = Recorder::with_segment(
        Arc::clone(&store),
        dir.path().join("spool"),
        Duration::from_secs(2),
    );
    let recording = recorder.start("r1", "i1").expect("started");
    let start = Instant::now();

    let (camera_tx, camera) = source();
    recording.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
    // The microphone's first packet arrives 3 s into the recording.
    let (mic_tx, mic) = source();
    recording.add_take(take("t2", "ivy", "microphone", Codec::Opus), mic);
    for packet in video(start, 6) {
        camera_tx.send(packet).expect("sent");
    }
    for packet in audio(start + Duration::from_secs(3), 3) {
        mic_tx.send(packet).expect("sent");
    }
    recording.note_event("chat", "cas", Some("hello".into()));
    drop((camera_tx, mic_tx));
    let manifest = recording.stop().await.expect("stopped");

    assert_eq!(manifest.status, RecordingStatus::Complete);
    assert_eq!(manifest.tracks.len(), 2);
    assert_eq!(manifest.events[0].text.as_deref(), Some("hello"));
    let camera = &manifest.tracks[0];
    let mic = &manifest.tracks[1];
    assert!(camera.start_ms < 200, "{}", camera.start_ms);
    assert!(
        mic.start_ms.abs_diff(3_000) < 200,
        "the late take starts 3 s in: {}",
        mic.start_ms
    );
    assert!(camera.segments.len() >= 3 && camera.segments.iter().all(|s| s.stored));
    assert!(!camera.anchors.is_empty());
    for (track, seconds) in [(camera, 6.0), (mic, 3.0)] {
        let key = track.file.as_deref().expect("joined into one file");
        let path = store.local_path(key).expect("a local file");
        let found = discover(&path).expect("inspected");
        assert!(found.seekable, "{}", found.report);
        let duration = found.duration.as_secs_f64();
        assert!((duration - seconds).abs() < 0.5, "{key}: {duration} s");
        for segment in &track.segments {
            assert!(
                !store.local_path(&segment.key).expect("path").exists(),
                "segments removed"
            );
        }
    }
    // The store holds the final manifest; the spool is empty.
    let stored: Manifest = serde_json::from_slice(
        &store
            .get(&Manifest::key("r1"))
            .await
            .expect("get")
            .expect("manifest stored"),
    )
    .expect("parses");
    assert_eq!(stored, manifest);
    assert!(!dir.path().join("spool/r1").exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_the_pipeline_closes_after_the_last_packet_are_stored() {
    // A publisher that stops sending (a still screen, a stall) while the recording goes on:
    // four seconds of video arrive at once, then nothing. The pipeline closes its segments
    // after the take has handed it the last packet; they are stored all the same, before any
    // stop (or a crash would lose them).
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("objects")));
    let spool = dir.path().join("spool");
    let recorder = Recorder::with_segment(store, &spool, Duration::from_secs(1));
    let recording = recorder.start("r5", "i1").expect("started");
    let (tx, camera) = source();
    recording.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
    for packet in video(Instant::now(), 4) {
        tx.send(packet).expect("sent");
    }
    let local = spool.join("r5").join("manifest.json");
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && stored_segments(&local) < 2 {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        stored_segments(&local) >= 2,
        "segments stored while nothing arrives: {}",
        stored_segments(&local)
    );
    drop(tx);
    recording.stop().await.expect("stopped");
}

#[test]
fn a_recording_cut_short_by_a_crash_is_finished_as_interrupted() {
    let dir = tempfile::tempdir().expect("dir");
    let objects = dir.path().join("objects");
    let spool = dir.path().join("spool");
    // The first "server": records for a while, then its runtime dies mid-recording.
    record_then_crash(&objects, &spool, "r2", 5);
    let local: Manifest = serde_json::from_slice(
        &std::fs::read(spool.join("r2/manifest.json")).expect("a local manifest survived"),
    )
    .expect("parses");
    let closed = local.tracks[0].segments.len();
    assert!(
        closed >= 2,
        "segments were closed before the crash: {closed}"
    );
    // What the closed segments held. splitmuxsink closes a segment once the keyframe interval
    // after it is complete, so the one being written and that interval are what a crash loses.
    let kept_ms = local.tracks[0]
        .segments
        .iter()
        .map(|s| s.end_ms)
        .max()
        .unwrap_or(0);
    assert!(kept_ms >= 2_000, "{kept_ms} ms");

    // The next start finds it and finishes it.
    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let manifests = runtime.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&objects));
        let recorder = Recorder::new(store, &spool);
        let unfinished = recorder.unfinished();
        recorder.recover(unfinished).await
    });
    assert_eq!(manifests.len(), 1);
    let manifest = manifests
        .into_iter()
        .next()
        .expect("one")
        .expect("finished");
    assert_eq!(manifest.status, RecordingStatus::Interrupted);
    let track = &manifest.tracks[0];
    assert!(track.segments.len() >= closed, "every closed segment kept");
    let file = objects.join(track.file.as_deref().expect("joined"));
    let found = discover(&file).expect("inspected");
    assert!(found.seekable, "{}", found.report);
    let duration = found.duration.as_secs_f64();
    assert!(
        (duration - kept_ms as f64 / 1000.0).abs() < 0.3,
        "everything the closed segments held: {duration} s, {kept_ms} ms"
    );
    assert!(!spool.join("r2").exists());
}

/// Server A records and dies; server B, on the same store with a spool of its own, goes on with
/// the same recording: A's stored takes are kept and joined by B, the time between is an
/// interruption, B's takes (whose track ids repeat A's) get names of their own, and A's spool,
/// found when A starts again, is discarded rather than finished over B's.
#[test]
fn a_recording_resumed_by_another_server_keeps_both_parts_and_marks_the_interruption() {
    let dir = tempfile::tempdir().expect("dir");
    let objects = dir.path().join("objects");
    let spool_a = dir.path().join("spool-a");
    let spool_b = dir.path().join("spool-b");
    record_then_crash(&objects, &spool_a, "r3", 4);

    let runtime = tokio::runtime::Runtime::new().expect("runtime");
    let manifest = runtime.block_on(async {
        let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(&objects));
        let b = Recorder::with_segment(Arc::clone(&store), &spool_b, Duration::from_secs(1));
        assert!(
            b.resume("r3", "another-interview")
                .await
                .expect("read")
                .is_none(),
            "only the recording's own interview resumes it"
        );
        assert!(b.resume("r9", "i1").await.expect("read").is_none());
        tokio::time::sleep(Duration::from_millis(300)).await;
        let asked = Instant::now();
        let recording = b.resume("r3", "i1").await.expect("read").expect("resumed");
        let resumed_at = recording.session_ms();
        let resume_took = asked.elapsed().as_millis() as u64;
        let (tx, camera) = source();
        recording.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
        for packet in video(Instant::now(), 3) {
            tx.send(packet).expect("sent");
        }
        drop(tx);
        let manifest = recording.stop().await.expect("stopped");

        // A starts again and finds its spool: B finishes the recording, so A discards it.
        let a = Recorder::new(Arc::clone(&store), &spool_a);
        for dir in a.unfinished() {
            a.discard(&dir).expect("discarded");
        }
        assert!(a.unfinished().is_empty());
        (manifest, resumed_at, resume_took)
    });
    let (manifest, resumed_at, resume_took) = manifest;
    assert_eq!(manifest.status, RecordingStatus::Complete);
    let ids: Vec<&str> = manifest.tracks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t1", "r1-t1"], "both servers' takes, named apart");
    let [interruption] = manifest.interruptions.as_slice() else {
        panic!("one interruption: {:?}", manifest.interruptions);
    };
    let first = &manifest.tracks[0];
    let second = &manifest.tracks[1];
    assert_eq!(interruption.start_ms, first.end_ms.expect("ended"));
    assert!(interruption.start_ms >= 2_000, "{interruption:?}");
    // It ends when B resumed: within the time resuming took (a busy machine takes long).
    assert!(
        interruption.end_ms.abs_diff(resumed_at) < resume_took + 50,
        "{interruption:?} vs {resumed_at} (resuming took {resume_took} ms)"
    );
    assert!(
        second.start_ms >= interruption.end_ms,
        "the second part starts after the interruption: {} < {}",
        second.start_ms,
        interruption.end_ms
    );
    // A's part holds what its stored segments held; B's the three seconds it was sent.
    let kept = (first.end_ms.expect("ended") - first.start_ms) as f64 / 1000.0;
    for (track, expected) in [(first, kept), (second, 3.0)] {
        let file = objects.join(track.file.as_deref().expect("joined"));
        let found = discover(&file).expect("inspected");
        assert!(found.seekable, "{}", found.report);
        let duration = found.duration.as_secs_f64();
        assert!(
            (duration - expected).abs() < 0.5,
            "{}: {duration} s, expected {expected} s",
            track.id
        );
    }
    let stored: Manifest = serde_json::from_slice(
        &std::fs::read(objects.join(Manifest::key("r3"))).expect("stored manifest"),
    )
    .expect("parses");
    assert_eq!(stored, manifest, "the store holds B's final manifest");
}

/// Server A is still recording when B takes the recording over (A lost the room but lives): A
/// abandons it, storing and finishing nothing more, and B's finish is the recording.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_server_whose_recording_was_taken_over_leaves_it_to_the_taker() {
    let dir = tempfile::tempdir().expect("dir");
    let store: Arc<dyn ObjectStore> = Arc::new(LocalStore::new(dir.path().join("objects")));
    let a = Recorder::with_segment(
        Arc::clone(&store),
        dir.path().join("spool-a"),
        Duration::from_secs(1),
    );
    let on_a = a.start("r4", "i1").expect("started");
    let (a_tx, camera) = source();
    on_a.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
    // Paced from after the media is encoded (see `record_then_crash`).
    media().expect("media");
    let start = Instant::now();
    for packet in video(start, 3) {
        let due = packet.arrival;
        tokio::time::sleep_until(due.into()).await;
        a_tx.send(packet).expect("sent");
    }
    tokio::time::sleep(Duration::from_millis(500)).await;

    let b = Recorder::with_segment(
        Arc::clone(&store),
        dir.path().join("spool-b"),
        Duration::from_secs(1),
    );
    let on_b = b.resume("r4", "i1").await.expect("read").expect("resumed");
    drop(a_tx);
    on_a.abandon().await.expect("left");
    assert!(!dir.path().join("spool-a/r4").exists(), "A's spool is gone");

    let (b_tx, camera) = source();
    on_b.add_take(take("t1", "cas", "camera", Codec::Vp8), camera);
    for packet in video(Instant::now(), 2) {
        b_tx.send(packet).expect("sent");
    }
    drop(b_tx);
    let manifest = on_b.stop().await.expect("stopped");
    assert_eq!(manifest.status, RecordingStatus::Complete);
    let ids: Vec<&str> = manifest.tracks.iter().map(|t| t.id.as_str()).collect();
    assert_eq!(ids, ["t1", "r1-t1"]);
    assert!(
        manifest.tracks.iter().all(|t| t.file.is_some()),
        "both joined"
    );
    let stored: Manifest = serde_json::from_slice(
        &store
            .get(&Manifest::key("r4"))
            .await
            .expect("get")
            .expect("stored"),
    )
    .expect("parses");
    assert_eq!(stored, manifest, "A wrote nothing over B's manifest");
}
