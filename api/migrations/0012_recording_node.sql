-- Recordings in a cluster.
-- `node`: the node responsible for it (recording it, then finishing it); NULL for a server
-- alone. A node that takes the room over from a node that lost it takes the recording over too
-- (when the store is shared) by writing its own name here.
-- `taken_from`: the node it was taken over from, when another node took it over (its spool on
-- that node is then discarded when that node starts again, rather than finished).
-- `finisher`: the node that is finishing it (joining its takes): set once a node stops
-- recording it, so that nobody takes over a recording being finished.
-- `stopped_at`: when its node stopped it on purpose (someone pressed stop, the room emptied);
-- NULL while it records, and when the room was taken from under it (its node died or lost it).
-- `carried_to`: the node that went on recording the interview in a new recording, when this
-- one could not be taken over; set once.
ALTER TABLE recordings ADD COLUMN node TEXT;
ALTER TABLE recordings ADD COLUMN taken_from TEXT;
ALTER TABLE recordings ADD COLUMN finisher TEXT;
ALTER TABLE recordings ADD COLUMN stopped_at BIGINT;
ALTER TABLE recordings ADD COLUMN carried_to TEXT;
