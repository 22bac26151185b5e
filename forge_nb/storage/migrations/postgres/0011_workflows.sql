-- v11: workflows. A job may wait for other jobs (forge_nb_job_deps): status 'waiting' until
-- every dependency is done. Statement triggers keep it in step in the transaction that
-- finishes a dependency: a done one takes one off its dependents' waiting_on (the last
-- makes them pending, and wakes the queue's claimers); a dead or deleted one queues its
-- dependents' cascade (forge_nb_dead_parents), which the leader finishes in bounded batches.
-- Per statement, not per row: a finish of 100 dependencies of one fan-in updates it once
-- (per row, a 10,000-way fan-in took 10,000 updates of one row, each walking its growing
-- chain of versions). Each looks for edges of the statement's rows only when the edges
-- table is not empty, and finds them through its index: dependencies are not flagged on
-- their own rows, since that update (not HOT: bulk-loaded pages are full) cost 1.4 s for
-- 10,000 dependencies.
-- Two processes finishing a dependent's last two dependencies at once: each trigger's UPDATE
-- takes the dependent's row lock, and the second re-reads the row the first committed
-- (READ COMMITTED), so the count reaches zero exactly once.
ALTER TABLE forge_nb_jobs DROP CONSTRAINT forge_nb_jobs_status_check;
-- NOT VALID: every existing row already passes; no scan of a big table under lock.
ALTER TABLE forge_nb_jobs ADD CONSTRAINT forge_nb_jobs_status_check
    CHECK (status IN ('waiting', 'pending', 'running', 'failed', 'done', 'dead')) NOT VALID;
ALTER TABLE forge_nb_jobs
    ADD COLUMN waiting_on   integer NOT NULL DEFAULT 0,  -- dependencies not done yet
    ADD COLUMN dependencies integer NOT NULL DEFAULT 0;  -- dependencies enqueued with

-- Waiting jobs hold their unique key like live ones.
DROP INDEX forge_nb_jobs_unique_live;
CREATE UNIQUE INDEX forge_nb_jobs_unique_live ON forge_nb_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('waiting', 'pending', 'running', 'failed');

CREATE TABLE forge_nb_job_deps (
    job_id     bigint NOT NULL,  -- the waiting job
    depends_on bigint NOT NULL,  -- a job it waits for
    PRIMARY KEY (job_id, depends_on)
);
CREATE INDEX forge_nb_job_deps_dependents ON forge_nb_job_deps (depends_on, job_id);

-- Dependencies that ended without being done, whose waiting dependents are still to end
-- dead (error: `error`). Rows go once the cascade has no waiting dependent left to end.
CREATE TABLE forge_nb_dead_parents (
    job_id bigint PRIMARY KEY,
    error  text NOT NULL
);

CREATE FUNCTION forge_nb_dependency_ended() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    woken bigint;
BEGIN
    -- Most statements end no job (claims, progress; the promotion below), or there is no
    -- workflow anywhere: nothing to look up.
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE status IN ('done', 'dead'))
       OR NOT EXISTS (SELECT 1 FROM forge_nb_job_deps) THEN
        RETURN NULL;
    END IF;
    -- Done: one fewer to wait for; the last makes the dependent pending.
    WITH met AS (
        SELECT e.job_id, count(*) AS n
        FROM new_rows AS nr
        JOIN old_rows AS o ON o.id = nr.id AND o.status <> 'done'
        JOIN forge_nb_job_deps AS e ON e.depends_on = nr.id
        WHERE nr.status = 'done'
        GROUP BY e.job_id
    ),
    promoted AS (
        UPDATE forge_nb_jobs AS j
        SET waiting_on = j.waiting_on - met.n,
            status = CASE WHEN j.waiting_on <= met.n THEN 'pending' ELSE 'waiting' END
        FROM met
        WHERE j.id = met.job_id AND j.status = 'waiting'
        RETURNING j.queue, j.status
    )
    SELECT count(pg_notify('forge_nb_jobs', queue)) INTO woken
    FROM (SELECT DISTINCT queue FROM promoted WHERE status = 'pending') AS ready;
    -- Dead (cancel included): its waiting dependents are to end dead too.
    INSERT INTO forge_nb_dead_parents (job_id, error)
    SELECT nr.id, 'dependency ' || nr.id || ' dead'
    FROM new_rows AS nr
    JOIN old_rows AS o ON o.id = nr.id AND o.status <> 'dead'
    WHERE nr.status = 'dead'
      AND EXISTS (SELECT 1 FROM forge_nb_job_deps AS e WHERE e.depends_on = nr.id)
    ORDER BY nr.id
    ON CONFLICT (job_id) DO UPDATE SET error = EXCLUDED.error;
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_ended AFTER UPDATE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_dependency_ended();

-- Deleted: its own edges go; a dependency deleted before it was done or dead is to end its
-- waiting dependents ('dependency <id> deleted').
CREATE FUNCTION forge_nb_dependency_deleted() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM forge_nb_job_deps) THEN
        RETURN NULL;
    END IF;
    DELETE FROM forge_nb_job_deps WHERE job_id IN (SELECT id FROM old_rows WHERE dependencies > 0);
    INSERT INTO forge_nb_dead_parents (job_id, error)
    SELECT o.id, 'dependency ' || o.id || ' deleted'
    FROM old_rows AS o
    WHERE o.status NOT IN ('done', 'dead')
      AND EXISTS (SELECT 1 FROM forge_nb_job_deps AS e WHERE e.depends_on = o.id)
    ORDER BY o.id
    ON CONFLICT (job_id) DO UPDATE SET error = EXCLUDED.error;
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_deleted AFTER DELETE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_dependency_deleted();

-- An operator's TRUNCATE of the jobs takes their edges along (RESTART IDENTITY would
-- otherwise hand old edges to new jobs with the same ids).
CREATE FUNCTION forge_nb_dependency_truncate() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM forge_nb_job_deps;
    DELETE FROM forge_nb_dead_parents;
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_truncate AFTER TRUNCATE ON forge_nb_jobs
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_dependency_truncate();
