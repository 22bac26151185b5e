-- v12: flow control (issue 20). Jobs enqueued with flow options carry them on the row; a
-- plain job leaves every new column NULL and no new trigger fires for it.

-- expires_in: a job not started by expires_at never runs. The claim skips it and clears the
-- column when it starts the job; the leader ends the expired ones dead ("expired").
ALTER TABLE forge_nb_jobs ADD COLUMN expires_at REAL;
CREATE INDEX forge_nb_jobs_expiring ON forge_nb_jobs (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('waiting', 'pending', 'failed');

-- unique_for: the job that last took a unique key with a window, and the window (seconds
-- after it finishes during which the key stays taken). One row per key.
CREATE TABLE forge_nb_unique_holds (
    unique_key   TEXT PRIMARY KEY,
    job_id       INTEGER NOT NULL,
    hold_seconds REAL    NOT NULL
) WITHOUT ROWID;

-- Per-key concurrency: a keyed job carries its key ("<kind>/<value>"); one row per key counts
-- its running jobs against its limit. The triggers keep the count as jobs start and stop, and
-- a claim of a job whose key is full is skipped (RAISE(IGNORE)): the claim statement itself
-- can never take more than the limit, whatever it selected.
ALTER TABLE forge_nb_jobs ADD COLUMN concurrency_key TEXT;
CREATE TABLE forge_nb_key_slots (
    key       TEXT PRIMARY KEY,
    running   INTEGER NOT NULL DEFAULT 0,
    key_limit INTEGER NOT NULL
) WITHOUT ROWID;

CREATE TRIGGER forge_nb_jobs_key_full BEFORE UPDATE OF status ON forge_nb_jobs
WHEN new.concurrency_key IS NOT NULL AND new.status = 'running' AND old.status <> 'running'
BEGIN
    SELECT RAISE(IGNORE) WHERE NOT EXISTS (
        SELECT 1 FROM forge_nb_key_slots
        WHERE key = new.concurrency_key AND running < key_limit
    );
END;

CREATE TRIGGER forge_nb_jobs_key_start AFTER UPDATE OF status ON forge_nb_jobs
WHEN new.concurrency_key IS NOT NULL AND (new.status = 'running') <> (old.status = 'running')
BEGIN
    UPDATE forge_nb_key_slots
    SET running = max(0, running + CASE WHEN new.status = 'running' THEN 1 ELSE -1 END)
    WHERE key = new.concurrency_key;
END;

CREATE TRIGGER forge_nb_jobs_key_gone AFTER DELETE ON forge_nb_jobs
WHEN old.concurrency_key IS NOT NULL AND old.status = 'running'
BEGIN
    UPDATE forge_nb_key_slots SET running = max(0, running - 1) WHERE key = old.concurrency_key;
END;

-- Rate-limit templates: ensure_rate_limit("stripe:*", …) stores a pattern; acquiring a scope
-- with no bucket makes one from the longest matching pattern (its row names the template).
-- Idle buckets made from templates are swept once full again (nothing is lost: a bucket
-- made anew starts full).
CREATE TABLE forge_nb_rate_limit_templates (
    pattern           TEXT PRIMARY KEY,
    capacity          REAL NOT NULL,
    refill_per_second REAL NOT NULL
);
ALTER TABLE forge_nb_rate_limits ADD COLUMN template TEXT;
CREATE INDEX forge_nb_rate_limits_templated ON forge_nb_rate_limits (updated_at)
    WHERE template IS NOT NULL;

-- global_limit: at most that many running jobs of the queue across every process (0: no
-- limit). The queue's slots are rows here; a process runs at most as many jobs as it holds
-- slots, takes free ones up to its fair share, gives back what it does not use, and a dead
-- process's slots are freed once its running jobs were reaped.
ALTER TABLE forge_nb_queues ADD COLUMN global_limit INTEGER NOT NULL DEFAULT 0;
CREATE TABLE forge_nb_queue_slots (
    queue  TEXT NOT NULL,
    slot   INTEGER NOT NULL,
    holder TEXT,
    PRIMARY KEY (queue, slot)
);
