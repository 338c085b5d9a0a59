-- Server-side recordings of interviews. The media and the manifest live in object storage
-- (recordings/{id}/...); a row says which interview a recording belongs to and where it stands.
CREATE TABLE recordings (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted')),
    -- The user who started it (an interviewer or admin).
    started_by TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    duration_ms BIGINT
);

CREATE INDEX recordings_by_interview ON recordings (interview_id);
CREATE INDEX recordings_by_end ON recordings (ended_at);

-- Who agreed to be recorded in an interview (candidates consent, interviewers acknowledge).
CREATE TABLE recording_consents (
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL REFERENCES interview_participants (id) ON DELETE CASCADE,
    consented_at BIGINT NOT NULL,
    PRIMARY KEY (interview_id, participant_id)
);
