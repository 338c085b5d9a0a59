//! One interview's room: who is in it, what they publish, and what they may do.
//!
//! A plain state machine with no I/O: the caller hands in verified members, client requests and
//! media-plane events, and gets back [`Effect`]s to carry out (messages to send, subscriptions to
//! make, connections to close). Time and resume tokens are arguments, so tests drive it directly.
//!
//! Every request is checked against the requester's grants here, on the server; a refused request
//! changes nothing and yields a [`RoomError`] the caller reports to that client only.

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::time::{Duration, Instant};

use crate::grants::{Grants, InterviewRole, RoomId, TrackSource};
use crate::protocol::{
    ConnectionQuality, DeclaredTrack, LeaveReason, Limits, MAX_CHAT_CHARS, MAX_TRACKS_PER_OFFER,
    PROTOCOL_VERSION, ParticipantInfo, ProctoringEvent, ProctoringHint, ProctoringNotice,
    RecordingNotice, RequestedQuality, ServerMessage, TrackInfo, chat_length,
};

/// How long a participant whose connection dropped may come back with its resume token.
pub const RESUME_WINDOW: Duration = Duration::from_secs(30);

/// A participant as verified by the API from its join token.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Member {
    /// Identity (participant id).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Role in the interview.
    pub role: InterviewRole,
    /// What they may do.
    pub grants: Grants,
    /// Set for a candidate's phone: the identity of the candidate it belongs to.
    pub phone_of: Option<String>,
}

/// Something the caller must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Send a message to one participant's connection.
    Send {
        /// Identity.
        to: String,
        /// The message (boxed: a room snapshot is many times larger than the other effects).
        message: Box<ServerMessage>,
    },
    /// Media plane: start sending `track` to `subscriber`.
    Subscribe {
        /// Identity of the receiver.
        subscriber: String,
        /// Track id.
        track: String,
    },
    /// Media plane: the quality `subscriber` wants of `track`.
    SetQuality {
        /// Identity of the receiver.
        subscriber: String,
        /// Track id.
        track: String,
        /// Wanted quality.
        quality: RequestedQuality,
    },
    /// Media plane: hold a track (a moderator muted it) or release it.
    Hold {
        /// Track id.
        track: String,
        /// Held or released.
        held: bool,
    },
    /// Close this participant's connection and media.
    Disconnect {
        /// Identity.
        participant: String,
    },
    /// For whoever watches rooms from outside (webhooks): someone visible came in or left. A
    /// connection resumed or taken over by a second tab is neither.
    Presence(PresenceChange),
}

/// Who is in a room now, for an operator.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RoomOverview {
    /// The visible participants, as the others see them (reconnecting ones included).
    pub participants: Vec<ParticipantInfo>,
    /// Members nobody sees: reviewers watching, the server's agents.
    pub hidden: usize,
    /// Published tracks.
    pub tracks: usize,
}

/// A visible participant's arrival or departure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PresenceChange {
    /// They joined.
    Joined(ParticipantInfo),
    /// They left, for `reason`.
    Left {
        /// Identity.
        participant: String,
        /// Why.
        reason: LeaveReason,
    },
}

/// A request the room refuses; nothing changed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RoomError {
    /// The join token was for another protocol version.
    #[error("protocol version {0} is not supported")]
    UnsupportedVersion(u32),
    /// The requester is not (or no longer) in the room.
    #[error("not in this room")]
    NotInRoom,
    /// The requester's grants do not allow this.
    #[error("not allowed: {0}")]
    NotAllowed(&'static str),
    /// No such track, or not one the requester may act on.
    #[error("unknown track")]
    UnknownTrack,
    /// No such participant.
    #[error("unknown participant")]
    UnknownParticipant,
    /// A media line was published that the client never declared.
    #[error("track `{0}` was not declared")]
    Undeclared(String),
    /// The chat message is empty or too long.
    #[error("chat messages must be 1 to {MAX_CHAT_CHARS} characters")]
    BadChat,
    /// A moderator removed this identity and nobody readmitted it.
    #[error("a moderator removed you from this room; an interviewer can let you back in")]
    Barred,
    /// The offer declares too many tracks or the same mid twice.
    #[error("invalid track declaration")]
    BadDeclaration,
    /// The resume token is wrong or the window has passed.
    #[error("cannot resume this session")]
    ResumeRefused,
    /// An administrator closed the room while this session's connection was down.
    #[error("an administrator closed this room; you can join it again")]
    Closed,
}

