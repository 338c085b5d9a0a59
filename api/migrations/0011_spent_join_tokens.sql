-- Join tokens that opened a connection. A join token opens one connection only; kept here rather
-- than in one server's memory, the rule survives a restart and holds on every node of a cluster
-- (a room that moves to another node must not accept its tokens a second time). Rows go once the
-- token has expired.
CREATE TABLE spent_join_tokens (
    jti TEXT PRIMARY KEY,
    expires_at BIGINT NOT NULL
);
CREATE INDEX spent_join_tokens_expiry ON spent_join_tokens (expires_at);
