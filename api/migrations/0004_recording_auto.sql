-- Interviews recorded automatically: the recording starts (after everyone present consented)
-- as soon as someone enters the room, without an interviewer pressing "Start recording".
CREATE TABLE recording_auto (
    interview_id TEXT PRIMARY KEY REFERENCES interviews (id) ON DELETE CASCADE,
    enabled_by TEXT NOT NULL,
    enabled_at BIGINT NOT NULL
);
