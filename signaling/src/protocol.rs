//! The signaling protocol: typed, versioned JSON messages over a WebSocket.
//!
//! Every message is an object with a `type`. Unknown types and unknown fields are refused, as are
//! messages over [`MAX_MESSAGE_BYTES`]; a refused message gets an `error` reply and changes nothing.

use serde::{Deserialize, Serialize};

use crate::grants::{InterviewRole, TrackSource};

/// The protocol version this server speaks; a `join` with another version is refused.
pub const PROTOCOL_VERSION: u32 = 1;
/// Largest accepted message (SDP offers with simulcast are a few KiB).
pub const MAX_MESSAGE_BYTES: usize = 64 * 1024;
/// Longest chat message, in UTF-16 code units: the unit a browser's `maxLength` and
/// `String.length` count, so the chat box and the server agree on every text. The client learns
/// it from [`Limits`] in `joined` rather than keeping its own copy.
pub const MAX_CHAT_CHARS: usize = 4000;
/// Most tracks one publish offer may declare.
pub const MAX_TRACKS_PER_OFFER: usize = 8;
/// Longest trickled ICE candidate line (real ones are about 100 bytes).
pub const MAX_CANDIDATE_BYTES: usize = 512;

/// Which of a participant's two peer connections a message is about.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Connection {
    /// The connection carrying the client's own tracks (the client offers).
    Publisher,
    /// The connection carrying everyone else's tracks (the server offers).
    Subscriber,
}

/// Video quality a subscriber asks for, from the size and visibility of its tile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RequestedQuality {
    /// Hidden tile: no video.
    Off,
    /// Thumbnail.
    Low,
    /// Medium tile.
    Medium,
    /// Large tile.
    High,
}

/// A track the client is about to publish: which m-line carries which source.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeclaredTrack {
    /// The m-line's mid in the client's offer.
    pub mid: String,
    /// What it carries.
    pub source: TrackSource,
}

/// Messages from a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ClientMessage {
    /// First message on a connection: the join token from the API.
    Join {
        /// Must be [`PROTOCOL_VERSION`].
        version: u32,
        /// The room join token.
        token: String,
        /// Present when reconnecting within the resume window.
        #[serde(default)]
        resume_token: Option<String>,
    },
    /// The client's offer for its publisher connection.
    PublishOffer {
        /// SDP.
        sdp: String,
        /// What each m-line carries.
        tracks: Vec<DeclaredTrack>,
    },
    /// The client's answer to a subscriber offer.
    SubscriberAnswer {
        /// SDP.
        sdp: String,
    },
    /// A local ICE candidate the client found after sending its description (trickle ICE).
    IceCandidate {
        /// Which connection it belongs to.
        connection: Connection,
        /// The candidate line (`candidate:...`), at most [`MAX_CANDIDATE_BYTES`].
        candidate: String,
    },
    /// The client's network path changed (it resumed after a drop, or ICE failed): the server
    /// restarts ICE on the subscriber connection with a new offer. The publisher connection
    /// restarts through the client's own re-offer.
    RestartIce {},
    /// The client muted or unmuted one of its tracks.
    Mute {
        /// Track id.
        track: String,
        /// Muted or not.
        muted: bool,
    },
    /// The quality the client wants of a remote track.
    SetQuality {
        /// Track id.
        track: String,
        /// Wanted quality.
        quality: RequestedQuality,
    },
    /// A chat message to the room.
    Chat {
        /// Text, at most [`MAX_CHAT_CHARS`] UTF-16 code units.
        text: String,
    },
    /// Mute someone else's track (needs moderation rights).
    ModerateMute {
        /// Track id.
        track: String,
    },
    /// Remove a participant (needs moderation rights). They cannot join again until a
    /// moderator readmits them.
    ModerateRemove {
        /// Participant identity.
        participant: String,
    },
    /// Let a removed participant join again (needs moderation rights).
    Readmit {
        /// Participant identity.
        participant: String,
    },
    /// The client is leaving. (A struct variant, so unknown fields are refused like elsewhere.)
    Leave {},
    /// Keep-alive.
    Ping {
        /// Echoed back.
        #[serde(default)]
        nonce: u64,
    },
}

