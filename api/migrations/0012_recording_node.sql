-- Recordings in a cluster. `node`: the node recording it (NULL for a server alone).
-- `stopped_at`: when its server stopped it on purpose (someone pressed stop, the room emptied),
-- before finishing it; NULL while it records, and when the room was taken from under it (its
-- node died or lost the room). `carried_to`: the node that went on recording the interview, in
-- a new recording, after this one lost its room; set once, so it is carried over only once.
ALTER TABLE recordings ADD COLUMN node TEXT;
ALTER TABLE recordings ADD COLUMN stopped_at BIGINT;
ALTER TABLE recordings ADD COLUMN carried_to TEXT;
