-- A recording the server could not finish is `failed`, with the reason people are shown. The
-- status check is part of the table, so the table is rebuilt (SQLite cannot alter a check).
CREATE TABLE recordings_v2 (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    status TEXT NOT NULL CHECK (status IN ('recording', 'complete', 'interrupted', 'failed')),
    -- The user who started it (an interviewer or admin).
    started_by TEXT NOT NULL,
    started_at BIGINT NOT NULL,
    ended_at BIGINT,
    duration_ms BIGINT,
    -- Why a `failed` recording failed.
    failure TEXT
);

INSERT INTO recordings_v2 (id, interview_id, status, started_by, started_at, ended_at, duration_ms)
    SELECT id, interview_id, status, started_by, started_at, ended_at, duration_ms FROM recordings;

DROP TABLE recordings;
ALTER TABLE recordings_v2 RENAME TO recordings;

CREATE INDEX recordings_by_interview ON recordings (interview_id);
CREATE INDEX recordings_by_end ON recordings (ended_at);
CREATE INDEX recordings_by_status ON recordings (status);
