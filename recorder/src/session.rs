//! A recording in progress: its takes fed from media taps, each segment uploaded as soon as it
//! is closed, the manifest kept on local disk and in the store, and the finish.
//!
//! Segments are written under a local spool directory first and leave it only once the store
//! has them. While the store is unreachable, uploads retry with backoff, in order, and segments
//! wait on disk: nothing is lost and, since object keys are fixed, nothing is stored twice. The
//! manifest is rewritten locally (atomically) on every change, so a server that dies mid-way
//! finds on its next start what was recorded ([`Recorder::recover`]) and finishes it as
//! `interrupted`; only the segment being written at the time is lost.

use std::collections::VecDeque;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use sightline_sfu::{Codec, TapPacket, TapReceiver};
use tokio::sync::{mpsc, oneshot, watch};

use crate::error::RecorderError;
use crate::finalize::remux;
use crate::health::{Outage, StoreHealth, Watched};
use crate::manifest::{
    Gap, Manifest, MediaKind, ParticipantEntry, RecordingStatus, Segment, TakeClock, TimelineEvent,
    TrackEntry,
};
use crate::store::ObjectStore;
use crate::writer::{ClosedSegment, Container, SEGMENT, TrackWriter};

/// First wait after a failed upload; it doubles up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
/// Longest wait between upload attempts.
const RETRY_MAX: Duration = Duration::from_secs(5);
/// How often a take looks for segments its pipeline closed while no packet came.
const CLOSED_LOOK: Duration = Duration::from_millis(250);

/// Where a take's packets come from: a media tap, or anything that behaves like one.
pub trait PacketSource: Send + 'static {
    /// The next packet; `None` when the track ended.
    fn recv(&mut self) -> impl Future<Output = Option<TapPacket>> + Send;
    /// Asks the publisher for a keyframe.
    fn request_keyframe(&self);
}

impl PacketSource for TapReceiver {
    fn recv(&mut self) -> impl Future<Output = Option<TapPacket>> + Send {
        TapReceiver::recv(self)
    }

    fn request_keyframe(&self) {
        TapReceiver::request_keyframe(self);
    }
}

/// What a take is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TakeInfo {
    /// Unique in the recording (used in object keys: letters, digits, `-`, `_`).
    pub id: String,
    /// Publisher identity.
    pub participant: String,
    /// `camera`, `microphone`, `screen_share` or `secondary_camera`.
    pub source: String,
    /// The track's codec.
    pub codec: Codec,
}

/// Records interviews into a store, through a local spool directory.
#[derive(Debug, Clone)]
pub struct Recorder {
    inner: Arc<RecorderInner>,
}

#[derive(Debug)]
struct RecorderInner {
    /// The configured store, watched: see [`Recorder::store_outage`].
    store: Arc<dyn ObjectStore>,
    health: Arc<StoreHealth>,
    spool: PathBuf,
    segment: Duration,
}

impl Recorder {
    /// A recorder storing into `store`, writing segments under `spool` until they are stored.
    pub fn new(store: Arc<dyn ObjectStore>, spool: impl Into<PathBuf>) -> Recorder {
        Recorder::with_segment(store, spool, SEGMENT)
    }

    /// The same with another segment length (tests use short ones).
    pub fn with_segment(
        store: Arc<dyn ObjectStore>,
        spool: impl Into<PathBuf>,
        segment: Duration,
    ) -> Recorder {
        let health = Arc::new(StoreHealth::default());
        Recorder {
            inner: Arc::new(RecorderInner {
                store: Arc::new(Watched::new(store, Arc::clone(&health))),
                health,
                spool: spool.into(),
                segment,
            }),
        }
    }

