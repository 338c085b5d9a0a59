//! A recording's manifest (versioned JSON) and the clock that lines its tracks up.
//!
//! Every track of a recording is placed on one session clock: milliseconds since the recording
//! started. A track ("take": one published track, from its first packet to its end; a reconnect
//! or a re-paired phone makes a new take) starts at the session time its first packet arrived.
//! Inside a take, time is the sender's media clock (RTP timestamps), which is what the file's
//! timestamps follow; `anchors` pair media time with session time every few seconds, so a
//! player can correct the drift between a sender's clock and ours over a long recording, and
//! `gaps` say when the sender sent nothing (a stall, a network drop). `interruptions` say when
//! nothing was recorded at all: the server recording it stopped and another one resumed it.
//!
//! Plain data and arithmetic with time as an argument; nothing here does I/O.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

/// The manifest format this code writes.
pub const MANIFEST_VERSION: u32 = 1;
/// How often a take records an anchor.
pub const ANCHOR_EVERY: Duration = Duration::from_secs(5);
/// Silence longer than this is a gap, not jitter.
pub const GAP_AFTER: Duration = Duration::from_secs(1);

/// Where a recording stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RecordingStatus {
    /// Tracks are being written.
    Recording,
    /// Stopped, every take finalized into one seekable file.
    Complete,
    /// The server stopped mid-recording; finalized on the next start from what was stored.
    Interrupted,
}

/// Audio or video.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum MediaKind {
    /// Sound.
    Audio,
    /// Pictures.
    Video,
}

/// A person (or a phone) in the recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ParticipantEntry {
    /// Room identity.
    pub identity: String,
    /// Display name.
    pub name: String,
    /// Role in the interview.
    pub role: String,
    /// For a candidate's phone: the candidate's identity.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub phone_of: Option<String>,
}

/// Something on the timeline besides media: joins, leaves, chat.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TimelineEvent {
    /// Session time.
    pub at_ms: u64,
    /// `joined`, `left` or `chat`.
    pub kind: String,
    /// Who.
    pub participant: String,
    /// The chat text, for `chat`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text: Option<String>,
}

/// One stored piece of a take.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    /// Position in the take, from 0.
    pub index: u32,
    /// Object key.
    pub key: String,
    /// Media time covered (milliseconds of the take's own timeline).
    pub start_ms: u64,
    /// End of the media time covered.
    pub end_ms: u64,
    /// Whether the object store has it.
    pub stored: bool,
}

/// Media time of a take at a session time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anchor {
    /// Take media time.
    pub media_ms: u64,
    /// Session time.
    pub session_ms: u64,
}

/// A stretch of session time in which a take received nothing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Gap {
    /// Session time of the last packet before.
    pub start_ms: u64,
    /// Session time of the first packet after.
    pub end_ms: u64,
}

/// One recorded track ("take").
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackEntry {
    /// Unique in the recording; part of the object keys.
    pub id: String,
    /// Publisher identity.
    pub participant: String,
    /// `camera`, `microphone`, `screen_share` or `secondary_camera`.
    pub source: String,
    /// Audio or video.
    pub kind: MediaKind,
    /// `VP8`, `VP9`, `H264` or `Opus`.
    pub codec: String,
    /// Session time of the take's first packet.
    pub start_ms: u64,
    /// Session time of its last packet, once it ended.
    #[serde(default)]
    pub end_ms: Option<u64>,
    /// The pieces written so far.
    pub segments: Vec<Segment>,
    /// Media time ↔ session time, every [`ANCHOR_EVERY`].
    pub anchors: Vec<Anchor>,
    /// When nothing arrived.
    pub gaps: Vec<Gap>,
    /// The finalized, seekable file, once there is one.
    #[serde(default)]
    pub file: Option<String>,
}

