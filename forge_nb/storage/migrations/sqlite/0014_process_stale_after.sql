-- v14: each process's own silence limit. The reaper counts a process dead after the
-- process's own stale_after (seconds without a heartbeat), not the reaper's: a worker
-- started with a longer limit is not reaped early by a peer with a shorter one.
-- NULL (rows of processes from before v14): the reaper's own limit.
ALTER TABLE forge_nb_processes ADD COLUMN stale_after REAL;