    /// The store recordings go to.
    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.inner.store
    }

    /// Whether recording `recording` still has a spool directory here: it is being finished, or
    /// a previous run left it for [`Recorder::recover`]. Its row must not be deleted meanwhile,
    /// or the spool would be stored again with no row to own it.
    pub fn has_spool(&self, recording: &str) -> bool {
        valid_id(recording).is_ok() && self.inner.spool.join(recording).exists()
    }

    /// The store's outage, when its latest answer was a failure (segments then wait on disk
    /// and every upload retries until it answers).
    pub fn store_outage(&self) -> Option<Outage> {
        self.inner.health.outage()
    }

    /// Starts recording `recording` of interview `interview` now. Must run in a tokio runtime.
    pub fn start(&self, recording: &str, interview: &str) -> Result<Recording, RecorderError> {
        valid_id(recording)?;
        let manifest = Manifest::new(recording, interview, unix_ms());
        self.run(manifest, Instant::now(), String::new())
    }

    /// Goes on with recording `recording` of `interview`, which another server was making when
    /// it stopped (it died, or lost the room): what that server stored (the manifest in the
    /// store, and the segments the store holds even where that manifest lags) is kept, its
    /// takes end where their stored media ends, the time since is an interruption, and this
    /// server records on from now on the same session clock. Its takes get names of their own
    /// (`r{n}-{id}`): track ids here may repeat the other server's. The whole recording is
    /// finished here, the other server's segments included. `None` when the store holds no
    /// unfinished manifest of it (not this server's store, or it was finished): record anew.
    pub async fn resume(
        &self,
        recording: &str,
        interview: &str,
    ) -> Result<Option<Recording>, RecorderError> {
        let Some(mut manifest) = self.stored_manifest(recording).await? else {
            return Ok(None);
        };
        if manifest.status != RecordingStatus::Recording || manifest.interview != interview {
            return Ok(None);
        }
        let recorded_until = self.keep_stored(&mut manifest).await?;
        // The session clock goes on from the other server's start by this server's wall clock;
        // a clock behind the other's never makes the parts overlap.
        let resumed_ms = unix_ms()
            .saturating_sub(manifest.started_at_ms)
            .max(recorded_until);
        manifest.interruptions.push(Gap {
            start_ms: recorded_until,
            end_ms: resumed_ms,
        });
        // The store's manifest is this server's from now on, interruption included.
        let store = &self.inner.store;
        if let Ok(bytes) = serde_json::to_vec_pretty(&manifest)
            && let Err(err) = store.put_bytes(&Manifest::key(recording), bytes).await
        {
            tracing::warn!(%recording, %err, "the resumed manifest is stored with the next segment");
        }
        tracing::info!(%recording, from_ms = recorded_until, to_ms = resumed_ms, "resuming a recording another server left");
        let started = Instant::now()
            .checked_sub(Duration::from_millis(resumed_ms))
            .unwrap_or_else(Instant::now);
        let prefix = format!("r{}-", manifest.interruptions.len());
        self.run(manifest, started, prefix).map(Some)
    }

    /// Finishes recording `recording` of `interview`, which was stopped and which the server
    /// finishing it left unfinished (it died): what the store holds is joined and the manifest
    /// completed, with no interruption added (nothing was to be recorded after the stop). A
    /// manifest already finished is returned as it is. `None` when the store holds none.
    pub async fn finish_stored(
        &self,
        recording: &str,
        interview: &str,
    ) -> Result<Option<Manifest>, RecorderError> {
        let Some(mut manifest) = self.stored_manifest(recording).await? else {
            return Ok(None);
        };
        if manifest.interview != interview {
            return Ok(None);
        }
        if manifest.status != RecordingStatus::Recording {
            return Ok(Some(manifest));
        }
        let recorded_until = self.keep_stored(&mut manifest).await?;
        tracing::info!(%recording, until_ms = recorded_until, "finishing what a server that died while finishing had stored");
        let started = Instant::now()
            .checked_sub(Duration::from_millis(recorded_until))
            .unwrap_or_else(Instant::now);
        let prefix = format!("f{}-", manifest.interruptions.len());
        self.run(manifest, started, prefix)?.stop().await.map(Some)
    }

    /// The manifest of `recording` in the store, if any.
    async fn stored_manifest(&self, recording: &str) -> Result<Option<Manifest>, RecorderError> {
        valid_id(recording)?;
        let Some(bytes) = self.inner.store.get(&Manifest::key(recording)).await? else {
            return Ok(None);
        };
        Ok(Some(serde_json::from_slice(&bytes)?))
    }

    /// Keeps what the store holds of `manifest` (its segments the store has, even where the
    /// manifest lags), ends its open takes there, and says until when media was stored.
    async fn keep_stored(&self, manifest: &mut Manifest) -> Result<u64, RecorderError> {
        let stored: std::collections::HashSet<String> = self
            .inner
            .store
            .list(&format!("recordings/{}/", manifest.recording))
            .await?
            .into_iter()
            .collect();
        for track in &mut manifest.tracks {
            for segment in &mut track.segments {
                segment.stored |= stored.contains(&segment.key);
            }
        }
        end_open_takes(manifest);
        Ok(manifest
            .tracks
            .iter()
            .filter_map(|t| t.end_ms)
            .chain(manifest.interruptions.iter().map(|g| g.end_ms))
            .max()
            .unwrap_or(0))
    }

    /// Whether the store holds `recording` of `interview` unfinished, so that
    /// [`Recorder::resume`] would go on with it. `false` too when the store cannot say.
    pub async fn resumable(&self, recording: &str, interview: &str) -> bool {
        if valid_id(recording).is_err() {
            return false;
        }
        match self.inner.store.get(&Manifest::key(recording)).await {
            Ok(Some(bytes)) => serde_json::from_slice::<Manifest>(&bytes).is_ok_and(|manifest| {
                manifest.status == RecordingStatus::Recording && manifest.interview == interview
            }),
            Ok(None) => false,
            Err(err) => {
                tracing::warn!(%recording, %err, "cannot read a manifest to resume");
                false
            }
        }
    }

    /// Forgets what this server spooled of a recording another server took over (it resumed
    /// it and finishes it): nothing here is stored or joined.
    pub fn discard(&self, dir: &Path) -> Result<(), RecorderError> {
        std::fs::remove_dir_all(dir)?;
        Ok(())
    }

    /// Runs `manifest`'s recording from here on: session time 0 is `started`, new takes are
    /// named `{take_prefix}{id}`.
    fn run(
        &self,
        manifest: Manifest,
        started: Instant,
        take_prefix: String,
    ) -> Result<Recording, RecorderError> {
        let dir = self.inner.spool.join(&manifest.recording);
        std::fs::create_dir_all(&dir)?;
        save_local(&dir, &manifest)?;
        let recording = manifest.recording.clone();
        let (tx, rx) = mpsc::unbounded_channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let state = State {
            manifest,
            dir,
            store: Arc::clone(&self.inner.store),
            segment: self.inner.segment,
            started,
            running: 0,
            stop: stop_rx,
            tx: tx.clone(),
            uploads: Uploads::default(),
            take_prefix,
            abandoning: false,
            abandoned: Arc::default(),
        };
        let task = tokio::spawn(state.run(rx));
        Ok(Recording {
            id: recording,
            started,
            tx,
            stop: stop_tx,
            task,
        })
    }

    /// Recordings a previous run of the server left unfinished (it stopped while they were
    /// recording): their spool directories. Call it before any recording starts, so a live one
    /// is never taken for a dead one.
    pub fn unfinished(&self) -> Vec<PathBuf> {
        let Ok(entries) = std::fs::read_dir(&self.inner.spool) else {
            return Vec::new();
        };
        entries
            .filter_map(Result::ok)
            .map(|entry| entry.path())
            .filter(|dir| dir.join(MANIFEST_FILE).is_file())
            .collect()
    }

    /// Finishes the recordings in `dirs` (from [`Recorder::unfinished`]): what was written is
    /// stored and joined, and the manifest says `interrupted`. Returns their manifests.
    pub async fn recover(&self, dirs: Vec<PathBuf>) -> Vec<Result<Manifest, RecorderError>> {
        let mut results = Vec::new();
        for dir in dirs {
            let result = match tokio::fs::read(dir.join(MANIFEST_FILE)).await {
                Ok(bytes) => match serde_json::from_slice::<Manifest>(&bytes) {
                    Ok(manifest) => self.finish_interrupted(manifest, &dir).await,
                    Err(err) => Err(err.into()),
                },
                Err(err) => Err(err.into()),
            };
            results.push(result);
        }
        results
    }

    async fn finish_interrupted(
        &self,
        mut manifest: Manifest,
        dir: &Path,
    ) -> Result<Manifest, RecorderError> {
        tracing::info!(recording = %manifest.recording, "finishing an interrupted recording");
        manifest.status = RecordingStatus::Interrupted;
        let store = &self.inner.store;
        for track in &mut manifest.tracks {
            for segment in &mut track.segments {
                if !segment.stored {
                    let local = segment_path(dir, &track.id, segment, &track.codec);
                    if local.exists() {
                        segment.stored = upload_until_stored(
                            store.as_ref(),
                            &segment.key,
                            &local,
                            &NEVER_ABANDONED,
                        )
                        .await;
                    }
                }
            }
        }
        end_open_takes(&mut manifest);
        if manifest.duration_ms.is_none() {
            manifest.duration_ms = manifest.tracks.iter().filter_map(|t| t.end_ms).max();
        }
        finalize(store.as_ref(), &mut manifest, dir).await?;
        Ok(manifest)
    }
}