/// A TURN server and the credentials to use it, as the browser's `RTCIceServer` takes them.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IceServer {
    /// `turn:` or `turns:` URLs.
    pub urls: Vec<String>,
    /// `<expiry unix seconds>:<participant id>`.
    pub username: String,
    /// Base64 HMAC-SHA1 of the username under the secret shared with the TURN server.
    pub credential: String,
}

impl ServerMessage {
    /// The message's TURN servers, for the messages that carry them (`joined`, `media_reset`,
    /// `ice_servers`).
    pub fn ice_servers_mut(&mut self) -> Option<&mut Vec<IceServer>> {
        match self {
            ServerMessage::Joined { ice_servers, .. }
            | ServerMessage::MediaReset { ice_servers }
            | ServerMessage::IceServers { ice_servers } => Some(ice_servers),
            _ => None,
        }
    }
}

/// The protocol's limits, stated once here and sent to every client in `joined`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Largest client message, in bytes of its JSON text.
    pub max_message_bytes: usize,
    /// Longest chat text, in UTF-16 code units.
    pub max_chat_chars: usize,
}

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            max_message_bytes: MAX_MESSAGE_BYTES,
            max_chat_chars: MAX_CHAT_CHARS,
        }
    }
}

/// A chat text's length as the browser counts it (UTF-16 code units).
pub fn chat_length(text: &str) -> usize {
    text.encode_utf16().count()
}

/// A participant as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantInfo {
    /// Identity (participant id).
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Role in the interview.
    pub role: InterviewRole,
    /// Whether their connection dropped and they may come back.
    pub reconnecting: bool,
    /// Set for a candidate's phone paired as a second camera: the candidate's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_of: Option<String>,
    /// How good their connection is, as the server sees it; absent until reports came.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub connection: Option<ConnectionQuality>,
}

/// How good a participant's connection to the server is, from the RTCP reports of both its
/// peer connections (the loss on its way up and down, the round trip), with the thresholds
/// calls feel: a few percent loss or a few hundred milliseconds is noticeable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnectionQuality {
    /// Under 2% loss and 300 ms round trips.
    Good,
    /// Under 8% loss and 600 ms round trips.
    Fair,
    /// More.
    Poor,
}

impl ConnectionQuality {
    /// The rating of a link losing `loss` (0.0–1.0) of its packets with `rtt_ms` round trips.
    pub fn rate(loss: f32, rtt_ms: Option<u32>) -> ConnectionQuality {
        let rtt = rtt_ms.unwrap_or(0);
        if loss < 0.02 && rtt < 300 {
            ConnectionQuality::Good
        } else if loss < 0.08 && rtt < 600 {
            ConnectionQuality::Fair
        } else {
            ConnectionQuality::Poor
        }
    }
}

/// A published track as others see it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackInfo {
    /// Track id.
    pub id: String,
    /// Publisher identity.
    pub participant: String,
    /// What it carries.
    pub source: TrackSource,
    /// Whether the publisher muted it.
    pub muted: bool,
    /// Whether its media stopped arriving at the server (a frozen or lost sender).
    #[serde(default)]
    pub stalled: bool,
}

/// Whether the room is being recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingState {
    /// Not recorded.
    #[default]
    Off,
    /// An interviewer started recording; it begins once everyone present has consented.
    WaitingForConsent,
    /// Being recorded (participants who have not consented are left out).
    On,
}

/// The room's recording status as every participant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct RecordingNotice {
    /// Off, waiting or on.
    pub state: RecordingState,
    /// Identities of the present participants who have not consented yet.
    pub needs_consent: Vec<String>,
    /// Days a recording is kept before it is deleted (0: until an admin deletes it), for the
    /// consent screen.
    pub retention_days: u32,
}

/// Whether the room is proctored, as every participant sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ProctoringNotice {
    /// The server checks the candidate's camera and phone (once they agreed).
    pub on: bool,
    /// Identities of the present candidates who have not agreed yet.
    pub needs_consent: Vec<String>,
    /// Days proctoring events and their snapshots are kept (0: until an admin deletes them),
    /// for the consent screen.
    pub retention_days: u32,
}

