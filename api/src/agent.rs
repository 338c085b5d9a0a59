//! The server's own members of a room: the recorder and the proctor. Each joins the room it
//! works for as a hidden agent ([`Grants::agent`]: no peer connections, media through taps),
//! follows the room through the same messages a participant gets, and keeps a [`RoomMirror`]
//! of who is there and what they publish.

use std::collections::BTreeMap;

use sightline_signaling::protocol::{PROTOCOL_VERSION, ParticipantInfo, ServerMessage, TrackInfo};
use sightline_signaling::{Grants, Hub, InterviewRole, Member, RoomId, Session};

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
    /// Someone joined.
    Joined(ParticipantInfo),
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
                Change::Joined(participant.clone())
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