impl RoomError {
    /// The stable code sent in an `error` message.
    pub fn code(&self) -> &'static str {
        match self {
            RoomError::UnsupportedVersion(_) => "unsupported_version",
            RoomError::NotInRoom => "not_in_room",
            RoomError::NotAllowed(_) => "not_allowed",
            RoomError::UnknownTrack => "unknown_track",
            RoomError::UnknownParticipant => "unknown_participant",
            RoomError::Undeclared(_) => "undeclared_track",
            RoomError::BadChat => "bad_chat",
            RoomError::BadDeclaration => "bad_declaration",
            RoomError::ResumeRefused => "resume_refused",
            RoomError::Barred => "removed",
            RoomError::Closed => "room_closed",
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Presence {
    Connected,
    Reconnecting { since: Instant },
}

#[derive(Debug, Clone)]
struct Participant {
    member: Member,
    presence: Presence,
    resume_token: String,
    declared: HashMap<String, TrackSource>,
    /// The latest link report of each of its connections: (loss, round trip in ms).
    links: [Option<(f32, Option<u32>)>; 2],
    /// The rating the room last told everyone.
    connection: Option<ConnectionQuality>,
}

impl Participant {
    fn info(&self) -> ParticipantInfo {
        ParticipantInfo {
            identity: self.member.identity.clone(),
            name: self.member.name.clone(),
            role: self.member.role,
            reconnecting: matches!(self.presence, Presence::Reconnecting { .. }),
            phone_of: self.member.phone_of.clone(),
            connection: self.connection,
        }
    }

    fn hidden(&self) -> bool {
        self.member.grants.hidden
    }
}

#[derive(Debug, Clone)]
struct Track {
    owner: String,
    source: TrackSource,
    muted: bool,
    /// A moderator muted it: the media plane forwards nothing until its owner unmutes.
    held: bool,
    /// Its media stopped arriving at the server.
    stalled: bool,
}

/// One interview's room.
#[derive(Debug)]
pub struct Room {
    id: RoomId,
    participants: BTreeMap<String, Participant>,
    tracks: BTreeMap<String, Track>,
    speakers: BTreeSet<String>,
    recording: RecordingNotice,
    proctoring: ProctoringNotice,
    /// Identities a moderator removed: they cannot join again until a moderator readmits them.
    barred: BTreeSet<String>,
}

impl Room {
    /// An empty room.
    pub fn new(id: RoomId) -> Room {
        Room::with_barred(id, BTreeSet::new())
    }

    /// An empty room that still bars the identities removed from it earlier (a room whose
    /// last participant left and that is opened again keeps its removals).
    pub fn with_barred(id: RoomId, barred: BTreeSet<String>) -> Room {
        Room {
            id,
            participants: BTreeMap::new(),
            tracks: BTreeMap::new(),
            speakers: BTreeSet::new(),
            recording: RecordingNotice::default(),
            proctoring: ProctoringNotice::default(),
            barred,
        }
    }

    /// Identities removed by a moderator and not readmitted.
    pub fn barred(&self) -> &BTreeSet<String> {
        &self.barred
    }

    /// The room's id.
    pub fn id(&self) -> &RoomId {
        &self.id
    }

    /// Whether nobody is in the room (it can be dropped).
    pub fn is_empty(&self) -> bool {
        self.participants.is_empty()
    }

    /// Identities of everyone in the room.
    pub fn identities(&self) -> impl Iterator<Item = &str> {
        self.participants.keys().map(String::as_str)
    }

    /// Whether `track` is published in this room.
    pub fn has_track(&self, track: &str) -> bool {
        self.tracks.contains_key(track)
    }

    fn track_info(&self, id: &str, track: &Track) -> TrackInfo {
        TrackInfo {
            id: id.to_owned(),
            participant: track.owner.clone(),
            source: track.source,
            muted: track.muted,
            stalled: track.stalled,
        }
    }

    /// Sends `message` to every connected participant except `except`; hidden participants get it
    /// only when `to_hidden`.
    fn broadcast(
        &self,
        effects: &mut Vec<Effect>,
        except: Option<&str>,
        message: &ServerMessage,
        to_hidden: bool,
    ) {
        for (identity, participant) in &self.participants {
            if Some(identity.as_str()) == except
                || participant.presence != Presence::Connected
                || (participant.hidden() && !to_hidden)
            {
                continue;
            }
            effects.push(Effect::Send {
                to: identity.clone(),
                message: Box::new(message.clone()),
            });
        }
    }

    fn snapshot(&self, identity: &str) -> Option<ServerMessage> {
        let me = self.participants.get(identity)?;
        let participants = self
            .participants
            .values()
            .filter(|p| p.member.identity != identity && !p.hidden())
            .map(Participant::info)
            .collect();
        let tracks = self
            .tracks
            .iter()
            .map(|(id, track)| self.track_info(id, track))
            .collect();
        Some(ServerMessage::Joined {
            version: PROTOCOL_VERSION,
            you: me.info(),
            participants,
            tracks,
            resume_token: me.resume_token.clone(),
            recording: self.recording.clone(),
            proctoring: self.proctoring.clone(),
            limits: Limits::default(),
            ice_servers: Vec::new(),
        })
    }

    fn subscriptions_for(&self, identity: &str, effects: &mut Vec<Effect>) {
        let Some(participant) = self.participants.get(identity) else {
            return;
        };
        if !participant.member.grants.can_subscribe {
            return;
        }
        for (track_id, track) in &self.tracks {
            if track.owner != identity {
                effects.push(Effect::Subscribe {
                    subscriber: identity.to_owned(),
                    track: track_id.clone(),
                });
            }
        }
    }

    /// Admits a verified member. A member already in the room (a second tab, a reload) takes
    /// over its identity; the caller closes the older connection.
    pub fn join(
        &mut self,
        member: Member,
        version: u32,
        resume_token: String,
    ) -> Result<Vec<Effect>, RoomError> {
        if version != PROTOCOL_VERSION {
            return Err(RoomError::UnsupportedVersion(version));
        }
        if !member.grants.room_join {
            return Err(RoomError::NotAllowed("joining this room"));
        }
        if self.barred.contains(&member.identity) {
            return Err(RoomError::Barred);
        }
        let identity = member.identity.clone();
        let hidden = member.grants.hidden;
        let rejoining = self.participants.contains_key(&identity);
        self.participants.insert(
            identity.clone(),
            Participant {
                member,
                presence: Presence::Connected,
                resume_token,
                declared: HashMap::new(),
                links: [None; 2],
                connection: None,
            },
        );
        let mut effects = Vec::new();
        if let Some(snapshot) = self.snapshot(&identity) {
            effects.push(Effect::Send {
                to: identity.clone(),
                message: Box::new(snapshot),
            });
        }
        if !hidden {
            let message = match (rejoining, self.participants.get(&identity)) {
                (false, Some(p)) => ServerMessage::ParticipantJoined {
                    participant: p.info(),
                },
                _ => ServerMessage::ParticipantResumed {
                    participant: identity.clone(),
                },
            };
            self.broadcast(&mut effects, Some(&identity), &message, true);
            if let (false, Some(p)) = (rejoining, self.participants.get(&identity)) {
                effects.push(Effect::Presence(PresenceChange::Joined(p.info())));
            }
        }
        self.subscriptions_for(&identity, &mut effects);
        Ok(effects)
    }

    /// A participant whose connection dropped comes back with its resume token.
    pub fn resume(
        &mut self,
        identity: &str,
        resume_token: &str,
        new_resume_token: String,
        now: Instant,
    ) -> Result<Vec<Effect>, RoomError> {
        let participant = self
            .participants
            .get_mut(identity)
            .ok_or(RoomError::ResumeRefused)?;
        let in_window = match participant.presence {
            Presence::Connected => true,
            Presence::Reconnecting { since } => {
                now.saturating_duration_since(since) <= RESUME_WINDOW
            }
        };
        if !in_window || !constant_time_eq(&participant.resume_token, resume_token) {
            return Err(RoomError::ResumeRefused);
        }
        participant.presence = Presence::Connected;
        participant.resume_token = new_resume_token;
        let hidden = participant.hidden();
        let mut effects = Vec::new();
        if let Some(snapshot) = self.snapshot(identity) {
            effects.push(Effect::Send {
                to: identity.to_owned(),
                message: Box::new(snapshot),
            });
        }
        if !hidden {
            let message = ServerMessage::ParticipantResumed {
                participant: identity.to_owned(),
            };
            self.broadcast(&mut effects, Some(identity), &message, true);
        }
        Ok(effects)
    }

    /// The media plane lost a participant's peer connections and made new ones: the client is
    /// told to start its media afresh (when it is connected; otherwise the caller tells it on
    /// resume), and its subscriptions are made again on the new subscriber connection.
    pub fn media_reset(&mut self, identity: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        // The old connections' reports say nothing of the new ones.
        if let Some(participant) = self.participants.get_mut(identity) {
            participant.links = [None; 2];
        }
        if self
            .participants
            .get(identity)
            .is_some_and(|p| p.presence == Presence::Connected)
        {
            effects.push(Effect::Send {
                to: identity.to_owned(),
                message: Box::new(ServerMessage::MediaReset {
                    ice_servers: Vec::new(),
                }),
            });
        }
        self.subscriptions_for(identity, &mut effects);
        effects
    }

    /// Subscribes a participant's new subscriber connection to every track it may receive (the
    /// media plane replaced the old one; the caller tells the client).
    pub fn resubscribe(&self, identity: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.subscriptions_for(identity, &mut effects);
        effects
    }

    /// A participant's connection dropped; they have [`RESUME_WINDOW`] to come back.
    pub fn disconnected(&mut self, identity: &str, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(participant) = self.participants.get_mut(identity) else {
            return effects;
        };
        if participant.presence != Presence::Connected {
            return effects;
        }
        participant.presence = Presence::Reconnecting { since: now };
        if !participant.hidden() {
            let message = ServerMessage::ParticipantReconnecting {
                participant: identity.to_owned(),
            };
            self.broadcast(&mut effects, Some(identity), &message, true);
        }
        effects
    }

    /// Removes participants whose resume window has passed.
    pub fn tick(&mut self, now: Instant) -> Vec<Effect> {
        let expired: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, p)| match p.presence {
                Presence::Reconnecting { since } => {
                    now.saturating_duration_since(since) > RESUME_WINDOW
                }
                Presence::Connected => false,
            })
            .map(|(id, _)| id.clone())
            .collect();
        let mut effects = Vec::new();
        for identity in expired {
            effects.extend(self.leave(&identity, LeaveReason::TimedOut));
        }
        effects
    }

