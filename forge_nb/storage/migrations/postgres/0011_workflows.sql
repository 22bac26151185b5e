-- v11: workflows. A job may wait for other jobs (forge_nb_job_deps): status 'waiting' until
-- every dependency is done. Triggers keep it in step in the transaction that finishes a
-- dependency: a done one takes one off its dependents' waiting_on (the last makes them
-- pending, and wakes the queue's claimers); a dead or deleted one queues its dependents'
-- cascade (forge_nb_dead_parents), which the leader finishes in bounded batches. They test
-- flags on the row itself (has_dependents), so plain jobs cost a test, not a query.
-- Two processes finishing a dependent's last two dependencies at once: each trigger's UPDATE
-- takes the dependent's row lock, and the second re-reads the row the first committed
-- (READ COMMITTED), so the count reaches zero exactly once.
ALTER TABLE forge_nb_jobs DROP CONSTRAINT forge_nb_jobs_status_check;
-- NOT VALID: every existing row already passes; no scan of a big table under lock.
ALTER TABLE forge_nb_jobs ADD CONSTRAINT forge_nb_jobs_status_check
    CHECK (status IN ('waiting', 'pending', 'running', 'failed', 'done', 'dead')) NOT VALID;
ALTER TABLE forge_nb_jobs
    ADD COLUMN waiting_on     integer NOT NULL DEFAULT 0,     -- dependencies not done yet
    ADD COLUMN dependencies   integer NOT NULL DEFAULT 0,     -- dependencies enqueued with
    ADD COLUMN has_dependents boolean NOT NULL DEFAULT false; -- some job waits (waited) for it

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

-- Per statement, not per row: a finish of 100 dependencies of one fan-in updates it once
-- (per row, a fan-in over 10,000 took 10,000 updates of one row, each walking the row's
-- growing chain of versions). Statements that finish no job with dependents return at
-- the first test.
CREATE FUNCTION forge_nb_dependency_done() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    woken bigint;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM new_rows WHERE has_dependents AND status = 'done') THEN
        RETURN NULL;
    END IF;
    WITH met AS (
        SELECT e.job_id, count(*) AS n
        FROM new_rows AS nr
        JOIN old_rows AS o ON o.id = nr.id AND o.status <> 'done'
        JOIN forge_nb_job_deps AS e ON e.depends_on = nr.id
        WHERE nr.has_dependents AND nr.status = 'done'
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
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_done AFTER UPDATE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_dependency_done();

CREATE FUNCTION forge_nb_dependency_dead() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        DELETE FROM forge_nb_job_deps WHERE job_id = OLD.id;
        IF OLD.has_dependents AND OLD.status NOT IN ('done', 'dead') THEN
            INSERT INTO forge_nb_dead_parents (job_id, error)
            VALUES (OLD.id, 'dependency ' || OLD.id || ' deleted')
            ON CONFLICT (job_id) DO UPDATE SET error = EXCLUDED.error;
        END IF;
    ELSE
        INSERT INTO forge_nb_dead_parents (job_id, error)
        VALUES (NEW.id, 'dependency ' || NEW.id || ' dead')
        ON CONFLICT (job_id) DO UPDATE SET error = EXCLUDED.error;
    END IF;
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_dead AFTER UPDATE OF status ON forge_nb_jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents AND NEW.status = 'dead' AND OLD.status <> 'dead')
    EXECUTE FUNCTION forge_nb_dependency_dead();
CREATE TRIGGER forge_nb_jobs_dependency_gone AFTER DELETE ON forge_nb_jobs
    FOR EACH ROW
    WHEN (OLD.dependencies > 0 OR OLD.has_dependents)
    EXECUTE FUNCTION forge_nb_dependency_dead();

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
