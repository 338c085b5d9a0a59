//! Each interview's shared document, wherever it is held. Alone, that is here. In a cluster,
//! the document of a room placed on a node lives on that node, the room's host: every member's
//! editor socket reaches it there ([`crate::editor`] relays those that reach another node), so
//! one task numbers its changes and the room's removals are known where it is. What the HTTP
//! API does to a document (a question's starter code, a run's result, a re-check of who may be
//! in it) goes the same way: done here when the room is placed here or nowhere, and sent to the
//! host as a node command ([`NodeCommand::Document`]) otherwise. A command stays well under
//! NATS's message limit: the text a run needs is read from storage (every accepted change is
//! stored before anyone sees it), and a run's notice names the run, which the host reads.

use serde::{Deserialize, Serialize};
use sightline_cluster::{Cluster, NodeId, RoomKey};
use sightline_collab::CollabError;
use sightline_signaling::RoomId;

use crate::cluster::{Claim, HostedRooms};
use crate::rooms::{CommandAnswer, NodeCommand};
use crate::workspace::{Unavailable, Workspaces};

/// Something done to an interview's document.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
pub enum DocumentOp {
    /// Replace its text and language, as the server, for everyone.
    Replace {
        /// The new text.
        text: String,
        /// The new language.
        language: Option<String>,
    },
    /// A JSON notice for everyone in its editor.
    Notify {
        /// The notice.
        notice: serde_json::Value,
    },
    /// A run's new state for everyone in its editor (the run as stored).
    RunChanged {
        /// The run's id.
        run: String,
    },
    /// Everyone in its editor checks their access again.
    Recheck,
    /// Whether it is open (members in it, or not idled out yet).
    IsOpen,
}

impl DocumentOp {
    /// Whether it needs the document itself (opened from what was stored if it is not open),
    /// so that the node doing it must be the one that holds it.
    fn opens(&self) -> bool {
        matches!(self, DocumentOp::Replace { .. })
    }
}

/// What the node holding a document answers a [`DocumentOp`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum DocumentAnswer {
    /// Done (a change, a notice, a re-check).
    Done,
    /// The document refused the change.
    Refused {
        /// Why.
        error: CollabError,
    },
    /// For [`DocumentOp::IsOpen`].
    Open {
        /// Whether it is.
        open: bool,
    },
    /// The document could not be reached.
    Unavailable,
}

/// The interviews' documents, each where it is held.
#[derive(Clone)]
pub struct Documents {
    local: Workspaces,
    cluster: Option<(Cluster, HostedRooms)>,
}

impl Documents {
    /// Documents held in `local`; in a cluster, those of rooms placed elsewhere are asked of
    /// their hosts.
    pub fn new(local: Workspaces, cluster: Option<(Cluster, HostedRooms)>) -> Self {
        Self { local, cluster }
    }

    /// The text and language now: from the document here when it is held here (or nowhere),
    /// else as stored.
    pub async fn read(&self, interview: &str) -> Result<(String, Option<String>), Unavailable> {
        let elsewhere = match &self.cluster {
            Some((cluster, _)) => holder(cluster, interview).await.map_err(|err| {
                tracing::warn!(%interview, %err, "finding where a document is held");
                Unavailable
            })?,
            None => None,
        };
        match elsewhere {
            Some(_) => self.local.read_stored(interview).await,
            None => self.local.read(interview).await,
        }
    }

    /// Replaces the text (and language) as the server, for everyone.
    pub async fn replace(
        &self,
        interview: &str,
        text: String,
        language: Option<String>,
    ) -> Result<Result<(), CollabError>, Unavailable> {
        match self
            .apply(interview, DocumentOp::Replace { text, language })
            .await
        {
            DocumentAnswer::Done => Ok(Ok(())),
            DocumentAnswer::Refused { error } => Ok(Err(error)),
            _ => Err(Unavailable),
        }
    }

    /// Sends a JSON notice to everyone in the document's editor (nobody there: nothing to do).
    pub async fn notify(&self, interview: &str, notice: serde_json::Value) {
        self.apply(interview, DocumentOp::Notify { notice }).await;
    }

    /// Tells everyone in the document's editor about a run's new state (as stored).
    pub async fn run_changed(&self, run: &crate::store::workspace::RunRow) {
        let notice = serde_json::json!({ "type": "run", "run": run });
        self.apply_as(
            &run.interview_id,
            DocumentOp::Notify { notice },
            DocumentOp::RunChanged {
                run: run.id.clone(),
            },
        )
        .await;
    }

    /// Asks everyone in the document's editor to check their access again (see
    /// [`Workspaces::recheck`]).
    pub async fn recheck(&self, interview: &str) {
        self.apply(interview, DocumentOp::Recheck).await;
    }