/// One proctoring event as the room's interviewers and reviewers see it live: a moment for a
/// person to look at, never a verdict.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProctoringEvent {
    /// Event id (for its snapshot and review).
    pub id: String,
    /// What was seen: `face_absent`, `multiple_faces`, `camera_dark`, `camera_frozen`,
    /// `feed_lost`, `side_view_changed`, `side_view_person`, `checks_unavailable`.
    pub kind: String,
    /// `info`, `notice` or `review`.
    pub severity: String,
    /// Whose stream.
    pub participant: String,
    /// Which track.
    pub track: String,
    /// Unix milliseconds it began.
    pub started_at_ms: i64,
    /// Unix milliseconds it ended; `None` while it lasts.
    pub ended_at_ms: Option<i64>,
    /// Whether it has a snapshot.
    pub snapshot: bool,
}

impl Eq for ProctoringEvent {}

/// A gentle prompt to a candidate about their own setup, when a check sees a problem the
/// candidate can fix (at most once a minute; never an accusation).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProctoringHint {
    /// The camera does not show a face: light, angle, position.
    FaceNotVisible,
    /// The camera picture is dark: covered lens, lights.
    CameraDark,
    /// The camera picture does not change.
    CameraFrozen,
    /// No video arrives from the camera.
    VideoStopped,
    /// The phone's view changed from what it showed at the start.
    PhoneMoved,
}

/// Why a participant left.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LeaveReason {
    /// They left.
    Left,
    /// Their connection dropped and they did not come back in time.
    TimedOut,
    /// A moderator removed them.
    Removed,
    /// They joined again from another connection.
    Replaced,
    /// Their session ended on the server (their invite link was reissued to someone else).
    SessionEnded,
    /// An administrator closed the room (everyone left it at once).
    RoomClosed,
}

