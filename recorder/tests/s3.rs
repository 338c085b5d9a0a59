//! The S3 store against a real S3-compatible server (`s3s-fs`, installed by `scripts/test`),
//! started here on a free loopback port: objects kept, replaced, listed, deleted, uploaded in
//! parts, shared through presigned URLs that expire; and a recording that outlives an outage of
//! the server: segments wait on disk and arrive, each once, when it is back.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use sightline_recorder::{
    Manifest, ObjectStore, PacketSource, Recorder, RecordingStatus, S3Config, S3Store, TakeInfo,
};
use sightline_sfu::{Codec, TapPacket, TrackId};
use sightline_testkit::{discover, media};
use tokio::sync::mpsc;

const ACCESS_KEY: &str = "sightline-test";
const SECRET_KEY: &str = "sightline-test-secret-key";

/// An `s3s-fs` server whose data directory outlives it, so it can be stopped and started again.
struct S3Server {
    child: Option<Child>,
    port: u16,
    dir: PathBuf,
}

impl S3Server {
    fn start(dir: &Path) -> S3Server {
        std::fs::create_dir_all(dir).expect("the server's data directory");
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("a free port")
            .port();
        let mut server = S3Server {
            child: None,
            port,
            dir: dir.to_owned(),
        };
        server.run();
        server
    }

