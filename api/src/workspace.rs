//! The shell around each interview's shared code document.
//!
//! One task per interview with people in its editor owns the [`Document`] (the only copy in
//! memory; the database holds its history). Sockets send it frames and receive frames and
//! notices back; the task stores every accepted change, in order and before anyone else sees
//! it, so a restart, a reload and a late joiner all rebuild the same text. The task is built
//! from the stored changes when the first member arrives and ends a while after the last one
//! left.
//!
//! A failure inside the document (a panic in the CRDT on a hostile frame, a database that
//! refuses a write) ends that interview's task only: its members are disconnected, reconnect
//! to a task rebuilt from what was stored, and re-send what they had that was not.

use std::collections::HashMap;
use std::panic::AssertUnwindSafe;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sightline_collab::{CollabError, Document, Limits, Member, Output, PeerId};
use sightline_signaling::Hub;
use tokio::sync::{mpsc, oneshot};

use crate::error::ApiError;
use crate::store::{Db, workspace as store};

/// How long a document stays in memory after its last member left.
const IDLE: Duration = Duration::from_secs(60);
/// Rooms whose removals changed, queued for [`watch_removals`].
const REMOVALS_QUEUE: usize = 256;
/// Frames and notices queued for one member before they count as too slow and are dropped.
const MEMBER_QUEUE: usize = 512;
/// Commands queued for one document.
const DOC_QUEUE: usize = 1024;

/// What a member's socket receives.
#[derive(Debug, Clone)]
pub enum Outbound {
    /// A y-protocols frame (a binary WebSocket message).
    Frame(Vec<u8>),
    /// A JSON notice (a text WebSocket message).
    Notice(Arc<serde_json::Value>),
    /// Who may do what in the interview may have changed: the socket checks its member's
    /// access again now (not sent to the browser).
    Recheck,
}

enum Command {
    Join {
        peer: PeerId,
        member: Member,
        participant: Option<String>,
        tx: mpsc::Sender<Outbound>,
    },
    Frame {
        peer: PeerId,
        frame: Vec<u8>,
    },
    Leave {
        peer: PeerId,
    },
    Read {
        reply: oneshot::Sender<(String, Option<String>)>,
    },
    Replace {
        text: String,
        language: Option<String>,
        reply: oneshot::Sender<Result<(), CollabError>>,
    },
    /// Something for every member's socket (a notice, a re-check), not from one of them.
    ToEveryone(Outbound),
}

/// Every open document.
#[derive(Clone)]
pub struct Workspaces {
    inner: Arc<Inner>,
}

struct Inner {
    db: Db,
    limits: Limits,
    docs: Mutex<HashMap<String, mpsc::Sender<Command>>>,
    next_peer: AtomicU64,
}

/// One member's link to a document.
pub struct Connection {
    peer: PeerId,
    to_doc: mpsc::Sender<Command>,
    /// What the document sends this member.
    pub from_doc: mpsc::Receiver<Outbound>,
}

impl Connection {
    /// Hands a frame from the member to the document; false when the document is gone.
    pub async fn send(&self, frame: Vec<u8>) -> bool {
        self.to_doc
            .send(Command::Frame {
                peer: self.peer,
                frame,
            })
            .await
            .is_ok()
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        let leave = Command::Leave { peer: self.peer };
        if let Err(mpsc::error::TrySendError::Full(leave)) = self.to_doc.try_send(leave) {
            // A busy document still learns that this member left, or it would never idle.
            let to_doc = self.to_doc.clone();
            tokio::spawn(async move {
                let _ = to_doc.send(leave).await;
            });
        }
    }
}

/// The document is not reachable (its task ended and could not be restarted).
#[derive(Debug, thiserror::Error)]
#[error("the shared document is not available right now")]
pub struct Unavailable;

impl Workspaces {
    /// No documents open yet.
    pub fn new(db: Db, limits: Limits) -> Self {
        Workspaces {
            inner: Arc::new(Inner {
                db,
                limits,
                docs: Mutex::new(HashMap::new()),
                next_peer: AtomicU64::new(1),
            }),
        }
    }