/// Everything about one recording.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// [`MANIFEST_VERSION`].
    pub version: u32,
    /// Recording id.
    pub recording: String,
    /// The interview recorded.
    pub interview: String,
    /// Where it stands.
    pub status: RecordingStatus,
    /// Wall clock at session time 0, unix milliseconds.
    pub started_at_ms: u64,
    /// Session time at which it stopped.
    #[serde(default)]
    pub duration_ms: Option<u64>,
    /// Everyone who was recorded or present.
    pub participants: Vec<ParticipantEntry>,
    /// Every take.
    pub tracks: Vec<TrackEntry>,
    /// Joins, leaves and chat.
    pub events: Vec<TimelineEvent>,
    /// When nothing was recorded because the server recording it stopped (it died, or lost
    /// the room) and another went on with it: from the end of what the first one stored to
    /// the moment the next one resumed.
    #[serde(default)]
    pub interruptions: Vec<Gap>,
}

impl Manifest {
    /// A manifest for a recording that starts now.
    pub fn new(recording: &str, interview: &str, started_at_ms: u64) -> Manifest {
        Manifest {
            version: MANIFEST_VERSION,
            recording: recording.to_owned(),
            interview: interview.to_owned(),
            status: RecordingStatus::Recording,
            started_at_ms,
            duration_ms: None,
            participants: Vec::new(),
            tracks: Vec::new(),
            events: Vec::new(),
            interruptions: Vec::new(),
        }
    }

    /// The take with this id.
    pub fn track_mut(&mut self, id: &str) -> Option<&mut TrackEntry> {
        self.tracks.iter_mut().find(|t| t.id == id)
    }

    /// Adds or updates a participant.
    pub fn note_participant(&mut self, entry: ParticipantEntry) {
        match self
            .participants
            .iter_mut()
            .find(|p| p.identity == entry.identity)
        {
            Some(known) => *known = entry,
            None => self.participants.push(entry),
        }
    }

    /// Object key of the manifest of recording `id`.
    pub fn key(recording: &str) -> String {
        format!("recordings/{recording}/manifest.json")
    }

    /// Object key of segment `index` of take `take`, a file of type `extension`.
    pub fn segment_key(recording: &str, take: &str, index: u32, extension: &str) -> String {
        format!("recordings/{recording}/{take}/seg-{index:05}.{extension}")
    }

    /// Object key of a take's finalized file.
    pub fn file_key(recording: &str, take: &str, extension: &str) -> String {
        format!("recordings/{recording}/{take}.{extension}")
    }
}

/// One take's timing as packets arrive: where it starts on the session clock, its anchors and
/// its gaps.
#[derive(Debug, Clone)]
pub struct TakeClock {
    session_start: Instant,
    clock_rate: u32,
    first_rtp: Option<u64>,
    last_arrival: Option<Instant>,
    next_anchor_media_ms: u64,
}

/// What one packet changed on a take's timeline.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Observed {
    /// The take's first packet: its start on the session clock.
    pub started_ms: Option<u64>,
    /// A new anchor.
    pub anchor: Option<Anchor>,
    /// A gap that just ended.
    pub gap: Option<Gap>,
}

impl TakeClock {
    /// A clock for a take of a recording that started at `session_start`.
    pub fn new(session_start: Instant, clock_rate: u32) -> TakeClock {
        TakeClock {
            session_start,
            clock_rate: clock_rate.max(1),
            first_rtp: None,
            last_arrival: None,
            next_anchor_media_ms: 0,
        }
    }

    fn session_ms(&self, at: Instant) -> u64 {
        millis(at.saturating_duration_since(self.session_start))
    }

    /// Media time of an RTP timestamp (extended, continuous) in milliseconds of the take.
    pub fn media_ms(&self, rtp_time: u64) -> u64 {
        let first = self.first_rtp.unwrap_or(rtp_time);
        rtp_time.saturating_sub(first) * 1000 / u64::from(self.clock_rate)
    }

