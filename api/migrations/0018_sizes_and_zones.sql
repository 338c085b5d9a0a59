-- A finished recording's size in the object store, measured once it ended (NULL until then, and
-- for recordings from before this column until an admin's listing measures them).
ALTER TABLE recordings ADD COLUMN size_bytes BIGINT;
-- The time zone email to a person is written in: an account's own (its browser's, or chosen),
-- or one the scheduler gave a participant (a candidate without an account); NULL falls back to
-- the interview's.
ALTER TABLE users ADD COLUMN time_zone TEXT;
ALTER TABLE interview_participants ADD COLUMN time_zone TEXT;
