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
