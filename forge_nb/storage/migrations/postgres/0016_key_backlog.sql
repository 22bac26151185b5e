-- v16: a key's backlog waits outside the claimable set (issue 20). A keyed job is *admitted*
-- (pending, failed or running) only while its key has fewer admitted jobs than its limit;
-- the others wait (status 'waiting', waiting_on 0: "held") and are out of the claim index,
-- so a claim never walks past the backlog of a busy key. A job leaving the admitted set
-- (done, dead, cancelled, expired, deleted) hands its key's place to the key's next held job
-- in the same transaction (claim order: priority, scheduled_at, id), or frees it when none
-- waits. The running count and its start check (v12) stay: the limit on running jobs stays
-- exact even while a lowered limit drains.
ALTER TABLE forge_nb_key_slots ADD COLUMN active integer NOT NULL DEFAULT 0;

-- A key's held jobs in promotion order (keyed waiting jobs only: plain jobs are not in it).
CREATE INDEX forge_nb_jobs_key_held ON forge_nb_jobs (concurrency_key, priority DESC, scheduled_at, id)
    WHERE status = 'waiting' AND waiting_on = 0 AND concurrency_key IS NOT NULL;

-- Existing backlogs: each key keeps its running and retrying jobs and its first pending ones
-- up to its limit; the rest are held. Then every key counts its admitted jobs.
WITH ranked AS (
    SELECT j.id, s.key_limit,
           count(*) FILTER (WHERE j.status IN ('running', 'failed'))
               OVER (PARTITION BY j.concurrency_key) AS busy,
           row_number() OVER (PARTITION BY j.concurrency_key, j.status = 'pending'
                              ORDER BY j.priority DESC, j.scheduled_at, j.id) AS place,
           j.status
    FROM forge_nb_jobs AS j JOIN forge_nb_key_slots AS s ON s.key = j.concurrency_key
    WHERE j.concurrency_key IS NOT NULL AND j.status IN ('pending', 'running', 'failed')
)
UPDATE forge_nb_jobs AS j SET status = 'waiting', waiting_on = 0
FROM ranked
WHERE j.id = ranked.id AND ranked.status = 'pending' AND ranked.busy + ranked.place > ranked.key_limit;

UPDATE forge_nb_key_slots AS s SET active = (
    SELECT count(*) FROM forge_nb_jobs AS j
    WHERE j.concurrency_key = s.key AND j.status IN ('pending', 'running', 'failed'));

-- Before a status change: admission (a job entering the admitted set, other than a held one
-- being promoted, takes a place, or is held when there is none: the row is written
-- 'waiting' instead), then v12's running count and start check. The admission's row lock
-- waits (no SKIP LOCKED): it must be exact, and a key's row is held only for one short
-- statement or transaction.
CREATE OR REPLACE FUNCTION forge_nb_key_slot() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' THEN
        IF OLD.concurrency_key IS NOT NULL AND OLD.status = 'running' THEN
            UPDATE forge_nb_key_slots SET running = greatest(0, running - 1)
            WHERE key = OLD.concurrency_key;
        END IF;
        RETURN OLD;
    END IF;
    IF NEW.concurrency_key IS NULL THEN
        RETURN NEW;
    END IF;
    IF NEW.status IN ('pending', 'failed', 'running')
       AND OLD.status NOT IN ('pending', 'failed', 'running')
       AND NOT (OLD.status = 'waiting' AND OLD.waiting_on = 0) THEN
        UPDATE forge_nb_key_slots SET active = active + 1
        WHERE key = NEW.concurrency_key AND active < key_limit;
        IF NOT FOUND THEN
            NEW.status := 'waiting';  -- held: the key's next free place promotes it
            RETURN NEW;
        END IF;
    END IF;
    IF (NEW.status = 'running') = (OLD.status = 'running') THEN
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

-- After a job left the admitted set (not into held: only admission writes that): its place
-- goes to the key's next held job (the place changes hands: no count changes), and the
-- queue's claimers are woken; with none waiting, or the key above a lowered limit, the
-- place is freed. Rows after the statement: a finish of many jobs of one key promotes as
-- many. A held row locked by another transaction (a cancel, a delete) is waited for and
-- re-checked; then the next one is tried.
CREATE FUNCTION forge_nb_key_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    next_id bigint;
    next_queue text;
BEGIN
    IF EXISTS (SELECT 1 FROM forge_nb_key_slots
               WHERE key = OLD.concurrency_key AND active <= key_limit) THEN
        FOR next_id IN
            SELECT id FROM forge_nb_jobs
            WHERE concurrency_key = OLD.concurrency_key AND status = 'waiting' AND waiting_on = 0
            ORDER BY priority DESC, scheduled_at, id
            LIMIT 5
        LOOP
            UPDATE forge_nb_jobs SET status = 'pending'
            WHERE id = next_id AND status = 'waiting' AND waiting_on = 0
            RETURNING queue INTO next_queue;
            IF FOUND THEN
                PERFORM pg_notify('forge_nb_jobs', next_queue);
                RETURN NULL;
            END IF;
        END LOOP;
    END IF;
    UPDATE forge_nb_key_slots SET active = greatest(0, active - 1)
    WHERE key = OLD.concurrency_key;
    RETURN NULL;
END
$$;

CREATE TRIGGER forge_nb_jobs_key_release AFTER UPDATE OF status ON forge_nb_jobs
    FOR EACH ROW WHEN (
        OLD.concurrency_key IS NOT NULL
        AND OLD.status IN ('pending', 'failed', 'running')
        AND NEW.status NOT IN ('pending', 'failed', 'running')
        AND NOT (NEW.status = 'waiting' AND NEW.waiting_on = 0))
    EXECUTE FUNCTION forge_nb_key_release();
CREATE TRIGGER forge_nb_jobs_key_release_gone AFTER DELETE ON forge_nb_jobs
    FOR EACH ROW WHEN (
        OLD.concurrency_key IS NOT NULL AND OLD.status IN ('pending', 'failed', 'running'))
    EXECUTE FUNCTION forge_nb_key_release();