    /// The document's task, started (from the stored history) if it is not running.
    fn task(&self, interview: &str) -> mpsc::Sender<Command> {
        let mut docs = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tx) = docs.get(interview).filter(|tx| !tx.is_closed()) {
            return tx.clone();
        }
        let (tx, rx) = mpsc::channel(DOC_QUEUE);
        docs.insert(interview.to_owned(), tx.clone());
        let task = DocTask {
            interview: interview.to_owned(),
            workspaces: self.clone(),
            me: tx.clone(),
            peers: HashMap::new(),
            seq: 0,
            last_at_ms: 0,
        };
        tokio::spawn(task.run(rx));
        tx
    }

    /// Sends `command`, restarting the task once if it had just ended.
    async fn command(
        &self,
        interview: &str,
        make: impl Fn() -> Command,
    ) -> Result<(), Unavailable> {
        for _ in 0..2 {
            if self.task(interview).send(make()).await.is_ok() {
                return Ok(());
            }
        }
        Err(Unavailable)
    }

    /// Connects a member to the interview's document.
    pub async fn connect(
        &self,
        interview: &str,
        member: Member,
        participant: Option<String>,
    ) -> Result<Connection, Unavailable> {
        let peer = PeerId(self.inner.next_peer.fetch_add(1, Ordering::Relaxed));
        for _ in 0..2 {
            let (tx, rx) = mpsc::channel(MEMBER_QUEUE);
            let to_doc = self.task(interview);
            let join = Command::Join {
                peer,
                member: member.clone(),
                participant: participant.clone(),
                tx,
            };
            if to_doc.send(join).await.is_ok() {
                return Ok(Connection {
                    peer,
                    to_doc,
                    from_doc: rx,
                });
            }
        }
        Err(Unavailable)
    }

    /// The text and language now.
    pub async fn read(&self, interview: &str) -> Result<(String, Option<String>), Unavailable> {
        let (reply, answer) = oneshot::channel();
        let reply = Mutex::new(Some(reply));
        self.command(interview, || Command::Read {
            reply: take(&reply),
        })
        .await?;
        answer.await.map_err(|_| Unavailable)
    }

    /// The text and language as stored (the document rebuilt from every stored change), for a
    /// document held on another node.
    pub async fn read_stored(
        &self,
        interview: &str,
    ) -> Result<(String, Option<String>), Unavailable> {
        let (snapshot, _) = stored_document(&self.inner.db, interview, None)
            .await
            .map_err(|_| Unavailable)?;
        Ok((snapshot.text, snapshot.language))
    }

    /// A run as stored.
    pub async fn stored_run(&self, id: &str) -> Option<store::RunRow> {
        store::run(self.inner.db.pool(), id).await.ok().flatten()
    }

    /// Replaces the text (and language) as the server, for everyone.
    pub async fn replace(
        &self,
        interview: &str,
        text: String,
        language: Option<String>,
    ) -> Result<Result<(), CollabError>, Unavailable> {
        let (reply, answer) = oneshot::channel();
        let reply = Mutex::new(Some(reply));
        self.command(interview, || Command::Replace {
            text: text.clone(),
            language: language.clone(),
            reply: take(&reply),
        })
        .await?;
        answer.await.map_err(|_| Unavailable)
    }

    /// Sends a JSON notice to every member of an open document (nobody there: nothing to do).
    pub fn notify(&self, interview: &str, notice: serde_json::Value) {
        self.to_everyone(interview, Outbound::Notice(Arc::new(notice)));
    }

    /// Asks every socket on the interview's document to check its member's access again (a
    /// removal from the room or a readmission, an invite reissued, the interview cancelled, an
    /// account deactivated, a candidate's data erased); other changes wait for the sockets' own
    /// periodic check.
    pub fn recheck(&self, interview: &str) {
        self.to_everyone(interview, Outbound::Recheck);
    }

    /// Whether the interview's document is open (members in it, or it has not idled out yet).
    pub fn is_open(&self, interview: &str) -> bool {
        self.inner
            .docs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .get(interview)
            .is_some_and(|tx| !tx.is_closed())
    }

    /// Hands `message` to every member of the interview's document, if it is open.
    fn to_everyone(&self, interview: &str, message: Outbound) {
        let docs = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if let Some(tx) = docs.get(interview) {
            let _ = tx.try_send(Command::ToEveryone(message));
        }
    }

    fn forget(&self, interview: &str, me: &mpsc::Sender<Command>) {
        let mut docs = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if docs.get(interview).is_some_and(|tx| tx.same_channel(me)) {
            docs.remove(interview);
        }
    }

    /// Ends an idle document's task: under the registry's lock, so no command can be handed to
    /// it after it is gone (a sender that took it just before sees the channel closed and starts
    /// a new task). False when a command came in after all.
    fn retire(
        &self,
        interview: &str,
        me: &mpsc::Sender<Command>,
        rx: &mut mpsc::Receiver<Command>,
    ) -> bool {
        let mut docs = self
            .inner
            .docs
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        if !rx.is_empty() {
            return false;
        }
        if docs.get(interview).is_some_and(|tx| tx.same_channel(me)) {
            docs.remove(interview);
        }
        rx.close();
        true
    }
}

