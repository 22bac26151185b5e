-- v12: flow control (issue 20). Jobs enqueued with flow options carry them on the row; a
-- plain job leaves every new column NULL and the new trigger returns at once for it.

-- expires_in: a job not started by expires_at never runs. The claim skips it and clears the
-- column when it starts the job; the leader ends the expired ones dead ("expired").
ALTER TABLE forge_nb_jobs ADD COLUMN expires_at float8;
CREATE INDEX forge_nb_jobs_expiring ON forge_nb_jobs (expires_at)
    WHERE expires_at IS NOT NULL AND status IN ('waiting', 'pending', 'failed');

-- unique_for: the job that last took a unique key with a window, and the window (seconds
-- after it finishes during which the key stays taken). One row per key.
CREATE TABLE forge_nb_unique_holds (
    unique_key   text PRIMARY KEY,
    job_id       bigint NOT NULL,
    hold_seconds float8 NOT NULL
);

-- Per-key concurrency: a keyed job carries its key ("<kind>/<value>"); one row per key counts
-- its running jobs against its limit. A job's start locks the key's row (SKIP LOCKED: a
-- claimer never waits for another, so claimers cannot deadlock on keys; a row another
-- transaction holds counts as full for now), re-checks the count on the newest version and
-- takes a slot; a start that finds the key full is skipped (the row trigger returns NULL),
-- so no claim can take more than the limit. Leaving running gives the slot back.
ALTER TABLE forge_nb_jobs ADD COLUMN concurrency_key text;
CREATE TABLE forge_nb_key_slots (
    key       text PRIMARY KEY,
    running   integer NOT NULL DEFAULT 0,
    key_limit integer NOT NULL
);

CREATE FUNCTION forge_nb_key_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.concurrency_key IS NOT NULL AND OLD.status = 'running' THEN
            UPDATE forge_nb_key_slots SET running = greatest(0, running - 1)
            WHERE key = OLD.concurrency_key;
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.concurrency_key IS NULL OR (NEW.status = 'running') = (OLD.status = 'running') THEN
        RETURN NEW;
    END IF;
    IF NEW.status = 'running' THEN
        UPDATE forge_nb_key_slots AS s SET running = s.running + 1
        FROM (
            SELECT key FROM forge_nb_key_slots
            WHERE key = NEW.concurrency_key AND running < key_limit
            FOR UPDATE SKIP LOCKED
        ) AS free
        WHERE s.key = free.key;
        IF NOT FOUND THEN
            RETURN NULL;  -- the key is full (or busy): this job is not started now
        END IF;
    ELSE
        UPDATE forge_nb_key_slots SET running = greatest(0, running - 1)
        WHERE key = NEW.concurrency_key;
    END IF;
    RETURN NEW;
END
$$;

CREATE TRIGGER forge_nb_jobs_key_slot BEFORE UPDATE OF status ON forge_nb_jobs
    FOR EACH ROW WHEN (NEW.concurrency_key IS NOT NULL)
    EXECUTE FUNCTION forge_nb_key_slot();
CREATE TRIGGER forge_nb_jobs_key_gone BEFORE DELETE ON forge_nb_jobs
    FOR EACH ROW WHEN (OLD.concurrency_key IS NOT NULL AND OLD.status = 'running')
    EXECUTE FUNCTION forge_nb_key_slot();

-- Rate-limit templates: ensure_rate_limit("stripe:*", …) stores a pattern; acquiring a scope
-- with no bucket makes one from the longest matching pattern (its row names the template).
-- Idle buckets made from templates are swept once full again (nothing is lost: a bucket
-- made anew starts full).
CREATE TABLE forge_nb_rate_limit_templates (
    pattern           text PRIMARY KEY,
    capacity          float8 NOT NULL,
    refill_per_second float8 NOT NULL
);
ALTER TABLE forge_nb_rate_limits ADD COLUMN template text;
CREATE INDEX forge_nb_rate_limits_templated ON forge_nb_rate_limits (updated_at)
    WHERE template IS NOT NULL;

-- global_limit: at most that many running jobs of the queue across every process (0: no
-- limit). The queue's slots are rows here; a process runs at most as many jobs as it holds
-- slots, takes free ones up to its fair share, gives back what it does not use, and a dead
-- process's slots are freed once its running jobs were reaped.
ALTER TABLE forge_nb_queues ADD COLUMN global_limit integer NOT NULL DEFAULT 0;
CREATE TABLE forge_nb_queue_slots (
    queue  text NOT NULL,
    slot   integer NOT NULL,
    holder text,
    PRIMARY KEY (queue, slot)
);