    /// Removes a participant and everything they published.
    pub fn leave(&mut self, identity: &str, reason: LeaveReason) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(participant) = self.participants.remove(identity) else {
            return effects;
        };
        if self.speakers.remove(identity) {
            self.broadcast_speakers(&mut effects);
        }
        let theirs: Vec<String> = self
            .tracks
            .iter()
            .filter(|(_, t)| t.owner == identity)
            .map(|(id, _)| id.clone())
            .collect();
        for track in theirs {
            self.tracks.remove(&track);
            let message = ServerMessage::TrackUnpublished { track };
            self.broadcast(&mut effects, None, &message, true);
        }
        if !participant.hidden() {
            let message = ServerMessage::ParticipantLeft {
                participant: identity.to_owned(),
                reason,
            };
            self.broadcast(&mut effects, None, &message, true);
            effects.push(Effect::Presence(PresenceChange::Left {
                participant: identity.to_owned(),
                reason,
            }));
        }
        effects.push(Effect::Disconnect {
            participant: identity.to_owned(),
        });
        effects
    }

    fn connected(&self, identity: &str) -> Result<&Participant, RoomError> {
        self.participants
            .get(identity)
            .filter(|p| p.presence == Presence::Connected)
            .ok_or(RoomError::NotInRoom)
    }

    /// Records what each m-line of a publish offer carries, after checking the grants.
    pub fn declare_tracks(
        &mut self,
        identity: &str,
        tracks: &[DeclaredTrack],
    ) -> Result<(), RoomError> {
        let grants = &self.connected(identity)?.member.grants;
        if tracks.len() > MAX_TRACKS_PER_OFFER {
            return Err(RoomError::BadDeclaration);
        }
        let mut declared = HashMap::with_capacity(tracks.len());
        for track in tracks {
            if !grants.may_publish(track.source) {
                return Err(RoomError::NotAllowed("publishing this source"));
            }
            // One camera, one microphone, one screen: a second m-line of a source is refused.
            if declared.values().any(|source| *source == track.source)
                || declared.insert(track.mid.clone(), track.source).is_some()
            {
                return Err(RoomError::BadDeclaration);
            }
        }
        if let Some(participant) = self.participants.get_mut(identity) {
            participant.declared = declared;
        }
        Ok(())
    }

    /// The media plane saw a new track on a participant's publisher connection.
    pub fn track_published(
        &mut self,
        identity: &str,
        track: String,
        mid: &str,
    ) -> Result<Vec<Effect>, RoomError> {
        let participant = self.connected(identity)?;
        let source = *participant
            .declared
            .get(mid)
            .ok_or_else(|| RoomError::Undeclared(mid.to_owned()))?;
        // An m-line of an earlier offer that is still sending counts: still one per source.
        if self
            .tracks
            .values()
            .any(|t| t.owner == identity && t.source == source)
        {
            return Err(RoomError::BadDeclaration);
        }
        let published = Track {
            owner: identity.to_owned(),
            source,
            muted: false,
            held: false,
            stalled: false,
        };
        let info = self.track_info(&track, &published);
        self.tracks.insert(track.clone(), published);
        let mut effects = Vec::new();
        let message = ServerMessage::TrackPublished { track: info };
        self.broadcast(&mut effects, None, &message, true);
        for (other, p) in &self.participants {
            if other != identity && p.member.grants.can_subscribe {
                effects.push(Effect::Subscribe {
                    subscriber: other.clone(),
                    track: track.clone(),
                });
            }
        }
        Ok(effects)
    }

    /// The media plane lost a track (its publisher connection closed).
    pub fn track_unpublished(&mut self, track: &str) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.tracks.remove(track).is_some() {
            let message = ServerMessage::TrackUnpublished {
                track: track.to_owned(),
            };
            self.broadcast(&mut effects, None, &message, true);
        }
        effects
    }

    /// The media plane heard a participant's audio start or stop carrying speech. Everyone gets
    /// the new set of speakers; muted tracks never count.
    pub fn speaking(&mut self, track: &str, speaking: bool) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(owner) = self
            .tracks
            .get(track)
            .filter(|t| !t.muted || !speaking)
            .map(|t| t.owner.clone())
        else {
            return effects;
        };
        let changed = if speaking {
            self.speakers.insert(owner)
        } else {
            self.speakers.remove(&owner)
        };
        if changed {
            self.broadcast_speakers(&mut effects);
        }
        effects
    }

    fn broadcast_speakers(&self, effects: &mut Vec<Effect>) {
        let message = ServerMessage::ActiveSpeakers {
            participants: self.speakers.iter().cloned().collect(),
        };
        self.broadcast(effects, None, &message, true);
    }

    /// The recording status changed (the API's recording controller decides it): everyone is
    /// told, and joiners find it in their snapshot.
    pub fn set_recording(&mut self, notice: RecordingNotice) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.recording == notice {
            return effects;
        }
        self.recording = notice;
        let message = ServerMessage::Recording {
            recording: self.recording.clone(),
        };
        self.broadcast(&mut effects, None, &message, true);
        effects
    }

    /// Whether the room is proctored changed (the API's proctoring controller decides it):
    /// everyone is told, and joiners find it in their snapshot.
    pub fn set_proctoring(&mut self, notice: ProctoringNotice) -> Vec<Effect> {
        let mut effects = Vec::new();
        if self.proctoring == notice {
            return effects;
        }
        self.proctoring = notice;
        let message = ServerMessage::Proctoring {
            proctoring: self.proctoring.clone(),
        };
        self.broadcast(&mut effects, None, &message, true);
        effects
    }

    /// A proctoring event, for the people who assess the interview: connected interviewers and
    /// reviewers (hidden ones too). Never candidates, their phones, observers or agents.
    pub fn proctoring_event(&self, event: ProctoringEvent) -> Vec<Effect> {
        let message = ServerMessage::ProctoringEvent { event };
        self.participants
            .iter()
            .filter(|(_, p)| {
                p.presence == Presence::Connected
                    && !p.member.grants.agent
                    && p.member.phone_of.is_none()
                    && matches!(
                        p.member.role,
                        InterviewRole::Interviewer | InterviewRole::Reviewer
                    )
            })
            .map(|(identity, _)| Effect::Send {
                to: identity.clone(),
                message: Box::new(message.clone()),
            })
            .collect()
    }

    /// A prompt to one participant about their own setup (if they are connected).
    pub fn proctoring_hint(&self, identity: &str, hint: ProctoringHint) -> Vec<Effect> {
        let connected = self
            .participants
            .get(identity)
            .is_some_and(|p| p.presence == Presence::Connected);
        if !connected {
            return Vec::new();
        }
        vec![Effect::Send {
            to: identity.to_owned(),
            message: Box::new(ServerMessage::ProctoringHint { hint }),
        }]
    }

    /// The media plane says a track's media stopped arriving, or started again.
    pub fn track_stalled(&mut self, track_id: &str, stalled: bool) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(track) = self.tracks.get_mut(track_id) else {
            return effects;
        };
        if track.stalled == stalled {
            return effects;
        }
        track.stalled = stalled;
        let message = ServerMessage::TrackStalled {
            track: track_id.to_owned(),
            stalled,
        };
        self.broadcast(&mut effects, None, &message, true);
        effects
    }

    /// The media plane reports one of a participant's connections (`upstream`: the publisher
    /// connection; otherwise the subscriber connection): loss 0.0–1.0 and the round trip. When
    /// the rating of the worse of the two changes, everyone visible hears it.
    pub fn link_report(
        &mut self,
        identity: &str,
        upstream: bool,
        loss: f32,
        rtt_ms: Option<u32>,
    ) -> Vec<Effect> {
        let mut effects = Vec::new();
        let Some(participant) = self.participants.get_mut(identity) else {
            return effects;
        };
        participant.links[usize::from(!upstream)] = Some((loss, rtt_ms));
        let reports = participant.links.iter().flatten();
        let worst_loss = reports.clone().map(|(loss, _)| *loss).fold(0.0, f32::max);
        let rtt = reports.filter_map(|(_, rtt)| *rtt).max();
        let quality = ConnectionQuality::rate(worst_loss, rtt);
        if participant.connection == Some(quality) || participant.hidden() {
            return effects;
        }
        participant.connection = Some(quality);
        let message = ServerMessage::ConnectionQuality {
            participant: identity.to_owned(),
            quality,
            loss_percent: (worst_loss.clamp(0.0, 1.0) * 100.0).round() as u8,
            rtt_ms: rtt,
        };
        // Reviewers watching hidden see it too.
        self.broadcast(&mut effects, None, &message, true);
        effects
    }

    /// The server removes a participant (its phone was unpaired or replaced): it is told why,
    /// its connection and media close, and the others see it leave.
    pub fn remove(&mut self, identity: &str, reason: LeaveReason) -> Vec<Effect> {
        if !self.participants.contains_key(identity) {
            return Vec::new();
        }
        let mut effects = vec![Effect::Send {
            to: identity.to_owned(),
            message: Box::new(ServerMessage::Removed { reason }),
        }];
        effects.extend(self.leave(identity, reason));
        effects
    }

    /// Who is here now.
    pub fn overview(&self) -> RoomOverview {
        RoomOverview {
            participants: self
                .participants
                .values()
                .filter(|p| !p.hidden())
                .map(Participant::info)
                .collect(),
            hidden: self.participants.values().filter(|p| p.hidden()).count(),
            tracks: self.tracks.len(),
        }
    }

    /// The people (not agents) with their resume tokens, for a close to be told on a resume too:
    /// a connection may be down without the room knowing yet (a drop still queued, a network
    /// that went silent), and whoever did get `room_closed` does not resume.
    pub fn resumable(&self) -> Vec<(String, String)> {
        self.participants
            .iter()
            .filter(|(_, p)| !p.member.grants.agent)
            .map(|(identity, p)| (identity.clone(), p.resume_token.clone()))
            .collect()
    }

    /// An administrator closes the room: every person in it (not the server's agents, which
    /// follow the room emptying) is told (`room_closed`) and leaves. Nobody is barred: an
    /// interview still open can be joined again.
    pub fn close(&mut self) -> Vec<Effect> {
        let people: Vec<String> = self
            .participants
            .iter()
            .filter(|(_, p)| !p.member.grants.agent)
            .map(|(identity, _)| identity.clone())
            .collect();
        let mut effects = Vec::new();
        for identity in people {
            effects.extend(self.remove(&identity, LeaveReason::RoomClosed));
        }
        effects
    }

    /// A publisher muted or unmuted one of its own tracks.
    pub fn mute(
        &mut self,
        identity: &str,
        track_id: &str,
        muted: bool,
    ) -> Result<Vec<Effect>, RoomError> {
        self.connected(identity)?;
        let track = self
            .tracks
            .get_mut(track_id)
            .filter(|t| t.owner == identity)
            .ok_or(RoomError::UnknownTrack)?;
        track.muted = muted;
        let mut effects = Vec::new();
        if !muted && track.held {
            // The owner unmuting is their consent to be heard again.
            track.held = false;
            effects.push(Effect::Hold {
                track: track_id.to_owned(),
                held: false,
            });
        }
        let message = ServerMessage::TrackMuted {
            track: track_id.to_owned(),
            muted,
            by: None,
        };
        self.broadcast(&mut effects, None, &message, true);
        Ok(effects)
    }

    /// A moderator mutes someone else's track.
    pub fn moderate_mute(&mut self, actor: &str, track_id: &str) -> Result<Vec<Effect>, RoomError> {
        if !self.connected(actor)?.member.grants.can_moderate {
            return Err(RoomError::NotAllowed("muting others"));
        }
        let track = self
            .tracks
            .get_mut(track_id)
            .ok_or(RoomError::UnknownTrack)?;
        track.muted = true;
        // Enforced by the media plane, not left to the muted client's goodwill.
        track.held = true;
        let mut effects = vec![Effect::Hold {
            track: track_id.to_owned(),
            held: true,
        }];
        let message = ServerMessage::TrackMuted {
            track: track_id.to_owned(),
            muted: true,
            by: Some(actor.to_owned()),
        };
        self.broadcast(&mut effects, None, &message, true);
        Ok(effects)
    }

    /// A moderator removes a participant.
    pub fn moderate_remove(&mut self, actor: &str, target: &str) -> Result<Vec<Effect>, RoomError> {
        if !self.connected(actor)?.member.grants.can_moderate {
            return Err(RoomError::NotAllowed("removing participants"));
        }
        if actor == target {
            return Err(RoomError::NotAllowed("removing yourself; leave instead"));
        }
        if !self.participants.contains_key(target) {
            return Err(RoomError::UnknownParticipant);
        }
        // The removal sticks: the same join token, or a new one, does not bring them back.
        self.barred.insert(target.to_owned());
        Ok(self.remove(target, LeaveReason::Removed))
    }

    /// A moderator lets a removed participant join again.
    pub fn readmit(&mut self, actor: &str, target: &str) -> Result<Vec<Effect>, RoomError> {
        if !self.connected(actor)?.member.grants.can_moderate {
            return Err(RoomError::NotAllowed("readmitting participants"));
        }
        if !self.barred.remove(target) {
            return Err(RoomError::UnknownParticipant);
        }
        Ok(Vec::new())
    }

    /// A chat message to everyone in the room.
    pub fn chat(
        &mut self,
        identity: &str,
        text: &str,
        at_ms: i64,
    ) -> Result<Vec<Effect>, RoomError> {
        let participant = self.connected(identity)?;
        if participant.hidden() || !participant.member.grants.can_chat {
            return Err(RoomError::NotAllowed("chatting"));
        }
        if text.trim().is_empty() || chat_length(text) > MAX_CHAT_CHARS {
            return Err(RoomError::BadChat);
        }
        let message = ServerMessage::Chat {
            from: identity.to_owned(),
            name: participant.member.name.clone(),
            text: text.to_owned(),
            at: at_ms,
        };
        let mut effects = Vec::new();
        self.broadcast(&mut effects, None, &message, true);
        Ok(effects)
    }

    /// The quality a subscriber wants of a remote track. A tile's quality is a hint that can
    /// cross the track's unpublishing (a resize, a resume saying every tile's quality again):
    /// for a track the room no longer has, there is nothing to do and nothing to tell.
    pub fn set_quality(
        &mut self,
        identity: &str,
        track_id: &str,
        quality: RequestedQuality,
    ) -> Result<Vec<Effect>, RoomError> {
        if !self.connected(identity)?.member.grants.can_subscribe {
            return Err(RoomError::NotAllowed("subscribing"));
        }
        let Some(track) = self.tracks.get(track_id) else {
            return Ok(Vec::new());
        };
        if track.owner == identity {
            return Err(RoomError::UnknownTrack);
        }
        Ok(vec![Effect::SetQuality {
            subscriber: identity.to_owned(),
            track: track_id.to_owned(),
            quality,
        }])
    }
}

