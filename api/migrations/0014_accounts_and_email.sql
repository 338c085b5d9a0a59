-- Email goes out from this outbox: a message is stored in the same moment as what caused it,
-- then sent by a server's sender task, which claims due rows one at a time (a claim lapses, so a
-- server that dies mid-send leaves the row to be tried again), retries a failing SMTP server
-- with backoff, and marks a message failed after its last attempt, for admins to see. Rows go
-- 30 days after they were sent or failed.
CREATE TABLE outbox (
    id TEXT PRIMARY KEY,
    -- `password_reset`, ...: what the message is, for admins (never its content).
    kind TEXT NOT NULL,
    recipient TEXT NOT NULL,
    subject TEXT NOT NULL,
    -- The whole message as sent (RFC 5322, with its Message-ID); emptied once it is sent, failed
    -- or expired (a reset link in it must not outlive its use).
    message TEXT NOT NULL,
    -- A message not sent by then is not sent at all (a reset link that expired).
    expires_at BIGINT,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    -- Whose claim it is: only that sender marks the attempt.
    claim TEXT,
    sent_at BIGINT,
    failed_at BIGINT,
    last_error TEXT
);
CREATE INDEX outbox_due ON outbox (sent_at, failed_at, next_attempt_at);

-- Password reset links: only the SHA-256 of each token is kept; a token is spent once, within
-- its validity, and spending it spends the user's other links too.
CREATE TABLE password_resets (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX password_resets_user ON password_resets (user_id);

-- An account an admin deactivated cannot sign in, and its tokens stop working at once.
ALTER TABLE users ADD COLUMN deactivated_at BIGINT;
-- An account's session generation: access tokens carry the one they were issued under, and a
-- password reset or a deactivation raises it, ending every session at once rather than when
-- the tokens expire.
ALTER TABLE users ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
