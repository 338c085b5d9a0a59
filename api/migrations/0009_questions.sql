-- The question bank, and the questions attached to each interview.
--
-- A question's tags, starter code (per language id) and hidden tests (stdin and the expected
-- stdout) are JSON text, read and written whole with the question. Hidden tests are seen only
-- by interviewers and admins; a candidate sees a question only once it was revealed to them.
CREATE TABLE questions (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    prompt TEXT NOT NULL,
    difficulty TEXT NOT NULL CHECK (difficulty IN ('easy', 'medium', 'hard')),
    tags TEXT NOT NULL,
    starter_code TEXT NOT NULL,
    hidden_tests TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE interview_questions (
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    question_id TEXT NOT NULL REFERENCES questions (id) ON DELETE CASCADE,
    position BIGINT NOT NULL,
    -- Unix milliseconds it was shown to the candidate; NULL while hidden from them.
    revealed_at_ms BIGINT,
    PRIMARY KEY (interview_id, question_id)
);
