-- Endpoints admins register to be told what happens. The signing secret is not stored: it is
-- derived from the server's secret, the endpoint's id and its secret generation (raised to rotate
-- it), so a copy of the database signs nothing.
CREATE TABLE webhook_endpoints (
    id TEXT PRIMARY KEY,
    url TEXT NOT NULL,
    -- The events it wants, space-separated (`interview.scheduled participant.joined`).
    events TEXT NOT NULL,
    secret_generation BIGINT NOT NULL DEFAULT 0,
    created_by TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    -- One delivery at a time per endpoint, whichever server sends it: a sender holds the
    -- endpoint's claim while its request is under way (a claim lapses, like a delivery's).
    claimed_until BIGINT,
    claim TEXT
);

-- One event for one endpoint, written in the same moment as what caused it (a transaction's
-- event only if it commits), then sent by a server's sender, which claims due rows (a claim
-- lapses, so a server that dies mid-send leaves the row to be tried again), retries with backoff
-- and marks a delivery failed after its last attempt. Rows go 30 days after they were delivered
-- or failed, and with their endpoint.
CREATE TABLE webhook_deliveries (
    id TEXT PRIMARY KEY,
    endpoint_id TEXT NOT NULL REFERENCES webhook_endpoints (id) ON DELETE CASCADE,
    -- The event's id: the same for every endpoint and every attempt (the receiver's idempotency
    -- key).
    event_id TEXT NOT NULL,
    event TEXT NOT NULL,
    -- The JSON body as sent.
    body TEXT NOT NULL,
    created_at BIGINT NOT NULL,
    attempts BIGINT NOT NULL DEFAULT 0,
    next_attempt_at BIGINT NOT NULL,
    claimed_until BIGINT,
    claim TEXT,
    delivered_at BIGINT,
    failed_at BIGINT,
    -- The last answer's HTTP status, if one came.
    last_status BIGINT,
    last_error TEXT
);
CREATE INDEX webhook_deliveries_due ON webhook_deliveries (delivered_at, failed_at, next_attempt_at);
CREATE INDEX webhook_deliveries_endpoint ON webhook_deliveries (endpoint_id);
