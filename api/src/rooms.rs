//! What the API asks of an interview's room, done where the room runs. Alone, that is here. In a
//! cluster, the room runs on one node, and its recorder and proctor must run there too (they
//! take the room's media from its SFU): an HTTP request that reaches another node sends the
//! request to the host as a command (`sightline.node.{node}.command`), which the host carries
//! out as if the request had reached it, and answers.

use serde::{Deserialize, Serialize};
use sightline_cluster::{CommandReply, NodeCommands, RoomKey};
use sightline_signaling::{LeaveReason, RoomId};

use crate::cluster::Claim;
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
    /// Stop them; answered `false` if they were not running.
    StopProctoring,
    /// A candidate agreed to the checks.
    ProctoringConsented {
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
/// runs nowhere yet (starting to record an interview nobody entered yet brings its room up).
pub async fn control(
    state: &AppState,
    interview: &str,
    control: RoomControl,
) -> Result<bool, ApiError> {
    let room = RoomId(interview.to_owned());
    let starts = matches!(
        control,
        RoomControl::StartRecording { .. } | RoomControl::StartProctoring
    );
    // A stop or a consent concerns only a room that is up; none is placed for it.
    if !starts && !is_up(state, interview).await {
        return apply(state, interview, control);
    }
    if let (Some(rooms), Some(cluster)) = (&state.hosted_rooms, &state.cluster) {
        match rooms.claim(&room).await {
            Ok(Claim::Here) => {}
            Ok(Claim::Elsewhere { node }) => {
                let command = NodeCommand::Control { room, control };
                return match cluster.command(&node, &command).await {
                    Ok(Some(CommandAnswer::Done { result })) => Ok(result),
                    Ok(Some(CommandAnswer::Failed { message })) => Err(ApiError::Internal(message)),
                    Ok(Some(CommandAnswer::Moved) | None) => Err(unreachable_room()),
                    Err(err) => {
                        tracing::warn!(%interview, %node, %err, "sending a room control to its host");
                        Err(unreachable_room())
                    }
                };
            }
            Ok(Claim::Busy) => return Err(unreachable_room()),
            Err(err) => {
                tracing::warn!(%interview, %err, "placing a room for a control");
                return Err(unreachable_room());
            }
        }
    }
    apply(state, interview, control)
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
        RoomControl::StopProctoring => Ok(state.proctoring.stop(interview)),
        RoomControl::ProctoringConsented { participant } => {
            state.proctoring.consented(interview, &participant);
            Ok(true)
        }
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

/// Whether `interview`'s room is up: here, or (in a cluster) placed on some node.
pub async fn is_up(state: &AppState, interview: &str) -> bool {
    let room = RoomId(interview.to_owned());
    if state.hub.has_room(&room) {
        return true;
    }
    match (&state.cluster, RoomKey::new(interview)) {
        (Some(cluster), Ok(key)) => matches!(cluster.host(&key).await, Ok(Some(_))),
        _ => false,
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
        NodeCommand::Remove {
            room,
            identity,
            reason,
        } => {
            state.hub.remove_participant(&room, &identity, reason);
            CommandAnswer::Done { result: true }
        }
        NodeCommand::Control { room, control } => {
            let hosted = match &state.hosted_rooms {
                Some(rooms) => matches!(rooms.claim_as_host(&room).await, Ok(Claim::Here)),
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