    /// Whether the document is open where it is held.
    pub async fn is_open(&self, interview: &str) -> Result<bool, Unavailable> {
        match self.apply(interview, DocumentOp::IsOpen).await {
            DocumentAnswer::Open { open } => Ok(open),
            _ => Err(Unavailable),
        }
    }

    /// Does `op` where the document is held.
    async fn apply(&self, interview: &str, op: DocumentOp) -> DocumentAnswer {
        self.apply_as(interview, op.clone(), op).await
    }

    /// Does `here` if the document is held here (or nowhere), else asks its host for `there`,
    /// the same thing said in fewer bytes. A notice or a re-check that cannot reach the host is
    /// done here all the same (members here, if any, still get it), and logged.
    async fn apply_as(
        &self,
        interview: &str,
        here: DocumentOp,
        there: DocumentOp,
    ) -> DocumentAnswer {
        let Some((cluster, _)) = &self.cluster else {
            return self.apply_here(interview, here).await;
        };
        // A room that moved between our look and the host's is looked up once more.
        for _ in 0..2 {
            let node = match holder(cluster, interview).await {
                Ok(Some(node)) => node,
                Ok(None) => return self.apply_here(interview, here).await,
                Err(err) => {
                    tracing::warn!(%interview, %err, "finding where a document is held");
                    return self.unreachable(interview, here).await;
                }
            };
            let command = NodeCommand::Document {
                room: RoomId(interview.to_owned()),
                op: there.clone(),
            };
            match cluster.command::<_, CommandAnswer>(&node, &command).await {
                Ok(Some(CommandAnswer::Document { answer })) => return answer,
                Ok(Some(CommandAnswer::Moved)) => {}
                // The host is gone: nothing is open there any more.
                Ok(None) if matches!(there, DocumentOp::IsOpen) => {
                    return DocumentAnswer::Open { open: false };
                }
                other => {
                    tracing::warn!(%interview, %node, answer = ?other.map(|_| ()), "a document's host did not do what was asked");
                    return self.unreachable(interview, here).await;
                }
            }
        }
        self.unreachable(interview, here).await
    }

    async fn unreachable(&self, interview: &str, op: DocumentOp) -> DocumentAnswer {
        match op {
            DocumentOp::Notify { .. } | DocumentOp::Recheck => self.apply_here(interview, op).await,
            _ => DocumentAnswer::Unavailable,
        }
    }

    /// Whether this node, asked by another as `room`'s host, holds its document: it hosts the
    /// room; or, for what needs the document itself, it takes the room as host should the
    /// placement have vanished meanwhile. A notice or a re-check is done wherever it arrives
    /// (it finds nothing open on a node that holds nothing).
    pub async fn held_here(&self, room: &RoomId, op: &DocumentOp) -> bool {
        let Some((_, rooms)) = &self.cluster else {
            return true;
        };
        if !op.opens() || rooms.hosts(room) {
            return true;
        }
        matches!(rooms.claim_as_host(room).await, Ok(Claim::Here))
    }

    /// Does `op` on the document held here.
    pub async fn apply_here(&self, interview: &str, op: DocumentOp) -> DocumentAnswer {
        match op {
            DocumentOp::Replace { text, language } => {
                match self.local.replace(interview, text, language).await {
                    Ok(Ok(())) => DocumentAnswer::Done,
                    Ok(Err(error)) => DocumentAnswer::Refused { error },
                    Err(Unavailable) => DocumentAnswer::Unavailable,
                }
            }
            DocumentOp::Notify { notice } => {
                self.local.notify(interview, notice);
                DocumentAnswer::Done
            }
            DocumentOp::RunChanged { run } => match self.local.stored_run(&run).await {
                Some(row) if row.interview_id == interview => {
                    let notice = serde_json::json!({ "type": "run", "run": row });
                    self.local.notify(interview, notice);
                    DocumentAnswer::Done
                }
                _ => DocumentAnswer::Unavailable,
            },
            DocumentOp::Recheck => {
                self.local.recheck(interview);
                DocumentAnswer::Done
            }
            DocumentOp::IsOpen => DocumentAnswer::Open {
                open: self.local.is_open(interview),
            },
        }
    }
}

/// The node other than this one that `interview`'s room is placed on, if any.
async fn holder(
    cluster: &Cluster,
    interview: &str,
) -> Result<Option<NodeId>, sightline_cluster::ClusterError> {
    let key = RoomKey::new(interview)?;
    Ok(cluster
        .host(&key)
        .await?
        .map(|placement| placement.node)
        .filter(|node| node != cluster.node()))
}