    fn run(&mut self) {
        let binary = std::env::var("SIGHTLINE_S3S_FS").unwrap_or_else(|_| "s3s-fs".into());
        let child = Command::new(&binary)
            .args(["--host", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--access-key", ACCESS_KEY, "--secret-key", SECRET_KEY])
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "starting {binary} (scripts/test installs it with cargo install s3s-fs): {e}"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(15);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(Instant::now() < deadline, "s3s-fs did not start");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn store(&self, bucket: &str) -> S3Store {
        S3Store::new(&S3Config {
            endpoint: format!("http://127.0.0.1:{}", self.port),
            region: "us-east-1".into(),
            bucket: bucket.into(),
            path_style: true,
            access_key: ACCESS_KEY.into(),
            secret_key: SECRET_KEY.into(),
        })
    }
}

impl Drop for S3Server {
    fn drop(&mut self) {
        self.stop();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_s3_store_keeps_lists_deletes_and_shares_for_a_while() {
    let dir = tempfile::tempdir().expect("dir");
    let server = S3Server::start(dir.path());
    let store = server.store("recordings");
    store.ensure_bucket().await.expect("bucket");
    store
        .ensure_bucket()
        .await
        .expect("an existing bucket is fine");

    store
        .put_bytes("recordings/r1/manifest.json", b"one".to_vec())
        .await
        .expect("put");
    store
        .put_bytes("recordings/r1/manifest.json", b"two".to_vec())
        .await
        .expect("replace");
    assert_eq!(
        store.get("recordings/r1/manifest.json").await.expect("get"),
        Some(b"two".to_vec())
    );
    assert_eq!(store.get("recordings/r1/none").await.expect("get"), None);

    // Above 16 MiB a file goes up in parts, and comes back whole.
    let big: Vec<u8> = (0..17 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
    let file = dir.path().join("big.webm");
    std::fs::write(&file, &big).expect("file");
    store
        .put_file("recordings/r1/t1.webm", &file)
        .await
        .expect("multipart upload");
    let back = dir.path().join("back.webm");
    assert!(
        store
            .download("recordings/r1/t1.webm", &back)
            .await
            .expect("download")
    );
    assert_eq!(std::fs::read(&back).expect("read"), big);
    assert_eq!(
        store.list("recordings/r1/").await.expect("list"),
        vec!["recordings/r1/manifest.json", "recordings/r1/t1.webm"]
    );

    // A presigned URL works without credentials, and one past its lifetime does not. (Two URLs:
    // a signature's time is counted in whole seconds, so a short-lived one may have less than a
    // second left by the time a busy machine asks with it.)
    let presign = |lifetime| store.presigned_get("recordings/r1/manifest.json", lifetime);
    let url = presign(Duration::from_secs(600))
        .await
        .expect("presign")
        .expect("S3 presigns");
    let client = reqwest::Client::new();
    let fresh = client.get(&url).send().await.expect("request");
    assert_eq!(fresh.status(), reqwest::StatusCode::OK);
    assert_eq!(fresh.bytes().await.expect("body").as_ref(), b"two");
    let url = presign(Duration::from_secs(1))
        .await
        .expect("presign")
        .expect("S3 presigns");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stale = client.get(&url).send().await.expect("request");
    assert_eq!(stale.status(), reqwest::StatusCode::FORBIDDEN, "expired");

    store
        .delete("recordings/r1/manifest.json")
        .await
        .expect("delete");
    assert_eq!(store.list("recordings/").await.expect("list").len(), 1);
}

/// A tap stand-in fed from a channel.
struct ChannelSource(mpsc::UnboundedReceiver<TapPacket>);

impl PacketSource for ChannelSource {
    async fn recv(&mut self) -> Option<TapPacket> {
        self.0.recv().await
    }

    fn request_keyframe(&self) {}
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segments_wait_out_an_s3_outage_and_arrive_once() {
    const SECONDS: u64 = 26;
    const DOWN_AT: Duration = Duration::from_secs(3);
    const UP_AT: Duration = Duration::from_secs(23);
    let dir = tempfile::tempdir().expect("dir");
    let mut server = S3Server::start(&dir.path().join("s3"));
    let store = server.store("recordings");
    store.ensure_bucket().await.expect("bucket");
    let store: Arc<dyn ObjectStore> = Arc::new(store);
    let spool = dir.path().join("spool");
    let recorder = Recorder::with_segment(Arc::clone(&store), &spool, Duration::from_secs(2));
    let recording = recorder.start("r1", "i1").expect("started");
    let (tx, rx) = mpsc::unbounded_channel();
    recording.add_take(
        TakeInfo {
            id: "t1".into(),
            participant: "cas".into(),
            source: "camera".into(),
            codec: Codec::Vp8,
        },
        ChannelSource(rx),
    );

    let frames = &media().expect("media").video[0];
    let start = Instant::now();
    let mut spooled_during_outage = 0;
    for n in 0..SECONDS * 30 {
        let arrival = start + Duration::from_micros(n * 33_333);
        tokio::time::sleep_until(arrival.into()).await;
        let elapsed = start.elapsed();
        if elapsed >= DOWN_AT && server.child.is_some() && elapsed < UP_AT {
            server.stop();
        }
        if elapsed >= UP_AT && server.child.is_none() {
            let spooled = std::fs::read_dir(spool.join("r1/t1"))
                .map(|entries| entries.count())
                .unwrap_or(0);
            spooled_during_outage = spooled;
            server.run();
        }
        let frame = &frames[n as usize % frames.len()];
        let mut payload = vec![0x10];
        payload.extend_from_slice(&frame.data);
        tx.send(TapPacket {
            track: TrackId(1),
            codec: Codec::Vp8,
            seq: n,
            rtp_time: n * 3000,
            marker: true,
            keyframe: frame.keyframe,
            payload: Arc::from(payload),
            arrival,
            sender_time: None,
        })
        .expect("sent");
    }
    assert!(
        spooled_during_outage >= 5,
        "segments waited on disk while the store was down: {spooled_during_outage}"
    );
    drop(tx);
    let manifest = recording.stop().await.expect("stopped");
    assert_eq!(manifest.status, RecordingStatus::Complete);

    // Every segment arrived, each once, and all of them are in the joined file.
    let segments = &manifest.tracks[0].segments;
    let indices: Vec<u32> = segments.iter().map(|s| s.index).collect();
    assert_eq!(
        indices,
        (0..indices.len() as u32).collect::<Vec<_>>(),
        "none missing, none twice"
    );
    assert!(segments.iter().all(|s| s.stored));
    let keys = store.list("recordings/r1/").await.expect("list");
    assert_eq!(
        keys,
        vec!["recordings/r1/manifest.json", "recordings/r1/t1.webm"],
        "one file and the manifest, no stray segments"
    );
    let file = dir.path().join("t1.webm");
    assert!(
        store
            .download("recordings/r1/t1.webm", &file)
            .await
            .expect("download")
    );
    let duration = discover(&file).expect("inspected").duration.as_secs_f64();
    assert!(
        (duration - SECONDS as f64).abs() < 1.0,
        "everything recorded reached the store: {duration} s of {SECONDS} s"
    );
    let stored: Manifest = serde_json::from_slice(
        &store
            .get(&Manifest::key("r1"))
            .await
            .expect("get")
            .expect("manifest"),
    )
    .expect("parses");
    assert_eq!(stored.status, RecordingStatus::Complete);
}
