-- A participant's session generation. Reissuing a candidate's invite raises it, which ends every
-- access and join token issued to whoever used the old link (tokens carry the generation they
-- were issued under and are checked against it).
ALTER TABLE interview_participants ADD COLUMN session_epoch BIGINT NOT NULL DEFAULT 0;
