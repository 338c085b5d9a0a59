//! What the API asks of an interview's room, done where the room runs. Alone, that is here. In a
//! cluster, the room runs on one node, and its recorder and proctor must run there too (they
//! take the room's media from its SFU): an HTTP request that reaches another node sends the
//! request to the host as a command (`sightline.node.{node}.command`), which the host carries
//! out as if the request had reached it, and answers.

use serde::{Deserialize, Serialize};
use sightline_cluster::{CommandReply, NodeCommands, RoomKey};
use sightline_signaling::protocol::ParticipantInfo;
use sightline_signaling::{LeaveReason, RoomId};

use crate::cluster::Claim;
use crate::documents::{DocumentAnswer, DocumentOp};
use crate::error::ApiError;
use crate::state::AppState;

/// Something to be done in an interview's room.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "control", rename_all = "snake_case")]
pub enum RoomControl {
    /// Start recording (nothing happens if it records already).
    StartRecording {
        /// Who started it (an actor id, for the recording's row).
        started_by: String,
    },
    /// Stop recording; answered `false` if it was not recording.
    StopRecording,
    /// A participant agreed to be recorded.
    RecordingConsented {
        /// Their participant id.
        participant: String,
    },
    /// Start the proctoring checks.
    StartProctoring,
    /// Start them only if the room is up (after their settings changed).
    StartProctoringIfUp,
    /// Stop them; answered `false` if they were not running.
    StopProctoring,
    /// A candidate agreed to the checks.
    ProctoringConsented {
        /// Their participant id.
        participant: String,
    },
    /// Whether the room is being recorded (a read: the recorder's state lives on the host).
    RecordingActive,
    /// Whether the proctoring checks run (a read, as above).
    ProctoringRunning,
    /// Whether a moderator removed `participant` from the room and nobody let them back in (a
    /// read: the room's removals live on its host, and go with it: a host that is gone answers
    /// no, as the room's next host would).
    IsBarred {
        /// Their participant id.
        participant: String,
    },
}

/// What one node asks another.
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "command", rename_all = "snake_case")]
pub enum NodeCommand {
    /// Carry out `control` in `room`, which the receiver hosts.
    Control {
        /// The room (the interview's id).
        room: RoomId,
        /// What to do.
        control: RoomControl,
    },
    /// The rooms the receiver hosts and who is in them.
    Overview,
    /// Close `room` for everyone in it (see [`sightline_signaling::Hub::close_room`]).
    Close {
        /// The room.
        room: RoomId,
    },
    /// Do `op` to interview `room`'s shared document, which the receiver holds as the room's
    /// host (see [`crate::documents`]).
    Document {
        /// The room (the interview's id).
        room: RoomId,
        /// What to do.
        op: DocumentOp,
    },
    /// Take a participant out of `room` (see [`sightline_signaling::Hub::remove_participant`]).
    Remove {
        /// The room.
        room: RoomId,
        /// Who.
        identity: String,
        /// What they are told.
        reason: LeaveReason,
    },
}

impl RoomControl {
    /// Whether it brings the room's agents up (and may place the room); the others concern
    /// only a room that is up.
    fn starts(&self) -> bool {
        matches!(
            self,
            RoomControl::StartRecording { .. } | RoomControl::StartProctoring
        )
    }

    /// Whether it only asks; a read whose host is gone is answered `false` (nothing runs on a
    /// dead node) rather than refused.
    fn reads(&self) -> bool {
        matches!(
            self,
            RoomControl::RecordingActive
                | RoomControl::ProctoringRunning
                | RoomControl::IsBarred { .. }
        )
    }
}

