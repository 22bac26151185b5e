-- v11: workflows. A job may wait for other jobs (forge_nb_job_deps): status 'waiting' until
-- every dependency is done. Row triggers keep it in step in the transaction that finishes a
-- dependency: a done one takes one off its dependents' waiting_on (the last makes them
-- pending, and wakes the queue's claimers); a dead or deleted one queues its dependents'
-- cascade (forge_nb_dead_parents), which the leader finishes in bounded batches. Their WHEN
-- clauses test flags on the row itself, so plain jobs never call them.
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

CREATE FUNCTION forge_nb_dependency_done() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    woken bigint;
BEGIN
    WITH promoted AS (
        UPDATE forge_nb_jobs
        SET waiting_on = waiting_on - 1,
            status = CASE WHEN waiting_on <= 1 THEN 'pending' ELSE 'waiting' END
        WHERE status = 'waiting'
          AND id IN (SELECT job_id FROM forge_nb_job_deps WHERE depends_on = NEW.id)
        RETURNING queue, status
    )
    SELECT count(pg_notify('forge_nb_jobs', queue)) INTO woken
    FROM (SELECT DISTINCT queue FROM promoted WHERE status = 'pending') AS ready;
    RETURN NULL;
END
$$;
CREATE TRIGGER forge_nb_jobs_dependency_done AFTER UPDATE OF status ON forge_nb_jobs
    FOR EACH ROW
    WHEN (NEW.has_dependents AND NEW.status = 'done' AND OLD.status <> 'done')
    EXECUTE FUNCTION forge_nb_dependency_done();

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
