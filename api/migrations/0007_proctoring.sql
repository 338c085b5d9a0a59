-- Server-side proctoring. An interview is proctored while it has a `proctoring_settings` row;
-- checks run on a candidate's streams only after that candidate agreed
-- (`proctoring_consents`). Each event is a moment for a person to look at, never a verdict; a
-- reviewer may confirm or dismiss it with a note. Snapshots live in object storage
-- (`proctoring/{interview}/{event}/{n}.jpg`).
CREATE TABLE proctoring_settings (
    interview_id TEXT PRIMARY KEY REFERENCES interviews (id) ON DELETE CASCADE,
    enabled_by TEXT NOT NULL,
    enabled_at BIGINT NOT NULL,
    -- 1 when the candidate must share their screen: a share that ends is marked.
    require_screen_share INTEGER NOT NULL DEFAULT 0
);

CREATE TABLE proctoring_consents (
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL REFERENCES interview_participants (id) ON DELETE CASCADE,
    consented_at BIGINT NOT NULL,
    PRIMARY KEY (interview_id, participant_id)
);

CREATE TABLE proctoring_events (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    -- Whose stream (the candidate, also for their phone's stream).
    participant_id TEXT NOT NULL,
    -- The track, and what it is: camera, phone, screen.
    track_id TEXT NOT NULL,
    source TEXT NOT NULL,
    kind TEXT NOT NULL,
    severity TEXT NOT NULL CHECK (severity IN ('info', 'notice', 'review')),
    -- Unix milliseconds.
    started_at_ms BIGINT NOT NULL,
    ended_at_ms BIGINT,
    detector TEXT NOT NULL,
    -- The thresholds the check ran with (JSON), and its strongest evidence.
    thresholds TEXT NOT NULL,
    peak_score DOUBLE PRECISION,
    snapshots INTEGER NOT NULL DEFAULT 0,
    -- A person's review: confirmed or dismissed, with a note.
    verdict TEXT CHECK (verdict IN ('confirmed', 'dismissed')),
    review_note TEXT,
    reviewed_by TEXT,
    reviewed_at BIGINT
);

CREATE INDEX proctoring_events_by_interview ON proctoring_events (interview_id, started_at_ms);