/// A node's answer to a [`NodeCommand`].
#[derive(Debug, Serialize, Deserialize)]
#[serde(tag = "outcome", rename_all = "snake_case")]
pub enum CommandAnswer {
    /// Done; for a stop, whether something was running.
    Done {
        /// The control's result.
        result: bool,
    },
    /// The room does not run on the receiver (it moved meanwhile): ask again.
    Moved,
    /// The rooms it hosts, for [`NodeCommand::Overview`].
    Rooms {
        /// Each with who is in it.
        rooms: Vec<HostedRoom>,
    },
    /// What the document answered, for [`NodeCommand::Document`].
    Document {
        /// Its answer.
        answer: DocumentAnswer,
    },
    /// It could not be done, with the reason.
    Failed {
        /// For people and logs.
        message: String,
    },
}

fn unreachable_room() -> ApiError {
    ApiError::Unavailable("the interview's room cannot be reached right now; try again")
}

/// Carries out `control` in `interview`'s room where it runs. A start places the room if it
/// runs nowhere yet (starting to record an interview nobody entered yet brings its room up);
/// the other controls go to the room's host if it has one and are carried out here otherwise
/// (where they find nothing running).
pub async fn control(
    state: &AppState,
    interview: &str,
    control: RoomControl,
) -> Result<bool, ApiError> {
    let room = RoomId(interview.to_owned());
    let (Some(rooms), Some(cluster)) = (&state.hosted_rooms, &state.cluster) else {
        return apply(state, interview, control);
    };
    // A room that moved between our look and the host's is looked up once more.
    for _ in 0..2 {
        let node = if control.starts() {
            match rooms.claim(&room).await {
                Ok(Claim::Here) => return apply(state, interview, control),
                Ok(Claim::Elsewhere { node }) => node,
                Ok(Claim::Busy) => return Err(unreachable_room()),
                Err(err) => {
                    tracing::warn!(%interview, %err, "placing a room for a control");
                    return Err(unreachable_room());
                }
            }
        } else {
            if state.hub.has_room(&room) {
                return apply(state, interview, control);
            }
            match host(state, interview).await? {
                Some(node) if &node != cluster.node() => node,
                _ => return apply(state, interview, control),
            }
        };
        let command = NodeCommand::Control {
            room: room.clone(),
            control: control.clone(),
        };
        match cluster.command(&node, &command).await {
            Ok(Some(CommandAnswer::Done { result })) => return Ok(result),
            Ok(Some(CommandAnswer::Failed { message })) => return Err(ApiError::Internal(message)),
            Ok(None) if control.reads() => return Ok(false),
            Ok(
                Some(
                    CommandAnswer::Moved
                    | CommandAnswer::Rooms { .. }
                    | CommandAnswer::Document { .. },
                )
                | None,
            ) => {}
            Err(err) => {
                tracing::warn!(%interview, %node, %err, "sending a room control to its host");
                return Err(unreachable_room());
            }
        }
    }
    Err(unreachable_room())
}

/// Carries out `control` here, where the room runs.
fn apply(state: &AppState, interview: &str, control: RoomControl) -> Result<bool, ApiError> {
    match control {
        RoomControl::StartRecording { started_by } => state
            .recordings
            .start(interview, &started_by)
            .map(|()| true),
        RoomControl::StopRecording => Ok(state.recordings.stop(interview)),
        RoomControl::RecordingConsented { participant } => {
            state.recordings.consented(interview, &participant);
            Ok(true)
        }
        RoomControl::StartProctoring => state.proctoring.start(interview).map(|()| true),
        RoomControl::StartProctoringIfUp => {
            if state.hub.has_room(&RoomId(interview.to_owned())) {
                state.proctoring.start(interview).map(|()| true)
            } else {
                Ok(false)
            }
        }
        RoomControl::StopProctoring => Ok(state.proctoring.stop(interview)),
        RoomControl::ProctoringConsented { participant } => {
            state.proctoring.consented(interview, &participant);
            Ok(true)
        }
        RoomControl::RecordingActive => Ok(state.recordings.is_running(interview)),
        RoomControl::ProctoringRunning => Ok(state.proctoring.is_running(interview)),
        RoomControl::IsBarred { participant } => Ok(state
            .hub
            .is_barred(&RoomId(interview.to_owned()), &participant)),
    }
}

