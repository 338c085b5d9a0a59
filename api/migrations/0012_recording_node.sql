-- The cluster node recording it (NULL for a server alone). A node that takes over a room whose
-- recording node has died goes on recording it; the dead node's unfinished recording is
-- finished when that node starts again (its spool is on its own disk).
ALTER TABLE recordings ADD COLUMN node TEXT;
