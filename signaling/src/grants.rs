//! What a participant may do in a room, modelled on LiveKit's video grants.
//!
//! Grants are decided once, when the API issues a join token, from the participant's role in the
//! interview; the room enforces them on every request. Keeping the role → grants table here, and
//! only here, means the token issuer and the enforcer cannot disagree.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

/// A room is the live side of one interview; its id is the interview's id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RoomId(pub String);

impl fmt::Display for RoomId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A kind of media a participant can publish.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrackSource {
    /// The participant's main camera.
    Camera,
    /// The participant's microphone.
    Microphone,
    /// A captured screen or window.
    ScreenShare,
    /// The candidate's phone, paired as a second camera.
    SecondaryCamera,
}

/// The part a person plays in one interview (not their platform-wide account role).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum InterviewRole {
    /// The person being interviewed.
    Candidate,
    /// Runs the interview: talks, watches, moderates.
    Interviewer,
    /// Watches and listens, visible to others, does not speak or show video.
    Observer,
    /// Assigned to assess the interview; watches hidden, live or later.
    Reviewer,
}

impl InterviewRole {
    /// Every role, in display order.
    pub const ALL: [InterviewRole; 4] = [
        InterviewRole::Candidate,
        InterviewRole::Interviewer,
        InterviewRole::Observer,
        InterviewRole::Reviewer,
    ];

    /// The stable lowercase name used in JSON and storage.
    pub fn as_str(self) -> &'static str {
        match self {
            InterviewRole::Candidate => "candidate",
            InterviewRole::Interviewer => "interviewer",
            InterviewRole::Observer => "observer",
            InterviewRole::Reviewer => "reviewer",
        }
    }
}

impl fmt::Display for InterviewRole {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role name that is not one of [`InterviewRole::ALL`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown interview role `{0}`")]
pub struct ParseRoleError(pub String);

impl FromStr for InterviewRole {
    type Err = ParseRoleError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        InterviewRole::ALL
            .into_iter()
            .find(|role| role.as_str() == s)
            .ok_or_else(|| ParseRoleError(s.to_owned()))
    }
}

/// What a participant may do in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Grants {
    /// May enter the room at all.
    pub room_join: bool,
    /// May publish media (restricted further by `can_publish_sources`).
    pub can_publish: bool,
    /// May receive other participants' media.
    pub can_subscribe: bool,
    /// The sources this participant may publish.
    pub can_publish_sources: Vec<TrackSource>,
    /// May send chat messages.
    pub can_chat: bool,
    /// May mute or remove other participants.
    pub can_moderate: bool,
    /// Not shown to other participants.
    pub hidden: bool,
    /// Is one of the server's own agents (the recorder, the proctor) rather than a person: it
    /// follows the room through its messages and takes media through taps, so it gets no
    /// peer connections.
    pub agent: bool,
    /// What this participant may do with the interview's shared code.
    #[serde(default)]
    pub code: CodeGrants,
}

/// What a participant may do with the interview's shared code document.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CodeGrants {
    /// May see the document and everyone's cursors.
    pub view: bool,
    /// May edit it and choose its language.
    pub edit: bool,
    /// May run it.
    pub run: bool,
}

impl CodeGrants {
    /// Sees, edits and runs.
    pub const WRITE: CodeGrants = CodeGrants {
        view: true,
        edit: true,
        run: true,
    };
    /// Sees only.
    pub const READ: CodeGrants = CodeGrants {
        view: true,
        edit: false,
        run: false,
    };
    /// Nothing at all.
    pub const NONE: CodeGrants = CodeGrants {
        view: false,
        edit: false,
        run: false,
    };
}

impl Grants {
    /// The grants that go with a role in an interview.
    pub fn for_role(role: InterviewRole) -> Grants {
        let person_sources = vec![
            TrackSource::Camera,
            TrackSource::Microphone,
            TrackSource::ScreenShare,
        ];
        match role {
            InterviewRole::Candidate => Grants {
                room_join: true,
                can_publish: true,
                can_subscribe: true,
                can_publish_sources: person_sources,
                can_chat: true,
                can_moderate: false,
                hidden: false,
                agent: false,
                code: CodeGrants::WRITE,
            },
            InterviewRole::Interviewer => Grants {
                room_join: true,
                can_publish: true,
                can_subscribe: true,
                can_publish_sources: person_sources,
                can_chat: true,
                can_moderate: true,
                hidden: false,
                agent: false,
                code: CodeGrants::WRITE,
            },
            InterviewRole::Observer => Grants {
                room_join: true,
                can_publish: false,
                can_subscribe: true,
                can_publish_sources: Vec::new(),
                can_chat: true,
                can_moderate: false,
                hidden: false,
                agent: false,
                code: CodeGrants::READ,
            },
            InterviewRole::Reviewer => Grants {
                room_join: true,
                can_publish: false,
                can_subscribe: true,
                can_publish_sources: Vec::new(),
                can_chat: false,
                can_moderate: false,
                hidden: true,
                agent: false,
                code: CodeGrants::READ,
            },
        }
    }