    /// A packet with RTP timestamp `rtp_time` arrived at `arrival`.
    pub fn observe(&mut self, rtp_time: u64, arrival: Instant) -> Observed {
        let mut observed = Observed::default();
        if self.first_rtp.is_none() {
            self.first_rtp = Some(rtp_time);
            observed.started_ms = Some(self.session_ms(arrival));
        }
        if let Some(last) = self.last_arrival
            && arrival.saturating_duration_since(last) > GAP_AFTER
        {
            observed.gap = Some(Gap {
                start_ms: self.session_ms(last),
                end_ms: self.session_ms(arrival),
            });
        }
        self.last_arrival = Some(self.last_arrival.map_or(arrival, |last| last.max(arrival)));
        let media_ms = self.media_ms(rtp_time);
        if media_ms >= self.next_anchor_media_ms {
            self.next_anchor_media_ms = media_ms + millis(ANCHOR_EVERY);
            observed.anchor = Some(Anchor {
                media_ms,
                session_ms: self.session_ms(arrival),
            });
        }
        observed
    }

    /// Session time of the last packet.
    pub fn last_ms(&self) -> Option<u64> {
        self.last_arrival.map(|at| self.session_ms(at))
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_late_take_starts_where_its_first_packet_arrived() {
        let start = Instant::now();
        let mut clock = TakeClock::new(start, 90_000);
        let first = clock.observe(1_000_000, start + Duration::from_secs(10));
        assert_eq!(first.started_ms, Some(10_000));
        assert_eq!(
            first.anchor,
            Some(Anchor {
                media_ms: 0,
                session_ms: 10_000
            })
        );
        // One second of 90 kHz media later.
        let later = clock.observe(1_090_000, start + Duration::from_secs(11));
        assert_eq!(later.started_ms, None);
        assert_eq!(clock.media_ms(1_090_000), 1_000);
    }

    #[test]
    fn anchors_follow_the_media_clock_and_gaps_the_arrivals() {
        let start = Instant::now();
        let mut clock = TakeClock::new(start, 48_000);
        let mut anchors = Vec::new();
        for n in 0..600u64 {
            // 20 ms packets, 12 s of audio; a 3 s silence after 6 s.
            let arrival = start + Duration::from_millis(n * 20 + if n >= 300 { 3_000 } else { 0 });
            let rtp = n * 960 + if n >= 300 { 144_000 } else { 0 };
            let observed = clock.observe(rtp, arrival);
            anchors.extend(observed.anchor);
            if let Some(gap) = observed.gap {
                assert_eq!(
                    gap,
                    Gap {
                        start_ms: 5_980,
                        end_ms: 9_000
                    }
                );
            }
        }
        assert_eq!(
            anchors.iter().map(|a| a.media_ms).collect::<Vec<_>>(),
            vec![0, 5_000, 10_000]
        );
        assert!(
            anchors
                .iter()
                .all(|a| a.session_ms.abs_diff(a.media_ms) < 40),
            "a sender in step with us: {anchors:?}"
        );
        assert_eq!(clock.last_ms(), Some(14_980));
    }

    #[test]
    fn manifests_round_trip_and_name_their_objects() {
        let mut manifest = Manifest::new("r1", "i1", 1_700_000_000_000);
        manifest.note_participant(ParticipantEntry {
            identity: "p1".into(),
            name: "Casey".into(),
            role: "candidate".into(),
            phone_of: None,
        });
        manifest.note_participant(ParticipantEntry {
            identity: "p1".into(),
            name: "Casey C.".into(),
            role: "candidate".into(),
            phone_of: None,
        });
        assert_eq!(manifest.participants.len(), 1, "updated, not repeated");
        let json = serde_json::to_string(&manifest).expect("json");
        assert!(json.contains("\"status\":\"recording\""));
        let back: Manifest = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, manifest);
        assert_eq!(Manifest::key("r1"), "recordings/r1/manifest.json");
        assert_eq!(
            Manifest::segment_key("r1", "t3", 7, "webm"),
            "recordings/r1/t3/seg-00007.webm"
        );
        assert_eq!(
            Manifest::file_key("r1", "t3", "mkv"),
            "recordings/r1/t3.mkv"
        );
    }
}
