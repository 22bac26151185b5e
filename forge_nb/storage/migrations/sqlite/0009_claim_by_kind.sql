-- v9: a process claims only the kinds it can run (issue 15).
-- The claim index puts the kind right after the queue: each kind's runnable jobs are one
-- ordered index range, and a claim merges the ranges of the kinds it runs (one arm per kind,
-- MERGE (UNION ALL) in claim order). Jobs of kinds nobody here runs are never read, however
-- many wait ahead of the runnable ones. It replaces the v1 claim index (same entries, one
-- more key column), so an enqueue writes no more index entries than before.
DROP INDEX forge_nb_jobs_claim;
CREATE INDEX forge_nb_jobs_claim_kind ON forge_nb_jobs (queue, kind, priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'failed');

-- The kinds each process runs (a JSON array on each of its slot rows, set at registration and
-- kept by the heartbeat): what the dashboard compares the waiting jobs with.
ALTER TABLE forge_nb_processes ADD COLUMN kinds TEXT NOT NULL DEFAULT '[]';
