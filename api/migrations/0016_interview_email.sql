-- Calendar invitations: every message about an interview carries its UID and this sequence,
-- raised by each change (a new time, a cancellation), so calendars update the entry they have.
ALTER TABLE interviews ADD COLUMN calendar_sequence BIGINT NOT NULL DEFAULT 0;
-- Reminders a day and an hour before: when each was taken care of (sent, or not needed because
-- the interview was scheduled later than that), cleared when the interview moves.
ALTER TABLE interviews ADD COLUMN reminded_day_at BIGINT;
ALTER TABLE interviews ADD COLUMN reminded_hour_at BIGINT;
-- "Recording ready" email to the interview's reviewers: when it was taken care of. Recordings
-- that had ended before this are taken as told.
ALTER TABLE recordings ADD COLUMN announced_at BIGINT;
UPDATE recordings SET announced_at = ended_at WHERE status <> 'recording';

-- Email verification: a self-registered account confirms its address by a link sent to it.
-- Accounts that existed before, and those an operator creates, are taken as confirmed.
ALTER TABLE users ADD COLUMN email_verified_at BIGINT;
UPDATE users SET email_verified_at = created_at;
-- Verification links: only the SHA-256 of each token is kept; a token is spent once, within its
-- validity.
CREATE TABLE email_verifications (
    token_hash TEXT PRIMARY KEY,
    user_id TEXT NOT NULL REFERENCES users (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT
);
CREATE INDEX email_verifications_user ON email_verifications (user_id);
