-- Sightline's first schema. Written once for both SQLite and PostgreSQL: ids are TEXT (UUIDv7),
-- times are BIGINT unix seconds, flags are nullable timestamps. Append-only: never edit an
-- applied migration, add a new one.

CREATE TABLE users (
    id TEXT PRIMARY KEY,
    email TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    password_hash TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('candidate', 'interviewer', 'reviewer', 'admin')),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE TABLE interviews (
    id TEXT PRIMARY KEY,
    title TEXT NOT NULL,
    scheduled_start BIGINT NOT NULL,
    duration_minutes BIGINT NOT NULL,
    time_zone TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN ('scheduled', 'cancelled')),
    created_by TEXT NOT NULL REFERENCES users (id),
    created_at BIGINT NOT NULL,
    updated_at BIGINT NOT NULL
);

CREATE INDEX interviews_by_start ON interviews (scheduled_start);

CREATE TABLE interview_participants (
    id TEXT PRIMARY KEY,
    interview_id TEXT NOT NULL REFERENCES interviews (id) ON DELETE CASCADE,
    email TEXT NOT NULL,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('candidate', 'interviewer', 'observer', 'reviewer')),
    -- Set at creation for staff, and for a candidate once they redeem their invite while signed in.
    user_id TEXT REFERENCES users (id) ON DELETE SET NULL,
    created_at BIGINT NOT NULL,
    UNIQUE (interview_id, email)
);

CREATE INDEX interview_participants_by_user ON interview_participants (user_id);

CREATE TABLE invites (
    id TEXT PRIMARY KEY,
    participant_id TEXT NOT NULL REFERENCES interview_participants (id) ON DELETE CASCADE,
    token_hash TEXT NOT NULL UNIQUE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT
);

CREATE INDEX invites_by_participant ON invites (participant_id);

CREATE TABLE refresh_tokens (
    id TEXT PRIMARY KEY,
    token_hash TEXT NOT NULL UNIQUE,
    family_id TEXT NOT NULL,
    user_id TEXT REFERENCES users (id) ON DELETE CASCADE,
    participant_id TEXT REFERENCES interview_participants (id) ON DELETE CASCADE,
    created_at BIGINT NOT NULL,
    expires_at BIGINT NOT NULL,
    used_at BIGINT,
    revoked_at BIGINT,
    CHECK ((user_id IS NULL) <> (participant_id IS NULL))
);

CREATE INDEX refresh_tokens_by_family ON refresh_tokens (family_id);

CREATE TABLE audit_log (
    id TEXT PRIMARY KEY,
    -- A user id, or `cli` for actions taken with the sightline command.
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT NOT NULL,
    details TEXT NOT NULL,
    created_at BIGINT NOT NULL
);

CREATE INDEX audit_log_by_time ON audit_log (created_at);