/// Keeps only stored segments (the others are gone with a dead server's spool) and ends every
/// take still open, or missing segments, where its kept media ends.
fn end_open_takes(manifest: &mut Manifest) {
    for track in &mut manifest.tracks {
        let all_stored = track.segments.iter().all(|s| s.stored);
        track.segments.retain(|s| s.stored);
        // What the kept segments hold, from where the take started: where an open take ends,
        // and where one that ended but lost segments now ends.
        let media_end = track.segments.iter().map(|s| s.end_ms).max().unwrap_or(0);
        let kept_end = track.start_ms + media_end;
        track.end_ms = match track.end_ms {
            Some(end) if all_stored => Some(end),
            Some(end) => Some(end.min(kept_end)),
            None => Some(kept_end),
        };
    }
}

fn unix_ms() -> u64 {
    SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// A recording in progress.
#[derive(Debug)]
pub struct Recording {
    id: String,
    started: Instant,
    tx: mpsc::UnboundedSender<Message>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<Result<Manifest, RecorderError>>,
}

impl Recording {
    /// The recording's id.
    pub fn id(&self) -> &str {
        &self.id
    }

    /// Milliseconds since the recording started (its session clock).
    pub fn session_ms(&self) -> u64 {
        self.started.elapsed().as_millis() as u64
    }

    /// Records a track from now until it ends or the recording stops.
    pub fn add_take(&self, info: TakeInfo, source: impl PacketSource) {
        if valid_id(&info.id).is_err() {
            tracing::warn!(take = %info.id, "take id unfit for storage keys; not recorded");
            return;
        }
        let _ = self.tx.send(Message::AddTake(
            info,
            Box::new(|ctx| spawn_take(ctx, source)),
        ));
    }

    /// Someone is (or was) in the room.
    pub fn note_participant(&self, entry: ParticipantEntry) {
        let _ = self.tx.send(Message::Participant(entry));
    }

    /// A join, a leave or a chat message, now.
    pub fn note_event(&self, kind: &str, participant: &str, text: Option<String>) {
        let _ = self.tx.send(Message::Event(TimelineEvent {
            at_ms: self.session_ms(),
            kind: kind.to_owned(),
            participant: participant.to_owned(),
            text,
        }));
    }

    /// Stops every take, waits until every segment is stored (retrying while the store is
    /// unreachable), joins each take into one file and completes the manifest.
    pub async fn stop(self) -> Result<Manifest, RecorderError> {
        self.end(true).await
    }

    /// Stops every take and stores what was written, but finishes nothing: another server
    /// took the recording over ([`Recorder::resume`]) and finishes it. The spool goes.
    pub async fn abandon(self) -> Result<Manifest, RecorderError> {
        self.end(false).await
    }

    async fn end(self, finish: bool) -> Result<Manifest, RecorderError> {
        let (reply, done) = oneshot::channel();
        let _ = self.stop.send(true);
        let _ = self.tx.send(Message::Stop {
            reply,
            at_ms: self.session_ms(),
            finish,
        });
        let _ = done.await;
        self.task
            .await
            .map_err(|e| RecorderError::Pipeline(format!("recording task: {e}")))?
    }
}

const MANIFEST_FILE: &str = "manifest.json";

fn valid_id(id: &str) -> Result<(), RecorderError> {
    let ok = !id.is_empty()
        && id.len() <= 64
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
    if ok {
        Ok(())
    } else {
        Err(RecorderError::BadKey(id.to_owned()))
    }
}

fn codec_name(codec: Codec) -> &'static str {
    match codec {
        Codec::Opus => "Opus",
        Codec::Vp8 => "VP8",
        Codec::Vp9 => "VP9",
        Codec::H264 => "H264",
    }
}

