-- A candidate's phone paired as a second camera. One row per QR code issued. The pairing token
-- (in the QR code and link) and the short manual code are stored as SHA-256 only. Once the phone
-- redeems the pairing it holds a session token, also stored only as a hash, that lets it rejoin
-- after a reload until the phone is removed or replaced, or the interview ends.
CREATE TABLE phone_pairings (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    -- The candidate whose phone this is.
    participant_id TEXT NOT NULL REFERENCES interview_participants (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    code_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    -- Replaced by a newer pairing, or the phone was removed.
    revoked_at BIGINT,
    session_hash TEXT UNIQUE,
    session_expires_at BIGINT
);

CREATE INDEX phone_pairings_by_participant ON phone_pairings (participant_id);
