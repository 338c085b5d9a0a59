-- Interviewers' private notes, scorecard templates and submitted scorecards.
--
-- A note belongs to one participant (an interviewer or observer) and is read only by them. A
-- template's criteria are JSON text (`[{"name", "guidance"}]`). A scorecard keeps a copy of the
-- criteria it was filled against, so a template edited later never changes what was submitted.
CREATE TABLE interview_notes (
    participant_id TEXT PRIMARY KEY REFERENCES interview_participants (id) ON DELETE CASCADE,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    body TEXT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE scorecard_templates (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    criteria TEXT NOT NULL,
    -- Unix seconds it was retired (no longer offered for new scorecards); NULL while offered.
    archived_at BIGINT,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE scorecards (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    participant_id TEXT NOT NULL REFERENCES interview_participants (id) ON DELETE CASCADE,
    template_id TEXT NOT NULL REFERENCES scorecard_templates (id),
    template_name TEXT NOT NULL,
    criteria TEXT NOT NULL,
    -- JSON `[{"score": 1..4, "comment"}]`, one per criterion, in the criteria's order.
    ratings TEXT NOT NULL,
    recommendation TEXT NOT NULL
        CHECK (recommendation IN ('strong_no', 'no', 'yes', 'strong_yes')),
    summary TEXT NOT NULL,
    submitted_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL,
    UNIQUE (interview_id, participant_id)
);

-- The template every server starts with; admins edit it, retire it or add their own.
INSERT INTO scorecard_templates (id, name, criteria, archived_at, created_by, created_at, updated_at)
VALUES (
    '00000000-0000-7000-8000-000000000001',
    'Coding interview',
    '[{"name":"Problem solving","guidance":"1: could not make progress without the answer. 2: needed strong hints. 3: reached a working approach with light hints. 4: found a sound approach on their own and weighed alternatives."},{"name":"Code quality","guidance":"1: code does not run or cannot be followed. 2: works in part, hard to follow. 3: correct and readable. 4: correct, clear, well-structured, handles edge cases."},{"name":"Testing and debugging","guidance":"1: did not check their code. 2: ran it once. 3: tried normal and edge cases and fixed what failed. 4: reasoned about cases up front and found bugs methodically."},{"name":"Communication","guidance":"1: silent or unclear. 2: explained when asked. 3: talked through their thinking. 4: clear and collaborative throughout, took feedback well."}]',
    NULL,
    'system',
    0,
    0
);
