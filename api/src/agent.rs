//! The server's own members of a room: the recorder and the proctor. Each joins the room it
//! works for as a hidden agent ([`Grants::agent`]: no peer connections, media through taps),
//! follows the room through the same messages a participant gets, and keeps a [`RoomMirror`]
//! of who is there and what they publish.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use sightline_signaling::protocol::{PROTOCOL_VERSION, ParticipantInfo, ServerMessage, TrackInfo};
use sightline_signaling::{Grants, Hub, InterviewRole, Member, RoomId, Session};
use tokio::sync::mpsc;

use crate::auth::opaque;
use crate::error::ApiError;
use crate::store::new_id;

/// Joins room `room` as a hidden agent named `name` (`kind` prefixes its identity).
pub async fn join(hub: &Hub, room: &RoomId, kind: &str, name: &str) -> Result<Session, ApiError> {
    let member = Member {
        identity: format!("{kind}-{}", new_id()),
        name: name.to_owned(),
        role: InterviewRole::Reviewer,
        grants: Grants::agent(),
        phone_of: None,
    };
    hub.connect(room, member, PROTOCOL_VERSION, None, opaque::generate()?)
        .await
        .map_err(|_| ApiError::Unavailable("the room is unavailable"))
}

/// The running controllers of one kind of agent, at most one per interview, each taking
/// commands `C`. A controller that ends closes its receiver; a closed entry counts as not
/// running, so a new one can start while the old one finishes.
#[derive(Debug)]
pub struct Controllers<C> {
    running: Mutex<HashMap<String, mpsc::UnboundedSender<C>>>,
}

impl<C> Default for Controllers<C> {
    fn default() -> Self {
        Controllers {
            running: Mutex::new(HashMap::new()),
        }
    }
}

impl<C> Controllers<C> {
    /// Whether any controller runs.
    pub fn any_running(&self) -> bool {
        self.running
            .lock()
            .map(|running| running.values().any(|tx| !tx.is_closed()))
            .unwrap_or(false)
    }

    /// Whether a controller runs for `interview`.
    pub fn is_running(&self, interview: &str) -> bool {
        self.running
            .lock()
            .map(|running| running.get(interview).is_some_and(|tx| !tx.is_closed()))
            .unwrap_or(false)
    }

    /// Registers a new controller for `interview` and returns its commands, or `None` when one
    /// runs already.
    pub fn claim(&self, interview: &str) -> Result<Option<mpsc::UnboundedReceiver<C>>, ApiError> {
        let mut running = self
            .running
            .lock()
            .map_err(|_| ApiError::Internal("controller registry poisoned".into()))?;
        if running.get(interview).is_some_and(|tx| !tx.is_closed()) {
            return Ok(None);
        }
        let (tx, rx) = mpsc::unbounded_channel();
        running.insert(interview.to_owned(), tx);
        Ok(Some(rx))
    }

    /// Takes `interview`'s controller out of the registry and hands it `command` (its stop);
    /// false if none ran.
    pub fn stop(&self, interview: &str, command: C) -> bool {
        let tx = self
            .running
            .lock()
            .ok()
            .and_then(|mut running| running.remove(interview));
        tx.is_some_and(|tx| tx.send(command).is_ok())
    }

    /// Hands `command` to `interview`'s controller, if one runs.
    pub fn send(&self, interview: &str, command: C) {
        if let Ok(running) = self.running.lock()
            && let Some(tx) = running.get(interview)
        {
            let _ = tx.send(command);
        }
    }

    /// For a controller that ended (its receiver closed): takes it out of the registry unless a
    /// newer one replaced it; returns whether a newer one runs.
    pub fn forget(&self, interview: &str) -> bool {
        let Ok(mut running) = self.running.lock() else {
            return false;
        };
        match running.get(interview) {
            Some(tx) if tx.is_closed() => {
                running.remove(interview);
                false
            }
            Some(_) => true,
            None => false,
        }
    }
}

/// Who is in a room (visible participants) and what is published, as its messages tell it.
#[derive(Debug, Default)]
pub struct RoomMirror {
    /// Participants by identity.
    pub participants: BTreeMap<String, ParticipantInfo>,
    /// Published tracks by id.
    pub tracks: BTreeMap<String, TrackInfo>,
}

/// What a room message changed in the mirror.
#[derive(Debug)]
pub enum Change {
    /// The first snapshot.
    Snapshot,
    /// Someone joined (now in `participants`).
    Joined,
    /// Someone left (as they were), with the tracks they still had (gone with them).
    Left(ParticipantInfo, Vec<TrackInfo>),
    /// A track was published.
    Published(TrackInfo),
    /// A track went away (its last state).
    Unpublished(TrackInfo),
    /// Nothing the mirror keeps.
    None,
}

impl RoomMirror {
    /// Applies one message of the room.
    pub fn apply(&mut self, message: &ServerMessage) -> Change {
        match message {
            ServerMessage::Joined {
                participants,
                tracks,
                ..
            } => {
                for participant in participants {
                    self.participants
                        .insert(participant.identity.clone(), participant.clone());
                }
                for track in tracks {
                    self.tracks.insert(track.id.clone(), track.clone());
                }
                Change::Snapshot
            }
            ServerMessage::ParticipantJoined { participant } => {
                self.participants
                    .insert(participant.identity.clone(), participant.clone());
                Change::Joined
            }
            ServerMessage::ParticipantLeft { participant, .. } => {
                let Some(info) = self.participants.remove(participant) else {
                    return Change::None;
                };
                let gone: Vec<String> = self
                    .tracks
                    .values()
                    .filter(|t| t.participant == *participant)
                    .map(|t| t.id.clone())
                    .collect();
                let tracks = gone
                    .iter()
                    .filter_map(|id| self.tracks.remove(id))
                    .collect();
                Change::Left(info, tracks)
            }
            ServerMessage::TrackPublished { track } => {
                self.tracks.insert(track.id.clone(), track.clone());
                Change::Published(track.clone())
            }
            ServerMessage::TrackUnpublished { track } => match self.tracks.remove(track) {
                Some(track) => Change::Unpublished(track),
                None => Change::None,
            },
            ServerMessage::TrackMuted { track, muted, .. } => {
                if let Some(info) = self.tracks.get_mut(track) {
                    info.muted = *muted;
                }
                Change::None
            }
            ServerMessage::TrackStalled { track, stalled } => {
                if let Some(info) = self.tracks.get_mut(track) {
                    info.stalled = *stalled;
                }
                Change::None
            }
            _ => Change::None,
        }
    }

    /// The person a participant stands for: a phone's candidate, or the participant.
    pub fn owner<'a>(&'a self, identity: &'a str) -> &'a str {
        self.participants
            .get(identity)
            .and_then(|p| p.phone_of.as_deref())
            .unwrap_or(identity)
    }
}