/// Messages to a client.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMessage {
    /// The join succeeded.
    Joined {
        /// The protocol version.
        version: u32,
        /// The client itself.
        you: ParticipantInfo,
        /// Everyone else visible.
        participants: Vec<ParticipantInfo>,
        /// Tracks published so far.
        tracks: Vec<TrackInfo>,
        /// Present this to resume after a dropped connection.
        resume_token: String,
        /// Whether the room is being recorded.
        recording: RecordingNotice,
        /// Whether the room is proctored.
        #[serde(default)]
        proctoring: ProctoringNotice,
        /// The limits the server enforces, so the client's own checks match them.
        limits: Limits,
        /// TURN servers to use, with credentials issued for this connection (none without
        /// TURN). Filled in at the edge, where the secret is; the room leaves it empty.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// The client's subscriber connection cannot receive this track: its answer accepted none
    /// of the codecs the track is sent in. Nothing of it will arrive; show that instead.
    TrackUnplayable {
        /// Track id.
        track: String,
        /// The track's codec (`VP8`, `H264`, ...), when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        codec: Option<String>,
    },
    /// Answer to the client's publish offer.
    PublishAnswer {
        /// SDP.
        sdp: String,
    },
    /// An offer for the client's subscriber connection.
    SubscriberOffer {
        /// SDP.
        sdp: String,
    },
    /// Someone joined.
    ParticipantJoined {
        /// Who.
        participant: ParticipantInfo,
    },
    /// Someone's connection dropped; they may come back.
    ParticipantReconnecting {
        /// Identity.
        participant: String,
    },
    /// Someone came back.
    ParticipantResumed {
        /// Identity.
        participant: String,
    },
    /// Someone left.
    ParticipantLeft {
        /// Identity.
        participant: String,
        /// Why.
        reason: LeaveReason,
    },
    /// A track appeared.
    TrackPublished {
        /// The track.
        track: TrackInfo,
    },
    /// A track went away.
    TrackUnpublished {
        /// Track id.
        track: String,
    },
    /// A track was muted or unmuted.
    TrackMuted {
        /// Track id.
        track: String,
        /// Muted or not.
        muted: bool,
        /// Set when a moderator did it.
        by: Option<String>,
    },
    /// The room's recording status changed.
    Recording {
        /// The new status.
        recording: RecordingNotice,
    },
    /// Whether the room is proctored changed, or who still has to agree.
    Proctoring {
        /// The new status.
        proctoring: ProctoringNotice,
    },
    /// A proctoring event opened or changed (interviewers and reviewers only).
    ProctoringEvent {
        /// The event.
        event: ProctoringEvent,
    },
    /// A prompt about the candidate's own setup (the candidate only).
    ProctoringHint {
        /// What to check.
        hint: ProctoringHint,
    },
    /// A participant's connection got better or worse, as the server sees it.
    ConnectionQuality {
        /// Who.
        participant: String,
        /// How good it is now.
        quality: ConnectionQuality,
        /// The worst loss of its two connections, in percent.
        loss_percent: u8,
        /// The latest round trip, when known.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        rtt_ms: Option<u32>,
    },
    /// A track's media stopped arriving at the server, or started again.
    TrackStalled {
        /// Track id.
        track: String,
        /// Stopped (true) or flowing again.
        stalled: bool,
    },
    /// Who is speaking now (empty when nobody is).
    ActiveSpeakers {
        /// Identities, in no particular order.
        participants: Vec<String>,
    },
    /// A chat message.
    Chat {
        /// Sender identity.
        from: String,
        /// Sender name.
        name: String,
        /// Text.
        text: String,
        /// Unix milliseconds.
        at: i64,
    },
    /// The server lost this client's peer connections (its network was gone longer than ICE
    /// allows): close both, then publish again on a new publisher connection; a new subscriber
    /// connection is offered as before. Identity, room state and subscriptions are kept.
    MediaReset {
        /// Fresh TURN credentials for the new connections, as in `joined`.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ice_servers: Vec<IceServer>,
    },
    /// TURN credentials to replace those about to expire (sent at half their lifetime while TURN
    /// is configured): the next ICE restart and any new connection use them.
    IceServers {
        /// As in `joined`.
        ice_servers: Vec<IceServer>,
    },
    /// The server replaces this client's subscriber connection (it had kept too many m-lines of
    /// tracks that are gone): close it and open a new one; the next `subscriber_offer` is for the
    /// new one and carries every track again. The publisher connection is untouched.
    SubscriberReset {},
    /// This connection is being closed by the server.
    Removed {
        /// Why.
        reason: LeaveReason,
    },
    /// A request failed; nothing changed.
    Error {
        /// Stable code.
        code: String,
        /// Explanation.
        message: String,
        /// Set when this error refuses the client's publish offer: no `publish_answer` follows,
        /// and the client may make its next offer.
        #[serde(default, skip_serializing_if = "std::ops::Not::not")]
        offer_refused: bool,
    },
    /// Reply to ping.
    Pong {
        /// The ping's nonce.
        nonce: u64,
    },
}

/// A client message that cannot be accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ProtocolError {
    /// Over [`MAX_MESSAGE_BYTES`].
    #[error("message larger than {MAX_MESSAGE_BYTES} bytes")]
    TooLarge,
    /// Not JSON, unknown type or field, wrong shape.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A field over its own limit.
    #[error("{0} is too long")]
    FieldTooLong(&'static str),
}

impl ProtocolError {
    /// The stable code sent in an `error` message.
    pub fn code(&self) -> &'static str {
        match self {
            ProtocolError::TooLarge => "message_too_large",
            ProtocolError::Malformed(_) => "malformed_message",
            ProtocolError::FieldTooLong(_) => "field_too_long",
        }
    }
}

/// Parses one client message, checking its size first.
pub fn parse(text: &str) -> Result<ClientMessage, ProtocolError> {
    if text.len() > MAX_MESSAGE_BYTES {
        return Err(ProtocolError::TooLarge);
    }
    let message: ClientMessage =
        serde_json::from_str(text).map_err(|e| ProtocolError::Malformed(e.to_string()))?;
    check(&message)?;
    Ok(message)
}