/// Takes `identity` out of `room` wherever the room runs. A room placed nowhere is up nowhere:
/// there is nobody to take out.
pub async fn remove_participant(
    state: &AppState,
    room: &RoomId,
    identity: &str,
    reason: LeaveReason,
) {
    // Here first: a room up here (this node hosts it, or a copy of it is being ended) takes
    // it at once.
    state.hub.remove_participant(room, identity, reason);
    let Some(cluster) = &state.cluster else {
        return;
    };
    let Ok(key) = RoomKey::new(&room.0) else {
        return;
    };
    let host = match cluster.host(&key).await {
        Ok(Some(placement)) if &placement.node != cluster.node() => placement.node,
        Ok(_) => return,
        Err(err) => {
            tracing::warn!(%room, %err, "finding a room's host for a removal");
            return;
        }
    };
    let command = NodeCommand::Remove {
        room: room.clone(),
        identity: identity.to_owned(),
        reason,
    };
    match cluster.command::<_, CommandAnswer>(&host, &command).await {
        Ok(Some(_)) => {}
        Ok(None) => tracing::info!(%room, %host, "a removal found the room's host gone"),
        Err(err) => tracing::warn!(%room, %host, %err, "a removal did not reach the room's host"),
    }
}

/// The node `interview`'s room is placed on, if any; an error when NATS cannot say.
async fn host(
    state: &AppState,
    interview: &str,
) -> Result<Option<sightline_cluster::NodeId>, ApiError> {
    let Some(cluster) = &state.cluster else {
        return Ok(None);
    };
    let key = RoomKey::new(interview).map_err(|_| ApiError::NotFound)?;
    match cluster.host(&key).await {
        Ok(placement) => Ok(placement.map(|p| p.node)),
        Err(err) => {
            tracing::warn!(%interview, %err, "finding a room's host");
            Err(unreachable_room())
        }
    }
}

/// A room up on a node and who is in it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct HostedRoom {
    /// The room (the interview's id).
    pub room: RoomId,
    /// The node it runs on; `None` alone.
    pub node: Option<String>,
    /// Its visible participants as the others see them (connection state included); `None`
    /// when its task did not answer in time.
    pub participants: Option<Vec<ParticipantInfo>>,
    /// Members nobody sees: reviewers watching, the server's agents.
    pub hidden: usize,
    /// Published tracks.
    pub tracks: usize,
}

/// How long rooms have to say who is in them: under a command's timeout, so one slow room
/// does not make its node look silent.
const OVERVIEW_WAIT: std::time::Duration = std::time::Duration::from_millis(1000);

/// The rooms up here.
async fn hosted_here(state: &AppState) -> Vec<HostedRoom> {
    let node = state.cluster.as_ref().map(|c| c.node().to_string());
    let (answered, silent) = state.hub.overview(OVERVIEW_WAIT).await;
    let mut rooms: Vec<HostedRoom> = answered
        .into_iter()
        .map(|(room, overview)| HostedRoom {
            room,
            node: node.clone(),
            participants: Some(overview.participants),
            hidden: overview.hidden,
            tracks: overview.tracks,
        })
        .collect();
    rooms.extend(silent.into_iter().map(|room| HostedRoom {
        room,
        node: node.clone(),
        participants: None,
        hidden: 0,
        tracks: 0,
    }));
    rooms
}

