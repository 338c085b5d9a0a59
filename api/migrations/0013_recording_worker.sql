-- Recordings made by `sightline worker` processes.
-- `worker`: the worker recording it for its node (`node`), set when a worker claims the job;
-- NULL while the node records it itself or no worker has it yet. A job handed to another
-- worker (its worker died) moves it; a node taking the recording over clears it, so the old
-- worker leaves the recording to that node. `finisher` may then hold a worker's name.
ALTER TABLE recordings ADD COLUMN worker TEXT;