    /// The grants of a candidate's phone paired as a second camera: it publishes exactly one
    /// thing, a `secondary_camera` video, and receives, says and controls nothing.
    pub fn phone_camera() -> Grants {
        Grants {
            room_join: true,
            can_publish: true,
            can_subscribe: false,
            can_publish_sources: vec![TrackSource::SecondaryCamera],
            can_chat: false,
            can_moderate: false,
            hidden: false,
            agent: false,
            code: CodeGrants::NONE,
        }
    }

    /// The grants of the server's own agents in a room (recorder, proctor): present and hidden,
    /// to follow who joins and what is published; they take media through taps, not as
    /// subscribers.
    pub fn agent() -> Grants {
        Grants {
            room_join: true,
            can_publish: false,
            can_subscribe: false,
            can_publish_sources: Vec::new(),
            can_chat: false,
            can_moderate: false,
            hidden: true,
            agent: true,
            code: CodeGrants::NONE,
        }
    }

    /// Whether a track from `source` may be published under these grants.
    pub fn may_publish(&self, source: TrackSource) -> bool {
        self.room_join && self.can_publish && self.can_publish_sources.contains(&source)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn candidate_publishes_camera_mic_screen_and_subscribes() {
        let grants = Grants::for_role(InterviewRole::Candidate);
        assert!(grants.may_publish(TrackSource::Camera));
        assert!(grants.may_publish(TrackSource::Microphone));
        assert!(grants.may_publish(TrackSource::ScreenShare));
        assert!(!grants.may_publish(TrackSource::SecondaryCamera));
        assert!(grants.can_subscribe);
        assert!(!grants.can_moderate);
        assert!(!grants.hidden);
    }

    #[test]
    fn interviewer_also_moderates() {
        let grants = Grants::for_role(InterviewRole::Interviewer);
        assert!(grants.may_publish(TrackSource::Camera));
        assert!(grants.can_subscribe && grants.can_moderate);
    }

    #[test]
    fn reviewer_only_watches_hidden() {
        let grants = Grants::for_role(InterviewRole::Reviewer);
        for source in [TrackSource::Camera, TrackSource::Microphone] {
            assert!(!grants.may_publish(source));
        }
        assert!(grants.can_subscribe && grants.hidden && !grants.can_moderate);
    }

    #[test]
    fn observer_watches_visibly() {
        let grants = Grants::for_role(InterviewRole::Observer);
        assert!(!grants.may_publish(TrackSource::Camera));
        assert!(grants.can_subscribe && !grants.hidden);
    }

    #[test]
    fn a_phone_only_publishes_its_camera() {
        let grants = Grants::phone_camera();
        assert!(grants.may_publish(TrackSource::SecondaryCamera));
        for source in [
            TrackSource::Camera,
            TrackSource::Microphone,
            TrackSource::ScreenShare,
        ] {
            assert!(!grants.may_publish(source), "{source:?}");
        }
        assert!(!grants.can_subscribe && !grants.can_chat && !grants.can_moderate);
        assert!(!grants.hidden, "everyone sees the phone is there");
    }

    #[test]
    fn who_sees_edits_and_runs_the_code() {
        for role in [InterviewRole::Candidate, InterviewRole::Interviewer] {
            assert_eq!(Grants::for_role(role).code, CodeGrants::WRITE, "{role}");
        }
        for role in [InterviewRole::Observer, InterviewRole::Reviewer] {
            assert_eq!(Grants::for_role(role).code, CodeGrants::READ, "{role}");
        }
        assert_eq!(Grants::phone_camera().code, CodeGrants::NONE);
        assert_eq!(Grants::agent().code, CodeGrants::NONE);
        // Join tokens issued before code grants existed still parse, granting nothing.
        let old = r#"{"room_join":true,"can_publish":true,"can_subscribe":true,
            "can_publish_sources":["camera"],"can_chat":true,"can_moderate":false,
            "hidden":false,"agent":false}"#;
        let grants: Grants = serde_json::from_str(old).expect("parses");
        assert_eq!(grants.code, CodeGrants::NONE);
    }

    #[test]
    fn roles_round_trip_through_their_names() {
        for role in InterviewRole::ALL {
            assert_eq!(role.as_str().parse::<InterviewRole>(), Ok(role));
            let json = serde_json::to_string(&role).expect("serialises");
            assert_eq!(json, format!("\"{role}\""));
        }
        assert!("admin".parse::<InterviewRole>().is_err());
    }

    #[test]
    fn grants_reject_unknown_fields() {
        let json = r#"{"room_join":true,"can_publish":true,"can_subscribe":true,
            "can_publish_sources":["camera"],"can_chat":true,"can_moderate":false,"hidden":false,
            "recorder":false,"admin":true}"#;
        assert!(serde_json::from_str::<Grants>(json).is_err());
    }
}