/// The limits [`parse`] applies beyond the JSON shape, for a message that arrived already
/// parsed (relayed from another node, say).
pub fn check(message: &ClientMessage) -> Result<(), ProtocolError> {
    if let ClientMessage::IceCandidate { candidate, .. } = message
        && candidate.len() > MAX_CANDIDATE_BYTES
    {
        return Err(ProtocolError::FieldTooLong("candidate"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Every client message type, in the page's order. A new variant fails to compile in
    /// [`client_type`] until it is named there and here, and documented.
    const CLIENT_TYPES: [&str; 13] = [
        "join",
        "publish_offer",
        "subscriber_answer",
        "ice_candidate",
        "restart_ice",
        "mute",
        "set_quality",
        "chat",
        "moderate_mute",
        "moderate_remove",
        "readmit",
        "leave",
        "ping",
    ];

    fn client_type(message: &ClientMessage) -> &'static str {
        match message {
            ClientMessage::Join { .. } => "join",
            ClientMessage::PublishOffer { .. } => "publish_offer",
            ClientMessage::SubscriberAnswer { .. } => "subscriber_answer",
            ClientMessage::IceCandidate { .. } => "ice_candidate",
            ClientMessage::RestartIce {} => "restart_ice",
            ClientMessage::Mute { .. } => "mute",
            ClientMessage::SetQuality { .. } => "set_quality",
            ClientMessage::Chat { .. } => "chat",
            ClientMessage::ModerateMute { .. } => "moderate_mute",
            ClientMessage::ModerateRemove { .. } => "moderate_remove",
            ClientMessage::Readmit { .. } => "readmit",
            ClientMessage::Leave {} => "leave",
            ClientMessage::Ping { .. } => "ping",
        }
    }

    /// Every server message type; see [`CLIENT_TYPES`].
    const SERVER_TYPES: [&str; 25] = [
        "joined",
        "proctoring_hint",
        "proctoring",
        "proctoring_event",
        "publish_answer",
        "subscriber_offer",
        "participant_joined",
        "participant_reconnecting",
        "participant_resumed",
        "participant_left",
        "track_published",
        "track_unpublished",
        "track_muted",
        "track_stalled",
        "track_unplayable",
        "recording",
        "active_speakers",
        "connection_quality",
        "chat",
        "media_reset",
        "ice_servers",
        "subscriber_reset",
        "removed",
        "error",
        "pong",
    ];

    fn server_type(message: &ServerMessage) -> &'static str {
        match message {
            ServerMessage::Joined { .. } => "joined",
            ServerMessage::TrackUnplayable { .. } => "track_unplayable",
            ServerMessage::PublishAnswer { .. } => "publish_answer",
            ServerMessage::SubscriberOffer { .. } => "subscriber_offer",
            ServerMessage::ParticipantJoined { .. } => "participant_joined",
            ServerMessage::ParticipantReconnecting { .. } => "participant_reconnecting",
            ServerMessage::ParticipantResumed { .. } => "participant_resumed",
            ServerMessage::ParticipantLeft { .. } => "participant_left",
            ServerMessage::TrackPublished { .. } => "track_published",
            ServerMessage::TrackUnpublished { .. } => "track_unpublished",
            ServerMessage::TrackMuted { .. } => "track_muted",
            ServerMessage::Recording { .. } => "recording",
            ServerMessage::Proctoring { .. } => "proctoring",
            ServerMessage::ProctoringEvent { .. } => "proctoring_event",
            ServerMessage::ProctoringHint { .. } => "proctoring_hint",
            ServerMessage::TrackStalled { .. } => "track_stalled",
            ServerMessage::ConnectionQuality { .. } => "connection_quality",
            ServerMessage::ActiveSpeakers { .. } => "active_speakers",
            ServerMessage::Chat { .. } => "chat",
            ServerMessage::MediaReset { .. } => "media_reset",
            ServerMessage::IceServers { .. } => "ice_servers",
            ServerMessage::SubscriberReset {} => "subscriber_reset",
            ServerMessage::Removed { .. } => "removed",
            ServerMessage::Error { .. } => "error",
            ServerMessage::Pong { .. } => "pong",
        }
    }

    /// The JSON examples of a section of `docs/PROTOCOL.md`.
    fn examples<'a>(page: &'a str, from: &str, to: &str) -> Vec<&'a str> {
        let start = page.find(from).expect("the section exists");
        let end = page[start..].find(to).map_or(page.len(), |i| start + i);
        page[start..end]
            .split("```json")
            .skip(1)
            .filter_map(|block| block.split("```").next())
            .map(str::trim)
            .collect()
    }

    #[test]
    fn the_protocol_page_matches_the_types() {
        let page = include_str!("../../docs/PROTOCOL.md");
        let mut seen = std::collections::BTreeSet::new();
        for example in examples(page, "### Client to server", "### Server to client") {
            let message = parse(example)
                .unwrap_or_else(|err| panic!("documented client message {example}: {err}"));
            seen.insert(client_type(&message));
        }
        let missing: Vec<_> = CLIENT_TYPES.iter().filter(|t| !seen.contains(*t)).collect();
        assert!(
            missing.is_empty(),
            "client messages not documented: {missing:?}"
        );

        let mut seen = std::collections::BTreeSet::new();
        for example in examples(page, "### Server to client", "## Error codes") {
            let message: ServerMessage = serde_json::from_str(example)
                .unwrap_or_else(|err| panic!("documented server message {example}: {err}"));
            // What the server would send for it reads back the same.
            let again: ServerMessage =
                serde_json::from_str(&serde_json::to_string(&message).expect("serializes"))
                    .expect("round trip");
            assert_eq!(again, message);
            seen.insert(server_type(&message));
        }
        let missing: Vec<_> = SERVER_TYPES.iter().filter(|t| !seen.contains(*t)).collect();
        assert!(
            missing.is_empty(),
            "server messages not documented: {missing:?}"
        );
    }

    #[test]
    fn parses_the_client_messages() {
        assert_eq!(
            parse(r#"{"type":"join","version":1,"token":"abc"}"#),
            Ok(ClientMessage::Join {
                version: 1,
                token: "abc".into(),
                resume_token: None
            })
        );
        assert_eq!(
            parse(
                r#"{"type":"publish_offer","sdp":"v=0","tracks":[{"mid":"0","source":"camera"}]}"#
            ),
            Ok(ClientMessage::PublishOffer {
                sdp: "v=0".into(),
                tracks: vec![DeclaredTrack {
                    mid: "0".into(),
                    source: TrackSource::Camera
                }]
            })
        );
        assert_eq!(parse(r#"{"type":"leave"}"#), Ok(ClientMessage::Leave {}));
        assert_eq!(
            parse(
                r#"{"type":"ice_candidate","connection":"subscriber","candidate":"candidate:1 1 udp 1 10.0.0.1 5000 typ host"}"#
            ),
            Ok(ClientMessage::IceCandidate {
                connection: Connection::Subscriber,
                candidate: "candidate:1 1 udp 1 10.0.0.1 5000 typ host".into()
            })
        );
        assert_eq!(
            parse(r#"{"type":"ping"}"#),
            Ok(ClientMessage::Ping { nonce: 0 })
        );
    }

    #[test]
    fn refuses_bad_messages() {
        for bad in [
            "",
            "not json",
            "{}",
            r#"{"type":"hack"}"#,
            r#"{"type":"leave","extra":1}"#,
            r#"{"type":"chat"}"#,
            r#"{"type":"set_quality","track":"t1","quality":"ultra"}"#,
        ] {
            assert!(
                matches!(parse(bad), Err(ProtocolError::Malformed(_))),
                "{bad}"
            );
        }
        let huge = format!(
            r#"{{"type":"chat","text":"{}"}}"#,
            "x".repeat(MAX_MESSAGE_BYTES)
        );
        assert_eq!(parse(&huge), Err(ProtocolError::TooLarge));
        let long_candidate = format!(
            r#"{{"type":"ice_candidate","connection":"publisher","candidate":"{}"}}"#,
            "x".repeat(MAX_CANDIDATE_BYTES + 1)
        );
        assert_eq!(
            parse(&long_candidate),
            Err(ProtocolError::FieldTooLong("candidate"))
        );
    }

    #[test]
    fn server_messages_are_tagged() {
        let json = serde_json::to_value(ServerMessage::Pong { nonce: 7 }).expect("json");
        assert_eq!(json, serde_json::json!({ "type": "pong", "nonce": 7 }));
    }
}
