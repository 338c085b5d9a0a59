-- The interview's workspace.
--
-- `workspace_updates`: every change the shared code document accepted, as a Yjs v1 update
-- (base64), numbered in the order it was applied, with the time it reached the server. The
-- document at any moment is these applied in order up to it: a restart, a late joiner and the
-- reviewer's timeline all rebuild it from here.
CREATE TABLE workspace_updates (
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    seq BIGINT NOT NULL,
    -- Unix milliseconds the update arrived.
    at_ms BIGINT NOT NULL,
    -- The participant whose edit it was; NULL for the server's own (a question's starter code).
    participant_id TEXT,
    update_b64 TEXT NOT NULL,
    PRIMARY KEY (interview_id, seq)
);

-- Code runs: what ran (the code and stdin as they were), who asked, and what came of it.
CREATE TABLE code_runs (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    participant_id TEXT,
    requested_by TEXT NOT NULL,
    language TEXT NOT NULL,
    source TEXT NOT NULL,
    stdin TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('queued', 'running', 'finished', 'failed')),
    -- ok, failed, time_limit_exceeded, memory_limit_exceeded, output_limit_exceeded.
    verdict TEXT,
    exit_code INTEGER,
    signal INTEGER,
    stdout TEXT,
    stderr TEXT,
    duration_ms BIGINT,
    -- Why a run could not happen at all (the sandbox did not start, the server restarted).
    error TEXT,
    created_at_ms BIGINT NOT NULL,
    finished_at_ms BIGINT
);

CREATE INDEX code_runs_by_interview ON code_runs (interview_id, created_at_ms);