/// Compares secrets without stopping at the first difference.
pub(crate) fn constant_time_eq(a: &str, b: &str) -> bool {
    a.len() == b.len()
        && a.bytes()
            .zip(b.bytes())
            .fold(0u8, |diff, (x, y)| diff | (x ^ y))
            == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn member(identity: &str, role: InterviewRole) -> Member {
        Member {
            identity: identity.to_owned(),
            name: identity.to_uppercase(),
            role,
            grants: Grants::for_role(role),
            phone_of: None,
        }
    }

    fn room_with(members: &[(&str, InterviewRole)]) -> Room {
        let mut room = Room::new(RoomId("r1".into()));
        for (identity, role) in members {
            room.join(
                member(identity, *role),
                PROTOCOL_VERSION,
                format!("resume-{identity}"),
            )
            .expect("joins");
        }
        room
    }

    fn sent_to<'a>(effects: &'a [Effect], who: &str) -> Vec<&'a ServerMessage> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, message } if to == who => Some(&**message),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn a_worse_or_better_link_is_told_to_everyone_once_and_joiners_see_it() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        let told = |effects: &[Effect], who: &str| {
            sent_to(effects, who)
                .into_iter()
                .filter_map(|m| match m {
                    ServerMessage::ConnectionQuality {
                        participant,
                        quality,
                        loss_percent,
                        ..
                    } => Some((participant.clone(), *quality, *loss_percent)),
                    _ => None,
                })
                .collect::<Vec<_>>()
        };
        let effects = room.link_report("cas", true, 0.0, Some(40));
        assert_eq!(
            told(&effects, "ivy"),
            [("cas".into(), ConnectionQuality::Good, 0)]
        );
        assert_eq!(
            told(&effects, "cas").len(),
            1,
            "the participant hears it too"
        );
        assert!(
            room.link_report("cas", true, 0.01, Some(50)).is_empty(),
            "no change, no message"
        );
        // The worse of the two connections decides: a lossy downlink makes it poor.
        let effects = room.link_report("cas", false, 0.2, Some(120));
        assert_eq!(
            told(&effects, "ivy"),
            [("cas".into(), ConnectionQuality::Poor, 20)]
        );
        // Both clean again; the uplink's last report (1%) is now the worse.
        let effects = room.link_report("cas", false, 0.0, Some(120));
        assert_eq!(
            told(&effects, "ivy"),
            [("cas".into(), ConnectionQuality::Good, 1)]
        );
        assert_eq!(
            ConnectionQuality::rate(0.01, Some(450)),
            ConnectionQuality::Fair,
            "slow round trips alone make it fair"
        );

        let effects = room
            .join(
                member("obi", InterviewRole::Interviewer),
                PROTOCOL_VERSION,
                "tok".into(),
            )
            .expect("joins");
        let Some(ServerMessage::Joined { participants, .. }) =
            sent_to(&effects, "obi").first().copied()
        else {
            panic!("no snapshot");
        };
        let cas = participants
            .iter()
            .find(|p| p.identity == "cas")
            .expect("cas");
        assert_eq!(cas.connection, Some(ConnectionQuality::Good));
        assert!(room.link_report("nobody", true, 0.5, None).is_empty());
    }

    fn subscriptions(effects: &[Effect]) -> Vec<(String, String)> {
        effects
            .iter()
            .filter_map(|e| match e {
                Effect::Subscribe { subscriber, track } => {
                    Some((subscriber.clone(), track.clone()))
                }
                _ => None,
            })
            .collect()
    }

    fn publish(room: &mut Room, who: &str, track: &str, source: TrackSource) -> Vec<Effect> {
        room.declare_tracks(
            who,
            &[DeclaredTrack {
                mid: format!("m-{track}"),
                source,
            }],
        )
        .expect("declared");
        room.track_published(who, track.to_owned(), &format!("m-{track}"))
            .expect("published")
    }

    #[test]
    fn joining_returns_a_snapshot_and_tells_the_others() {
        let mut room = room_with(&[("ivy", InterviewRole::Interviewer)]);
        let effects = room
            .join(member("cas", InterviewRole::Candidate), 1, "tok".into())
            .expect("joins");
        let Some(ServerMessage::Joined {
            you,
            participants,
            resume_token,
            ..
        }) = sent_to(&effects, "cas").first().copied()
        else {
            panic!("no snapshot: {effects:?}");
        };
        assert_eq!(you.identity, "cas");
        assert_eq!(participants.len(), 1);
        assert_eq!(resume_token, "tok");
        assert!(matches!(
            sent_to(&effects, "ivy")[..],
            [ServerMessage::ParticipantJoined { .. }]
        ));
        assert_eq!(
            room.join(member("x", InterviewRole::Candidate), 2, "t".into()),
            Err(RoomError::UnsupportedVersion(2))
        );
    }

    #[test]
    fn arrivals_and_departures_are_reported_once_for_visible_participants() {
        let presence = |effects: &[Effect]| -> Vec<PresenceChange> {
            effects
                .iter()
                .filter_map(|e| match e {
                    Effect::Presence(change) => Some(change.clone()),
                    _ => None,
                })
                .collect()
        };
        let mut room = Room::new(RoomId("r1".into()));
        let first = room
            .join(member("ivy", InterviewRole::Interviewer), 1, "a".into())
            .expect("joins");
        assert!(
            matches!(&presence(&first)[..], [PresenceChange::Joined(p)] if p.identity == "ivy"),
            "{first:?}"
        );
        // A second tab taking over, and a dropped connection resumed, are no arrivals.
        let again = room
            .join(member("ivy", InterviewRole::Interviewer), 1, "b".into())
            .expect("joins");
        assert!(presence(&again).is_empty(), "{again:?}");
        let now = Instant::now();
        assert!(presence(&room.disconnected("ivy", now)).is_empty());
        let resumed = room.resume("ivy", "b", "c".into(), now).expect("resumes");
        assert!(presence(&resumed).is_empty(), "{resumed:?}");
        // Hidden agents and reviewers are never reported.
        let hidden = room
            .join(member("rev", InterviewRole::Reviewer), 1, "d".into())
            .expect("joins");
        assert!(presence(&hidden).is_empty());
        assert!(presence(&room.leave("rev", LeaveReason::Left)).is_empty());
        assert_eq!(
            presence(&room.leave("ivy", LeaveReason::TimedOut)),
            vec![PresenceChange::Left {
                participant: "ivy".into(),
                reason: LeaveReason::TimedOut
            }]
        );
        assert!(
            presence(&room.leave("ivy", LeaveReason::Left)).is_empty(),
            "once"
        );
    }

    #[test]
    fn an_overview_lists_the_visible_and_closing_removes_every_person_but_no_agent() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
            ("rev", InterviewRole::Reviewer),
        ]);
        let agent = Member {
            identity: "recorder-1".into(),
            name: "Recorder".into(),
            role: InterviewRole::Reviewer,
            grants: Grants::agent(),
            phone_of: None,
        };
        room.join(agent, 1, "a".into()).expect("the agent joins");
        let overview = room.overview();
        let mut visible: Vec<&str> = overview
            .participants
            .iter()
            .map(|p| p.identity.as_str())
            .collect();
        visible.sort_unstable();
        assert_eq!(visible, ["cas", "ivy"]);
        assert_eq!(overview.hidden, 2, "the reviewer and the agent");
        let effects = room.close();
        for person in ["ivy", "cas", "rev"] {
            assert!(
                sent_to(&effects, person).contains(&&ServerMessage::Removed {
                    reason: LeaveReason::RoomClosed
                }),
                "{person} told"
            );
        }
        assert!(
            sent_to(&effects, "recorder-1")
                .iter()
                .all(|m| !matches!(m, ServerMessage::Removed { .. }))
        );
        let after = room.overview();
        assert!(after.participants.is_empty());
        assert_eq!(
            after.hidden, 1,
            "the agent stays until it sees the room empty"
        );
        assert!(!room.barred().contains("cas"), "nobody is barred");
    }

    #[test]
    fn hidden_reviewers_see_everyone_and_nobody_sees_them() {
        let mut room = room_with(&[("ivy", InterviewRole::Interviewer)]);
        let effects = room
            .join(member("rev", InterviewRole::Reviewer), 1, "t".into())
            .expect("joins");
        assert!(sent_to(&effects, "ivy").is_empty(), "no announcement");
        let late = room
            .join(member("cas", InterviewRole::Candidate), 1, "t".into())
            .expect("joins");
        let Some(ServerMessage::Joined { participants, .. }) =
            sent_to(&late, "cas").first().copied()
        else {
            panic!("no snapshot");
        };
        assert!(participants.iter().all(|p| p.identity != "rev"));
        assert!(matches!(
            room.chat("rev", "hello", 0),
            Err(RoomError::NotAllowed(_))
        ));
    }

    #[test]
    fn published_tracks_reach_every_subscriber_but_the_publisher() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
            ("rev", InterviewRole::Reviewer),
        ]);
        let effects = publish(&mut room, "cas", "t1", TrackSource::Camera);
        let mut subs = subscriptions(&effects);
        subs.sort();
        assert_eq!(
            subs,
            vec![("ivy".into(), "t1".into()), ("rev".into(), "t1".into())]
        );
        // A late joiner is subscribed to what exists.
        let late = room
            .join(member("obi", InterviewRole::Observer), 1, "t".into())
            .expect("joins");
        assert_eq!(subscriptions(&late), vec![("obi".into(), "t1".into())]);
    }

    #[test]
    fn sources_need_grants_and_declarations() {
        let mut room = room_with(&[
            ("cas", InterviewRole::Candidate),
            ("rev", InterviewRole::Reviewer),
        ]);
        let phone = [DeclaredTrack {
            mid: "0".into(),
            source: TrackSource::SecondaryCamera,
        }];
        assert!(matches!(
            room.declare_tracks("cas", &phone),
            Err(RoomError::NotAllowed(_))
        ));
        let camera = [DeclaredTrack {
            mid: "0".into(),
            source: TrackSource::Camera,
        }];
        assert!(matches!(
            room.declare_tracks("rev", &camera),
            Err(RoomError::NotAllowed(_))
        ));
        let twice = [camera[0].clone(), camera[0].clone()];
        assert_eq!(
            room.declare_tracks("cas", &twice),
            Err(RoomError::BadDeclaration)
        );
        assert_eq!(
            room.track_published("cas", "t9".into(), "7"),
            Err(RoomError::Undeclared("7".into()))
        );
    }

    #[test]
    fn only_owners_mute_and_only_moderators_mute_others() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Microphone);
        publish(&mut room, "ivy", "t2", TrackSource::Camera);
        assert_eq!(room.mute("ivy", "t1", true), Err(RoomError::UnknownTrack));
        assert!(matches!(
            room.moderate_mute("cas", "t2"),
            Err(RoomError::NotAllowed(_))
        ));
        let effects = room.moderate_mute("ivy", "t1").expect("moderator mutes");
        assert!(sent_to(&effects, "cas").iter().any(|m| matches!(
            m,
            ServerMessage::TrackMuted { muted: true, by: Some(by), .. } if by == "ivy"
        )));
        let hold = |held| Effect::Hold {
            track: "t1".into(),
            held,
        };
        assert!(effects.contains(&hold(true)), "the media plane holds it");
        let effects = room.mute("cas", "t1", true).expect("owner mutes too");
        assert!(!effects.contains(&hold(false)), "still held");
        let effects = room.mute("cas", "t1", false).expect("owner unmutes");
        assert!(effects.contains(&hold(false)), "and releases the hold");
    }

    #[test]
    fn a_phone_publishes_its_camera_only_and_is_seen_as_the_candidates() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        let phone = Member {
            identity: "phone-cas".into(),
            name: "CAS".into(),
            role: InterviewRole::Candidate,
            grants: Grants::phone_camera(),
            phone_of: Some("cas".into()),
        };
        let effects = room
            .join(phone, PROTOCOL_VERSION, "r".into())
            .expect("the phone joins");
        assert!(sent_to(&effects, "ivy").iter().any(|m| matches!(
            m,
            ServerMessage::ParticipantJoined { participant }
                if participant.phone_of.as_deref() == Some("cas")
        )));
        assert!(
            !effects.iter().any(
                |e| matches!(e, Effect::Subscribe { subscriber, .. } if subscriber == "phone-cas")
            ),
            "a phone subscribes to nothing"
        );
        let declare = |source| {
            [DeclaredTrack {
                mid: "0".into(),
                source,
            }]
        };
        for source in [
            TrackSource::Camera,
            TrackSource::Microphone,
            TrackSource::ScreenShare,
        ] {
            assert!(matches!(
                room.declare_tracks("phone-cas", &declare(source)),
                Err(RoomError::NotAllowed(_))
            ));
        }
        let second = [
            DeclaredTrack {
                mid: "0".into(),
                source: TrackSource::SecondaryCamera,
            },
            DeclaredTrack {
                mid: "1".into(),
                source: TrackSource::SecondaryCamera,
            },
        ];
        assert_eq!(
            room.declare_tracks("phone-cas", &second),
            Err(RoomError::BadDeclaration),
            "one video, not two"
        );
        room.declare_tracks("phone-cas", &declare(TrackSource::SecondaryCamera))
            .expect("its camera");
        room.track_published("phone-cas", "t7".into(), "0")
            .expect("published");
        room.declare_tracks(
            "phone-cas",
            &[DeclaredTrack {
                mid: "1".into(),
                source: TrackSource::SecondaryCamera,
            }],
        )
        .expect("a re-offer may move it");
        assert_eq!(
            room.track_published("phone-cas", "t8".into(), "1"),
            Err(RoomError::BadDeclaration),
            "but a second live video is refused"
        );
        assert!(matches!(
            room.chat("phone-cas", "hi", 0),
            Err(RoomError::NotAllowed(_))
        ));
        assert!(matches!(
            room.set_quality("phone-cas", "t1", RequestedQuality::High),
            Err(RoomError::NotAllowed(_))
        ));
        let effects = room.remove("phone-cas", LeaveReason::Replaced);
        assert!(matches!(
            sent_to(&effects, "phone-cas")[..],
            [ServerMessage::Removed {
                reason: LeaveReason::Replaced
            }]
        ));
        assert!(effects.contains(&Effect::Disconnect {
            participant: "phone-cas".into()
        }));
        assert!(room.remove("phone-cas", LeaveReason::Removed).is_empty());
    }

    #[test]
    fn the_recording_status_reaches_everyone_and_every_joiner() {
        let mut room = room_with(&[("ivy", InterviewRole::Interviewer)]);
        let notice = RecordingNotice {
            state: crate::protocol::RecordingState::WaitingForConsent,
            needs_consent: vec!["ivy".into()],
            retention_days: 30,
        };
        let effects = room.set_recording(notice.clone());
        assert!(
            sent_to(&effects, "ivy").iter().any(
                |m| matches!(m, ServerMessage::Recording { recording } if *recording == notice)
            )
        );
        assert!(room.set_recording(notice.clone()).is_empty(), "no repeat");
        let effects = room
            .join(
                member("cas", InterviewRole::Candidate),
                PROTOCOL_VERSION,
                "r".into(),
            )
            .expect("joins");
        assert!(
            sent_to(&effects, "cas").iter().any(
                |m| matches!(m, ServerMessage::Joined { recording, .. } if *recording == notice)
            )
        );
    }

    #[test]
    fn proctoring_events_reach_interviewers_and_reviewers_only() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
            ("obi", InterviewRole::Observer),
            ("rev", InterviewRole::Reviewer),
        ]);
        let mut phone = member("phone-cas", InterviewRole::Candidate);
        phone.phone_of = Some("cas".into());
        room.join(phone, PROTOCOL_VERSION, "p".into())
            .expect("joins");
        let mut agent = member("proctor", InterviewRole::Reviewer);
        agent.grants = Grants::agent();
        room.join(agent, PROTOCOL_VERSION, "a".into())
            .expect("joins");
        let event = ProctoringEvent {
            id: "e1".into(),
            kind: "face_absent".into(),
            severity: "review".into(),
            participant: "cas".into(),
            track: "t1".into(),
            started_at_ms: 1,
            ended_at_ms: None,
            snapshot: true,
        };
        let effects = room.proctoring_event(event);
        let mut told: Vec<&str> = effects
            .iter()
            .filter_map(|e| match e {
                Effect::Send { to, .. } => Some(to.as_str()),
                _ => None,
            })
            .collect();
        told.sort_unstable();
        assert_eq!(told, vec!["ivy", "rev"]);
        // Everyone (the candidate first of all) is told that the room is proctored.
        let notice = ProctoringNotice {
            on: true,
            needs_consent: vec!["cas".into()],
            retention_days: 30,
        };
        let effects = room.set_proctoring(notice.clone());
        assert!(sent_to(&effects, "cas").iter().any(
            |m| matches!(m, ServerMessage::Proctoring { proctoring } if *proctoring == notice)
        ));
        assert!(room.set_proctoring(notice).is_empty(), "no repeat");
    }

    #[test]
    fn stalls_are_announced_once_per_change() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Camera);
        let effects = room.track_stalled("t1", true);
        assert!(
            sent_to(&effects, "ivy")
                .iter()
                .any(|m| matches!(m, ServerMessage::TrackStalled { stalled: true, .. }))
        );
        assert!(room.track_stalled("t1", true).is_empty(), "no repeat");
        assert!(!room.track_stalled("t1", false).is_empty());
        assert!(room.track_stalled("t9", true).is_empty(), "unknown track");
    }

    #[test]
    fn a_media_reset_renews_subscriptions_and_tells_a_connected_client() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Camera);
        let effects = room.media_reset("ivy");
        assert!(matches!(
            sent_to(&effects, "ivy")[..],
            [ServerMessage::MediaReset { .. }]
        ));
        assert!(effects.contains(&Effect::Subscribe {
            subscriber: "ivy".into(),
            track: "t1".into()
        }));
        room.disconnected("ivy", Instant::now());
        let effects = room.media_reset("ivy");
        assert!(
            sent_to(&effects, "ivy").is_empty(),
            "told on resume instead"
        );
        assert_eq!(effects.len(), 1, "subscriptions still renewed");
    }

    #[test]
    fn a_removed_participant_stays_out_until_readmitted() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        room.moderate_remove("ivy", "cas").expect("removed");
        assert_eq!(
            room.join(member("cas", InterviewRole::Candidate), 1, "t2".into()),
            Err(RoomError::Barred)
        );
        assert_eq!(RoomError::Barred.code(), "removed");
        // The bar outlives the room's task: a room opened again with the same bar refuses too.
        let mut reopened = Room::with_barred(room.id().clone(), room.barred().clone());
        assert_eq!(
            reopened.join(member("cas", InterviewRole::Candidate), 1, "t3".into()),
            Err(RoomError::Barred)
        );
        assert!(matches!(
            room.readmit("cas", "cas"),
            Err(RoomError::NotInRoom)
        ));
        room.readmit("ivy", "cas").expect("readmitted");
        assert!(
            room.join(member("cas", InterviewRole::Candidate), 1, "t4".into())
                .is_ok()
        );
        assert_eq!(
            room.readmit("ivy", "cas"),
            Err(RoomError::UnknownParticipant)
        );
    }

    #[test]
    fn chat_is_limited_in_characters_as_the_browser_counts_them() {
        let mut room = room_with(&[("cas", InterviewRole::Candidate)]);
        // 2,049 Cyrillic letters are 4,098 bytes but 2,049 characters: accepted.
        assert!(room.chat("cas", &"ж".repeat(2049), 0).is_ok());
        assert!(room.chat("cas", &"ж".repeat(MAX_CHAT_CHARS), 0).is_ok());
        assert_eq!(
            room.chat("cas", &"ж".repeat(MAX_CHAT_CHARS + 1), 0),
            Err(RoomError::BadChat)
        );
        // An emoji is two UTF-16 units, as an input's maxLength counts it.
        assert_eq!(
            room.chat("cas", &"🙂".repeat(MAX_CHAT_CHARS / 2 + 1), 0),
            Err(RoomError::BadChat)
        );
    }

    #[test]
    fn moderators_remove_participants_and_their_tracks() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Camera);
        assert!(matches!(
            room.moderate_remove("cas", "ivy"),
            Err(RoomError::NotAllowed(_))
        ));
        let effects = room.moderate_remove("ivy", "cas").expect("removed");
        assert!(matches!(
            sent_to(&effects, "cas")[..],
            [ServerMessage::Removed {
                reason: LeaveReason::Removed
            }]
        ));
        assert!(effects.contains(&Effect::Disconnect {
            participant: "cas".into()
        }));
        let ivy = sent_to(&effects, "ivy");
        assert!(
            ivy.iter()
                .any(|m| matches!(m, ServerMessage::TrackUnpublished { track } if track == "t1"))
        );
        assert!(ivy.iter().any(|m| matches!(
            m,
            ServerMessage::ParticipantLeft {
                reason: LeaveReason::Removed,
                ..
            }
        )));
        assert_eq!(room.identities().collect::<Vec<_>>(), vec!["ivy"]);
    }

    #[test]
    fn chat_is_bounded_and_broadcast() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        assert_eq!(room.chat("cas", "   ", 0), Err(RoomError::BadChat));
        assert_eq!(
            room.chat("cas", &"x".repeat(MAX_CHAT_CHARS + 1), 0),
            Err(RoomError::BadChat)
        );
        let effects = room.chat("cas", "hello", 42).expect("sent");
        assert_eq!(sent_to(&effects, "ivy").len(), 1);
        assert_eq!(
            sent_to(&effects, "cas").len(),
            1,
            "the sender sees its own message"
        );
        assert_eq!(room.chat("nobody", "hi", 0), Err(RoomError::NotInRoom));
    }

    #[test]
    fn dropped_connections_resume_within_the_window_or_leave() {
        let start = Instant::now();
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Camera);
        let effects = room.disconnected("cas", start);
        assert!(matches!(
            sent_to(&effects, "ivy")[..],
            [ServerMessage::ParticipantReconnecting { .. }]
        ));
        assert_eq!(room.chat("cas", "hi", 0), Err(RoomError::NotInRoom));
        assert_eq!(
            room.resume("cas", "wrong", "new".into(), start + Duration::from_secs(5)),
            Err(RoomError::ResumeRefused)
        );
        let resumed = room
            .resume(
                "cas",
                "resume-cas",
                "new".into(),
                start + Duration::from_secs(5),
            )
            .expect("resumed");
        assert!(matches!(
            sent_to(&resumed, "cas")[..],
            [ServerMessage::Joined { .. }]
        ));
        assert!(
            room.tick(start + Duration::from_secs(60)).is_empty(),
            "connected again"
        );

        room.disconnected("cas", start + Duration::from_secs(61));
        assert!(
            room.tick(start + Duration::from_secs(80)).is_empty(),
            "still in the window"
        );
        let gone = room.tick(start + Duration::from_secs(92));
        assert!(sent_to(&gone, "ivy").iter().any(|m| matches!(
            m,
            ServerMessage::ParticipantLeft {
                reason: LeaveReason::TimedOut,
                ..
            }
        )));
        assert!(
            sent_to(&gone, "ivy")
                .iter()
                .any(|m| matches!(m, ServerMessage::TrackUnpublished { .. }))
        );
        assert_eq!(
            room.resume(
                "cas",
                "new",
                "newer".into(),
                start + Duration::from_secs(93)
            ),
            Err(RoomError::ResumeRefused)
        );
    }

    #[test]
    fn speakers_are_announced_on_change_only() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "a1", TrackSource::Microphone);
        let started = room.speaking("a1", true);
        assert!(sent_to(&started, "ivy").iter().any(|m| matches!(
            m,
            ServerMessage::ActiveSpeakers { participants } if participants == &vec!["cas".to_owned()]
        )));
        assert!(room.speaking("a1", true).is_empty(), "no news, no message");
        let stopped = room.speaking("a1", false);
        assert!(sent_to(&stopped, "cas").iter().any(|m| matches!(
            m,
            ServerMessage::ActiveSpeakers { participants } if participants.is_empty()
        )));
        assert!(room.speaking("unknown", true).is_empty());
    }

    #[test]
    fn quality_requests_are_for_remote_tracks_and_ignored_for_gone_ones() {
        let mut room = room_with(&[
            ("ivy", InterviewRole::Interviewer),
            ("cas", InterviewRole::Candidate),
        ]);
        publish(&mut room, "cas", "t1", TrackSource::Camera);
        assert_eq!(
            room.set_quality("cas", "t1", RequestedQuality::Low),
            Err(RoomError::UnknownTrack)
        );
        assert_eq!(
            room.set_quality("ivy", "gone", RequestedQuality::Low),
            Ok(Vec::new()),
            "a track that went meanwhile: nothing to do, no error"
        );
        assert_eq!(
            room.set_quality("ivy", "t1", RequestedQuality::Off),
            Ok(vec![Effect::SetQuality {
                subscriber: "ivy".into(),
                track: "t1".into(),
                quality: RequestedQuality::Off
            }])
        );
    }
}