/// Every room that is up, wherever it runs, and who is in it (the nodes asked at once); with
/// the nodes that did not answer (their rooms are missing from the list).
pub async fn live(state: &AppState) -> (Vec<HostedRoom>, Vec<String>) {
    let mut rooms = hosted_here(state).await;
    let mut silent = Vec::new();
    if let Some(cluster) = &state.cluster {
        let nodes = match cluster.nodes().await {
            Ok(nodes) => nodes,
            Err(err) => {
                tracing::warn!(%err, "listing the cluster's nodes for their rooms");
                Vec::new()
            }
        };
        let others: Vec<_> = nodes
            .into_iter()
            .filter(|h| &h.node != cluster.node())
            .map(|h| h.node)
            .collect();
        let answers = futures_util::future::join_all(
            others
                .iter()
                .map(|node| cluster.command::<_, CommandAnswer>(node, &NodeCommand::Overview)),
        )
        .await;
        for (node, answer) in others.iter().zip(answers) {
            match answer {
                Ok(Some(CommandAnswer::Rooms { rooms: theirs })) => {
                    for room in theirs {
                        // A room moving between nodes may be listed by both for a moment.
                        if rooms.iter().all(|r| r.room != room.room) {
                            rooms.push(room);
                        }
                    }
                }
                other => {
                    tracing::warn!(%node, answer = ?other.map(|_| ()), "a node did not list its rooms");
                    silent.push(node.to_string());
                }
            }
        }
    }
    rooms.sort_by(|a, b| a.room.0.cmp(&b.room.0));
    (rooms, silent)
}

/// Whether `interview`'s room is placed on a node of the cluster (up there, or not yet known to
/// have ended); an error when NATS cannot say.
pub async fn hosted_anywhere(state: &AppState, interview: &str) -> Result<bool, ApiError> {
    Ok(host(state, interview).await?.is_some())
}

/// Closes `room` for everyone in it, wherever it runs; false if it is up nowhere.
pub async fn close(state: &AppState, room: &RoomId) -> Result<bool, ApiError> {
    if state.hub.close_room(room) {
        return Ok(true);
    }
    let Some(host) = host(state, &room.0).await? else {
        return Ok(false);
    };
    let Some(cluster) = &state.cluster else {
        return Ok(false);
    };
    if &host == cluster.node() {
        return Ok(false);
    }
    match cluster
        .command::<_, CommandAnswer>(&host, &NodeCommand::Close { room: room.clone() })
        .await
    {
        Ok(Some(CommandAnswer::Done { result })) => Ok(result),
        Ok(_) => Ok(false),
        Err(err) => {
            tracing::warn!(%room, %host, %err, "a room's close did not reach its host");
            Err(unreachable_room())
        }
    }
}

/// Takes the commands other nodes send this one, until the subscription ends.
pub async fn serve(state: AppState, mut commands: NodeCommands<NodeCommand>) {
    while let Some((command, reply)) = commands.next().await {
        let state = state.clone();
        tokio::spawn(async move { answer(&state, command, reply).await });
    }
}

async fn answer(state: &AppState, command: NodeCommand, reply: CommandReply) {
    let answer = match command {
        NodeCommand::Overview => CommandAnswer::Rooms {
            rooms: hosted_here(state).await,
        },
        NodeCommand::Close { room } => CommandAnswer::Done {
            result: state.hub.close_room(&room),
        },
        NodeCommand::Document { room, op } => {
            if state.documents.held_here(&room, &op).await {
                CommandAnswer::Document {
                    answer: state.documents.apply_here(&room.0, op).await,
                }
            } else {
                CommandAnswer::Moved
            }
        }
        NodeCommand::Remove {
            room,
            identity,
            reason,
        } => {
            state.hub.remove_participant(&room, &identity, reason);
            CommandAnswer::Done { result: true }
        }
        NodeCommand::Control { room, control } => {
            // A start needs the room here (placing it here if its placement just vanished);
            // the rest concern only what runs here, if anything.
            let hosted = match &state.hosted_rooms {
                Some(rooms) if control.starts() => {
                    matches!(rooms.claim_as_host(&room).await, Ok(Claim::Here))
                }
                Some(_) => true,
                None => false,
            };
            if hosted {
                match apply(state, &room.0, control) {
                    Ok(result) => CommandAnswer::Done { result },
                    Err(err) => CommandAnswer::Failed {
                        message: err.to_string(),
                    },
                }
            } else {
                CommandAnswer::Moved
            }
        }
    };
    reply.send(&answer).await;
}