/// Takes the one-shot sender out of its slot; a retried command gets a closed one.
fn take<T>(slot: &Mutex<Option<oneshot::Sender<T>>>) -> oneshot::Sender<T> {
    slot.lock()
        .ok()
        .and_then(|mut slot| slot.take())
        .unwrap_or_else(|| oneshot::channel().0)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn error_notice(err: &CollabError) -> Arc<serde_json::Value> {
    Arc::new(serde_json::json!({
        "type": "error",
        "error": { "code": err.code(), "message": err.to_string() },
    }))
}

struct PeerLink {
    tx: mpsc::Sender<Outbound>,
    participant: Option<String>,
}

struct DocTask {
    interview: String,
    workspaces: Workspaces,
    me: mpsc::Sender<Command>,
    peers: HashMap<PeerId, PeerLink>,
    /// Number of the next stored change.
    seq: i64,
    /// Arrival time of the last stored change: times never go back, so "the document at T"
    /// is always a prefix of the history, even if the wall clock steps back.
    last_at_ms: i64,
}

/// Why a document's task stops.
enum Stop {
    Idle,
    Failed(String),
}

impl DocTask {
    async fn run(mut self, mut rx: mpsc::Receiver<Command>) {
        let stop = match self.load().await {
            Ok(mut doc) => self.serve(&mut doc, &mut rx).await,
            Err(err) => Stop::Failed(err),
        };
        self.workspaces.forget(&self.interview, &self.me);
        if let Stop::Failed(reason) = stop {
            tracing::error!(interview = %self.interview, %reason, "shared document stopped");
            let notice = Arc::new(serde_json::json!({
                "type": "error",
                "error": {
                    "code": "document_unavailable",
                    "message": "the shared document had a problem; reconnecting",
                },
            }));
            for link in self.peers.values() {
                let _ = link.tx.try_send(Outbound::Notice(notice.clone()));
            }
        }
        // Dropping the links closes every member's socket; they reconnect to a fresh task.
    }

    async fn load(&mut self) -> Result<Document, String> {
        let inner = &self.workspaces.inner;
        let rows = store::updates(inner.db.pool(), &self.interview, None)
            .await
            .map_err(|err| format!("loading the document: {err}"))?;
        let mut updates = Vec::with_capacity(rows.len());
        for row in &rows {
            updates.push(
                row.bytes()
                    .map_err(|err| format!("a stored change: {err}"))?,
            );
        }
        self.seq = rows.last().map_or(0, |row| row.seq + 1);
        self.last_at_ms = rows.last().map_or(0, |row| row.at_ms);
        let limits = inner.limits;
        std::panic::catch_unwind(AssertUnwindSafe(|| Document::restore(limits, &updates)))
            .map_err(|_| "rebuilding the document panicked".to_owned())?
            .map_err(|err| format!("rebuilding the document: {err}"))
    }

    async fn serve(&mut self, doc: &mut Document, rx: &mut mpsc::Receiver<Command>) -> Stop {
        loop {
            let command = if self.peers.is_empty() {
                match tokio::time::timeout(IDLE, rx.recv()).await {
                    Ok(Some(command)) => command,
                    Ok(None) => return Stop::Idle,
                    Err(_) => {
                        if self.workspaces.retire(&self.interview, &self.me, rx) {
                            return Stop::Idle;
                        }
                        continue;
                    }
                }
            } else {
                match rx.recv().await {
                    Some(command) => command,
                    None => return Stop::Idle,
                }
            };
            if let Err(reason) = self.handle(doc, command).await {
                return Stop::Failed(reason);
            }
        }
    }

    async fn handle(&mut self, doc: &mut Document, command: Command) -> Result<(), String> {
        match command {
            Command::Join {
                peer,
                member,
                participant,
                tx,
            } => {
                self.peers.insert(peer, PeerLink { tx, participant });
                let outputs = contained(|| doc.join(peer, member))?;
                self.deliver(doc, None, outputs).await?;
            }
            Command::Frame { peer, frame } => {
                if !self.peers.contains_key(&peer) {
                    return Ok(());
                }
                match contained(|| doc.receive(peer, &frame))? {
                    Ok(outputs) => self.deliver(doc, Some(peer), outputs).await?,
                    Err(err) => self.send(peer, Outbound::Notice(error_notice(&err))),
                }
            }
            Command::Leave { peer } => {
                if self.peers.remove(&peer).is_some() {
                    let outputs = contained(|| doc.leave(peer))?;
                    self.deliver(doc, None, outputs).await?;
                }
            }
            Command::Read { reply } => {
                let _ = reply.send((doc.text(), doc.language()));
            }
            Command::Replace {
                text,
                language,
                reply,
            } => match contained(|| doc.replace(&text, language.as_deref()))? {
                Ok(outputs) => {
                    self.deliver(doc, None, outputs).await?;
                    let _ = reply.send(Ok(()));
                }
                Err(err) => {
                    let _ = reply.send(Err(err));
                }
            },
            Command::ToEveryone(message) => {
                let peers: Vec<PeerId> = self.peers.keys().copied().collect();
                for peer in peers {
                    self.send(peer, message.clone());
                }
            }
        }
        Ok(())
    }

    /// Stores, then sends. `from` is whose frame caused the outputs.
    async fn deliver(
        &mut self,
        doc: &mut Document,
        from: Option<PeerId>,
        outputs: Vec<Output>,
    ) -> Result<(), String> {
        for output in outputs {
            match output {
                Output::Persist(delta) => {
                    let participant = from
                        .and_then(|peer| self.peers.get(&peer))
                        .and_then(|link| link.participant.clone());
                    let pool = self.workspaces.inner.db.pool();
                    let at_ms = now_ms().max(self.last_at_ms);
                    store::append(
                        pool,
                        &self.interview,
                        self.seq,
                        at_ms,
                        participant.as_deref(),
                        &delta,
                    )
                    .await
                    .map_err(|err| format!("storing a change: {err}"))?;
                    self.seq += 1;
                    self.last_at_ms = at_ms;
                }
                Output::To(peer, frame) => self.send(peer, Outbound::Frame(frame)),
                Output::Broadcast { except, frame } => {
                    let peers: Vec<PeerId> = self
                        .peers
                        .keys()
                        .copied()
                        .filter(|peer| Some(*peer) != except)
                        .collect();
                    for peer in peers {
                        self.send(peer, Outbound::Frame(frame.clone()));
                    }
                }
            }
        }
        // Members dropped as too slow leave properly (their cursors vanish for the others).
        let gone: Vec<PeerId> = self
            .peers
            .iter()
            .filter(|(_, link)| link.tx.is_closed())
            .map(|(peer, _)| *peer)
            .collect();
        for peer in gone {
            self.peers.remove(&peer);
            let outputs = contained(|| doc.leave(peer))?;
            Box::pin(self.deliver(doc, None, outputs)).await?;
        }
        Ok(())
    }

    /// Queues `message` for `peer`; a member whose queue is full is disconnected (they resync
    /// when they reconnect) rather than holding up everyone else.
    fn send(&mut self, peer: PeerId, message: Outbound) {
        let full = match self.peers.get(&peer) {
            Some(link) => link.tx.try_send(message).is_err(),
            None => false,
        };
        if full {
            tracing::info!(interview = %self.interview, peer = peer.0, "dropping a slow editor");
            if let Some(link) = self.peers.get_mut(&peer) {
                // Replacing the sender closes the member's receiver.
                let (closed, _) = mpsc::channel(1);
                link.tx = closed;
            }
        }
    }
}

/// Runs a document call, turning a panic inside the CRDT into a failure of this document
/// alone.
fn contained<T>(f: impl FnOnce() -> T) -> Result<T, String> {
    std::panic::catch_unwind(AssertUnwindSafe(f))
        .map_err(|_| "the document panicked on a message".to_owned())
}

/// The document as it was at `at_ms` (as it is, without), rebuilt off the async threads from
/// the stored changes, with those changes.
pub async fn stored_document(
    db: &Db,
    interview: &str,
    at_ms: Option<i64>,
) -> Result<(sightline_collab::Snapshot, Vec<store::UpdateRow>), ApiError> {
    let rows = store::updates(db.pool(), interview, at_ms).await?;
    let mut updates = Vec::with_capacity(rows.len());
    for row in &rows {
        updates.push(row.bytes()?);
    }
    let snapshot = tokio::task::spawn_blocking(move || sightline_collab::replay(&updates))
        .await
        .map_err(|err| ApiError::Internal(format!("replaying the document: {err}")))?
        .map_err(|err| ApiError::Internal(format!("replaying the document: {err}")))?;
    Ok((snapshot, rows))
}

/// Deletes the code and runs of interviews that ended more than `days` days ago, at start-up
/// and then hourly, for as long as the server runs; `days` 0 keeps them.
pub async fn retention(db: crate::store::Db, days: u32) {
    if days == 0 {
        return;
    }
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(3600));
    loop {
        tick.tick().await;
        let before = crate::store::now().saturating_sub(i64::from(days) * 86_400);
        match crate::store::workspace::expire(db.pool(), before).await {
            Ok(0) => {}
            Ok(rows) => tracing::info!(rows, "code and runs deleted after their retention period"),
            Err(err) => tracing::warn!(%err, "code retention run failed"),
        }
    }
}

/// Has the editors of a room whose removals changed check their access at once, for as long as
/// the hub runs: someone a moderator removed loses the interview's code with the room, not at
/// their socket's next periodic check. The hub never waits for this; a change that found the
/// queue full is caught by that periodic check.
pub async fn watch_removals(hub: Hub, workspaces: Workspaces) {
    let Some(mut changes) = hub.watch_barred(REMOVALS_QUEUE) else {
        return;
    };
    while let Some(room) = changes.recv().await {
        workspaces.recheck(&room.0);
    }
}