fn codec_from_name(name: &str) -> Codec {
    match name {
        "Opus" => Codec::Opus,
        "VP9" => Codec::Vp9,
        "H264" => Codec::H264,
        _ => Codec::Vp8,
    }
}

fn segment_path(dir: &Path, take: &str, segment: &Segment, codec: &str) -> PathBuf {
    let extension = Container::for_codec(codec_from_name(codec)).extension;
    dir.join(take)
        .join(format!("seg-{:05}.{extension}", segment.index))
}

/// Writes the manifest into the spool directory, atomically.
fn save_local(dir: &Path, manifest: &Manifest) -> Result<(), RecorderError> {
    let bytes = serde_json::to_vec_pretty(manifest)?;
    let partial = dir.join("manifest.json.partial");
    std::fs::write(&partial, bytes)?;
    std::fs::rename(&partial, dir.join(MANIFEST_FILE))?;
    Ok(())
}

/// For uploads no other server can take away (recovery, finishing).
static NEVER_ABANDONED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Retries until the store has the file: the store coming back is only a matter of time, and
/// the segment must not be lost meanwhile. Unless the recording was `abandoned` (another
/// server took it over): its spool is gone, and nothing names this segment any more.
/// `false` only when the file to upload is gone: retrying cannot bring it back.
async fn upload_until_stored(
    store: &dyn ObjectStore,
    key: &str,
    path: &Path,
    abandoned: &std::sync::atomic::AtomicBool,
) -> bool {
    let given_up = || abandoned.load(std::sync::atomic::Ordering::SeqCst);
    let mut wait = RETRY_FIRST;
    loop {
        // Asked before the store, whose health a missing local file says nothing about.
        if matches!(tokio::fs::try_exists(path).await, Ok(false)) {
            if given_up() {
                tracing::debug!(%key, "an abandoned recording's spool is gone; upload given up");
                return true;
            }
            tracing::error!(%key, "the file to upload is gone; not uploaded");
            return false;
        }
        match store.put_file(key, path).await {
            Ok(()) => return true,
            Err(err) if given_up() => {
                tracing::debug!(%key, %err, "an abandoned recording's last upload is given up");
                return true;
            }
            Err(err) => {
                tracing::warn!(%key, %err, retry_in = ?wait, "upload failed; the segment waits on disk");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

async fn put_manifest_until_stored(store: &dyn ObjectStore, manifest: &Manifest) {
    let Ok(bytes) = serde_json::to_vec_pretty(manifest) else {
        return;
    };
    let key = Manifest::key(&manifest.recording);
    let mut wait = RETRY_FIRST;
    while let Err(err) = store.put_bytes(&key, bytes.clone()).await {
        tracing::warn!(%key, %err, retry_in = ?wait, "manifest upload failed");
        tokio::time::sleep(wait).await;
        wait = (wait * 2).min(RETRY_MAX);
    }
}

/// Retries until the store answers, like uploads: `false` only when the object is not there.
async fn download_until_answered(store: &dyn ObjectStore, key: &str, to: &Path) -> bool {
    let mut wait = RETRY_FIRST;
    loop {
        match store.download(key, to).await {
            Ok(found) => return found,
            Err(err) => {
                tracing::warn!(%key, %err, retry_in = ?wait, "download failed");
                tokio::time::sleep(wait).await;
                wait = (wait * 2).min(RETRY_MAX);
            }
        }
    }
}

/// Joins every take's stored segments into one file, removes the segments, and stores the
/// final manifest; the spool directory goes last. Each joined file is written into the manifest
/// (locally and in the store) before its segments are deleted, so a crash or a store failure
/// in between leaves every take with its segments or its file, never neither.
async fn finalize(
    store: &dyn ObjectStore,
    manifest: &mut Manifest,
    dir: &Path,
) -> Result<(), RecorderError> {
    let work = dir.join("finalize");
    tokio::fs::create_dir_all(&work).await?;
    for index in 0..manifest.tracks.len() {
        let track = &manifest.tracks[index];
        if track.segments.is_empty() || track.file.is_some() {
            continue;
        }
        let container = Container::for_codec(codec_from_name(&track.codec));
        let mut inputs = Vec::new();
        for segment in &track.segments {
            let local = work.join(format!(
                "{}-{:05}.{}",
                track.id, segment.index, container.extension
            ));
            if download_until_answered(store, &segment.key, &local).await {
                inputs.push(local);
            }
        }
        if inputs.is_empty() {
            continue;
        }
        let out = work.join(format!("{}.{}", track.id, container.extension));
        let joined_out = out.clone();
        let joined = tokio::task::spawn_blocking(move || remux(&inputs, container, &joined_out))
            .await
            .map_err(|e| RecorderError::Pipeline(format!("remux task: {e}")))?;
        if let Err(err) = joined {
            // One take that cannot be joined keeps its segments; the others still finish.
            tracing::warn!(take = %track.id, %err, "take left in segments");
            continue;
        }
        let key = Manifest::file_key(&manifest.recording, &track.id, container.extension);
        if !upload_until_stored(store, &key, &out, &NEVER_ABANDONED).await {
            continue;
        }
        manifest.tracks[index].file = Some(key);
        save_local(dir, manifest)?;
        put_manifest_until_stored(store, manifest).await;
        for segment in &manifest.tracks[index].segments {
            if let Err(err) = store.delete(&segment.key).await {
                tracing::warn!(key = %segment.key, %err, "segment not removed");
            }
        }
    }
    if manifest.status == RecordingStatus::Recording {
        manifest.status = RecordingStatus::Complete;
    }
    put_manifest_until_stored(store, manifest).await;
    tokio::fs::remove_dir_all(dir).await?;
    Ok(())
}

enum Message {
    AddTake(TakeInfo, Box<dyn FnOnce(TakeContext) + Send>),
    Participant(ParticipantEntry),
    Event(TimelineEvent),
    Started {
        take: String,
        at_ms: u64,
    },
    Observed {
        take: String,
        observed: crate::manifest::Observed,
    },
    Closed {
        take: String,
        segment: ClosedSegment,
    },
    Stored {
        take: String,
        index: u32,
        /// `false`: its spool copy was gone, so it is not in the store (nor in the recording).
        stored: bool,
        /// The spool copy, deleted once the spool manifest says the segment is stored.
        path: PathBuf,
    },
    TakeEnded {
        take: String,
        last_ms: Option<u64>,
    },
    Stop {
        reply: oneshot::Sender<()>,
        at_ms: u64,
        /// Join and complete it (or leave that to the server that took it over).
        finish: bool,
    },
}

/// What a take's task needs.
struct TakeContext {
    info: TakeInfo,
    dir: PathBuf,
    segment: Duration,
    clock: TakeClock,
    tx: mpsc::UnboundedSender<Message>,
    stop: watch::Receiver<bool>,
}

fn spawn_take(ctx: TakeContext, source: impl PacketSource) {
    tokio::spawn(run_take(ctx, source));
}

async fn run_take(mut ctx: TakeContext, mut source: impl PacketSource) {
    let take = ctx.info.id.clone();
    let mut writer = match TrackWriter::start(&ctx.dir, ctx.info.codec, ctx.segment) {
        Ok(writer) => writer,
        Err(err) => {
            tracing::warn!(%take, %err, "take not recorded");
            let _ = ctx.tx.send(Message::TakeEnded {
                take,
                last_ms: None,
            });
            return;
        }
    };
    let send_closed = |segments: Vec<ClosedSegment>| {
        for segment in segments {
            let _ = ctx.tx.send(Message::Closed {
                take: take.clone(),
                segment,
            });
        }
    };
    // Segments the pipeline closes are read after each packet, and on this tick too: a
    // publisher that stops sending (a still screen, a stall), or a pipeline running behind the
    // last packet, still gets what it closed into the manifest and uploaded.
    let mut look = tokio::time::interval(CLOSED_LOOK);
    look.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        let packet = tokio::select! {
            // What arrived before the stop is still recorded.
            biased;
            packet = source.recv() => packet,
            _ = ctx.stop.changed() => None,
            _ = look.tick() => {
                match writer.closed_segments() {
                    Ok(closed) => send_closed(closed),
                    Err(err) => {
                        tracing::warn!(%take, %err, "take stopped early");
                        break;
                    }
                }
                continue;
            }
        };
        let Some(packet) = packet else {
            break;
        };
        let observed = ctx.clock.observe(packet.rtp_time, packet.arrival);
        if let Some(at_ms) = observed.started_ms {
            let _ = ctx.tx.send(Message::Started {
                take: take.clone(),
                at_ms,
            });
        }
        if observed.anchor.is_some() || observed.gap.is_some() {
            let _ = ctx.tx.send(Message::Observed {
                take: take.clone(),
                observed,
            });
        }
        match writer.push(&packet) {
            Ok(true) => source.request_keyframe(),
            Ok(false) => {}
            Err(err) => {
                tracing::warn!(%take, %err, "take stopped early");
                break;
            }
        }
        match writer.closed_segments() {
            Ok(closed) => send_closed(closed),
            Err(err) => {
                tracing::warn!(%take, %err, "take stopped early");
                break;
            }
        }
    }
    match tokio::task::spawn_blocking(move || writer.finish()).await {
        Ok(Ok(closed)) => send_closed(closed),
        Ok(Err(err)) => tracing::warn!(%take, %err, "last segment not closed"),
        Err(err) => tracing::warn!(%take, %err, "take writer task failed"),
    }
    let _ = ctx.tx.send(Message::TakeEnded {
        take,
        last_ms: ctx.clock.last_ms(),
    });
}

/// Uploads waiting, in order; one runs at a time.
#[derive(Default)]
struct Uploads {
    queue: VecDeque<(String, u32, String, PathBuf)>,
    busy: bool,
}

/// The recording task's state.
struct State {
    manifest: Manifest,
    dir: PathBuf,
    store: Arc<dyn ObjectStore>,
    segment: Duration,
    started: Instant,
    /// Takes still writing.
    running: usize,
    stop: watch::Receiver<bool>,
    tx: mpsc::UnboundedSender<Message>,
    uploads: Uploads,
    /// Put before every new take's id (a resumed recording's takes must not reuse the names
    /// of the server that began it).
    take_prefix: String,
    /// Stopped for another server to finish: nothing more is uploaded.
    abandoning: bool,
    /// The same, for uploads already under way: they store no manifest any more.
    abandoned: Arc<std::sync::atomic::AtomicBool>,
}

impl State {
    async fn run(
        mut self,
        mut rx: mpsc::UnboundedReceiver<Message>,
    ) -> Result<Manifest, RecorderError> {
        let mut stopping: Option<(oneshot::Sender<()>, bool)> = None;
        while let Some(message) = rx.recv().await {
            let mut spool_copy_done = None;
            match message {
                Message::AddTake(info, spawn) => {
                    if stopping.is_some() {
                        continue;
                    }
                    self.add_take(info, spawn);
                }
                Message::Participant(entry) => self.manifest.note_participant(entry),
                Message::Event(event) => self.manifest.events.push(event),
                Message::Started { take, at_ms } => {
                    if let Some(track) = self.manifest.track_mut(&take) {
                        track.start_ms = at_ms;
                    }
                }
                Message::Observed { take, observed } => {
                    if let Some(track) = self.manifest.track_mut(&take) {
                        track.anchors.extend(observed.anchor);
                        track.gaps.extend(observed.gap);
                    }
                }
                Message::Closed { take, segment } => self.segment_closed(&take, segment),
                Message::Stored {
                    take,
                    index,
                    stored,
                    path,
                } => {
                    spool_copy_done = Some(path);
                    self.uploads.busy = false;
                    if let Some(track) = self.manifest.track_mut(&take) {
                        if stored {
                            if let Some(segment) =
                                track.segments.iter_mut().find(|s| s.index == index)
                            {
                                segment.stored = true;
                            }
                        } else {
                            track.segments.retain(|s| s.index != index);
                        }
                    }
                    self.next_upload();
                }
                Message::TakeEnded { take, last_ms } => {
                    self.running = self.running.saturating_sub(1);
                    if let Some(track) = self.manifest.track_mut(&take) {
                        track.end_ms = last_ms.or(Some(track.start_ms));
                    }
                }
                Message::Stop {
                    reply,
                    at_ms,
                    finish,
                } => {
                    if finish {
                        self.manifest.duration_ms = Some(at_ms);
                    } else {
                        // Nothing more goes to the store: its manifest is the taker's now. An
                        // upload under way may still store its segment (under a key the
                        // taker's manifest does not name), never the manifest.
                        self.abandoning = true;
                        self.abandoned
                            .store(true, std::sync::atomic::Ordering::SeqCst);
                        self.uploads.queue.clear();
                    }
                    stopping = Some((reply, finish));
                }
            }
            match save_local(&self.dir, &self.manifest) {
                // Only now may the spool copy go: a crash before this save finds the segment
                // unstored in the spool manifest and uploads it again from the copy, rather
                // than dropping a segment the store holds.
                Ok(()) => {
                    if let Some(path) = spool_copy_done {
                        let _ = tokio::fs::remove_file(&path).await;
                    }
                }
                Err(err) => tracing::warn!(%err, "manifest not saved locally"),
            }
            let uploaded = self.abandoning || (!self.uploads.busy && self.uploads.queue.is_empty());
            let drained = self.running == 0 && uploaded;
            if stopping.is_some() && drained {
                break;
            }
        }
        let finish = stopping.as_ref().is_none_or(|(_, finish)| *finish);
        if finish {
            finalize(self.store.as_ref(), &mut self.manifest, &self.dir).await?;
        } else {
            // The store's manifest is the taker's now; what this server uploaded last is
            // stored, under keys the taker's manifest does not name (removed with the
            // recording).
            tokio::fs::remove_dir_all(&self.dir).await?;
        }
        if let Some((reply, _)) = stopping {
            let _ = reply.send(());
        }
        Ok(self.manifest)
    }

    fn add_take(&mut self, mut info: TakeInfo, spawn: Box<dyn FnOnce(TakeContext) + Send>) {
        if !self.take_prefix.is_empty() {
            info.id = format!("{}{}", self.take_prefix, info.id);
        }
        if self.manifest.tracks.iter().any(|t| t.id == info.id) {
            return;
        }
        let kind = if info.codec.is_video() {
            MediaKind::Video
        } else {
            MediaKind::Audio
        };
        self.manifest.tracks.push(TrackEntry {
            id: info.id.clone(),
            participant: info.participant.clone(),
            source: info.source.clone(),
            kind,
            codec: codec_name(info.codec).to_owned(),
            start_ms: self.started.elapsed().as_millis() as u64,
            end_ms: None,
            segments: Vec::new(),
            anchors: Vec::new(),
            gaps: Vec::new(),
            file: None,
        });
        self.running += 1;
        spawn(TakeContext {
            dir: self.dir.join(&info.id),
            clock: TakeClock::new(self.started, info.codec.clock_rate()),
            info,
            segment: self.segment,
            tx: self.tx.clone(),
            stop: self.stop.clone(),
        });
    }

    fn segment_closed(&mut self, take: &str, closed: ClosedSegment) {
        let recording = self.manifest.recording.clone();
        let Some(track) = self.manifest.track_mut(take) else {
            return;
        };
        // A segment is uploaded and joined once: its spool copy goes once it is stored.
        if track.segments.iter().any(|s| s.index == closed.index) {
            tracing::warn!(
                take,
                index = closed.index,
                "segment closed twice; kept once"
            );
            return;
        }
        let extension = Container::for_codec(codec_from_name(&track.codec)).extension;
        let key = Manifest::segment_key(&recording, take, closed.index, extension);
        track.segments.push(Segment {
            index: closed.index,
            key: key.clone(),
            start_ms: closed.start.as_millis() as u64,
            end_ms: closed.end.as_millis() as u64,
            stored: false,
        });
        self.uploads
            .queue
            .push_back((take.to_owned(), closed.index, key, closed.path));
        self.next_upload();
    }

    /// Starts the next upload if none is running; its completion comes back as `Stored`.
    fn next_upload(&mut self) {
        if self.abandoning {
            self.uploads.queue.clear();
            return;
        }
        if self.uploads.busy {
            return;
        }
        let Some((take, index, key, path)) = self.uploads.queue.pop_front() else {
            return;
        };
        self.uploads.busy = true;
        let store = Arc::clone(&self.store);
        let tx = self.tx.clone();
        let manifest = self.manifest.clone();
        let abandoned = Arc::clone(&self.abandoned);
        tokio::spawn(async move {
            let stored = upload_until_stored(store.as_ref(), &key, &path, &abandoned).await;
            // The store's copy of the manifest follows, so a reader sees the new segment;
            // unless another server took the recording over meanwhile.
            if stored && !abandoned.load(std::sync::atomic::Ordering::SeqCst) {
                put_manifest_until_stored(store.as_ref(), &manifest).await;
            }
            let _ = tx.send(Message::Stored {
                take,
                index,
                stored,
                path,
            });
        });
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::AtomicBool;

    use super::*;
    use crate::store::LocalStore;

    #[tokio::test]
    async fn an_upload_whose_file_is_gone_gives_up_at_once() {
        let dir = tempfile::tempdir().expect("dir");
        let store = LocalStore::new(dir.path().join("store"));
        let spool = dir.path().join("seg-00000.webm");
        let kept = AtomicBool::new(false);
        // Retried, this would wait forever and hold up every upload queued behind it.
        assert!(!upload_until_stored(&store, "r/t/seg-00000.webm", &spool, &kept).await);
        std::fs::write(&spool, b"media").expect("spool file");
        assert!(upload_until_stored(&store, "r/t/seg-00000.webm", &spool, &kept).await);
        assert_eq!(
            store.get("r/t/seg-00000.webm").await.expect("read"),
            Some(b"media".to_vec())
        );
    }
}
