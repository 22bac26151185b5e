-- v17: a key's places change hands once per statement, not once per job (issue 20). In v16 a
-- finish of 50 keyed jobs ran, per job, a running-count UPDATE, a promotion UPDATE (each a
-- statement of its own, firing the count and dependency statement triggers again) and a
-- NOTIFY: most of a keyed drain's time. Now the row trigger keeps only what must be decided
-- row by row (admission, and the start check with its count), and one statement trigger per
-- statement gives back the running counts, hands each key's freed places to its next held
-- jobs in one UPDATE, frees the places nobody waits for and wakes each queue once. The
-- rules are v16's: a place freed while the key is above a lowered limit is freed, the others
-- go to held jobs in claim order (priority, scheduled_at, id); held rows another
-- transaction holds are waited for and re-checked, and the next ones taken instead.

DROP TRIGGER forge_nb_jobs_key_release ON forge_nb_jobs;
DROP TRIGGER forge_nb_jobs_key_release_gone ON forge_nb_jobs;

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
    IF NEW.status = 'running' AND OLD.status <> 'running' THEN
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
    END IF;
    RETURN NEW;
END
$$;

-- The row trigger now runs only for what it decides: an admission, or a start. A job leaving
-- running or the admitted set, and a held job promoted, are forge_nb_key_release's (per
-- statement), so they make no function call per row.
DROP TRIGGER forge_nb_jobs_key_slot ON forge_nb_jobs;
CREATE TRIGGER forge_nb_jobs_key_slot BEFORE UPDATE OF status ON forge_nb_jobs
    FOR EACH ROW WHEN (
        NEW.concurrency_key IS NOT NULL
        AND ((NEW.status = 'running' AND OLD.status <> 'running')
             OR (NEW.status IN ('pending', 'failed', 'running')
                 AND OLD.status NOT IN ('pending', 'failed', 'running')
                 AND NOT (OLD.status = 'waiting' AND OLD.waiting_on = 0))))
    EXECUTE FUNCTION forge_nb_key_slot();

-- The first $2[i] held jobs of key $1[i] in promotion order, locked (a row another
-- transaction holds is waited for and re-checked; one that is no longer held is passed
-- over for the next). Sorting is off for its plan: statistics from a table of mostly done
-- jobs make 'waiting' look rare, and the planner would then read every waiting job by the
-- status index and sort them for each key, instead of the head of the key's held range.
CREATE FUNCTION forge_nb_next_held(keys text[], wanted integer[]) RETURNS SETOF bigint
LANGUAGE plpgsql SET enable_sort = off AS $$
BEGIN
    RETURN QUERY
    SELECT h.id FROM unnest(keys, wanted) AS p (key, n)
    CROSS JOIN LATERAL (
        SELECT id FROM forge_nb_jobs
        WHERE concurrency_key = p.key AND status = 'waiting' AND waiting_on = 0
        ORDER BY priority DESC, scheduled_at, id
        LIMIT p.n
        FOR UPDATE
    ) AS h;
END
$$;

-- After each UPDATE or DELETE statement on the jobs: per key, the jobs that left running
-- and those that left the admitted set (not into held). Key rows are locked in key order (a
-- finish or reap locked them already, in the same order). Most statements move no keyed
-- job: one probe of the statement's old rows.
CREATE OR REPLACE FUNCTION forge_nb_key_release() RETURNS trigger LANGUAGE plpgsql AS $$
DECLARE
    keys text[];
    freed integer[];
    stopped integer[];
    handed_keys text[];
    handed integer[];
    ids bigint[] := '{}';
    woken integer;
BEGIN
    IF NOT EXISTS (SELECT 1 FROM old_rows
                   WHERE concurrency_key IS NOT NULL
                     AND status IN ('pending', 'failed', 'running')) THEN
        RETURN NULL;
    END IF;
    IF TG_OP = 'DELETE' THEN  -- a deleted running job's count went with its row (key_gone)
        SELECT array_agg(key ORDER BY key), array_agg(n ORDER BY key), array_agg(0)
        INTO keys, freed, stopped
        FROM (SELECT concurrency_key AS key, count(*)::integer AS n FROM old_rows
              WHERE concurrency_key IS NOT NULL AND status IN ('pending', 'failed', 'running')
              GROUP BY concurrency_key) AS m;
    ELSE
        SELECT array_agg(key ORDER BY key), array_agg(f ORDER BY key), array_agg(s ORDER BY key)
        INTO keys, freed, stopped
        FROM (
            SELECT o.concurrency_key AS key,
                   count(*) FILTER (
                       WHERE n.status NOT IN ('pending', 'failed', 'running')
                         AND NOT (n.status = 'waiting' AND n.waiting_on = 0))::integer AS f,
                   count(*) FILTER (
                       WHERE o.status = 'running' AND n.status <> 'running')::integer AS s
            FROM old_rows AS o JOIN new_rows AS n ON n.id = o.id
            WHERE o.concurrency_key IS NOT NULL AND o.status IN ('pending', 'failed', 'running')
            GROUP BY o.concurrency_key
        ) AS m
        WHERE f > 0 OR s > 0;
    END IF;
    IF keys IS NULL THEN
        RETURN NULL;
    END IF;
    -- Per key: the places that change hands (the others are freed: a lowered limit).
    SELECT array_agg(m.key ORDER BY m.key) FILTER (WHERE m.handed > 0),
           array_agg(m.handed ORDER BY m.key) FILTER (WHERE m.handed > 0)
    INTO handed_keys, handed
    FROM (
        SELECT m.key, m.freed - least(m.freed, greatest(0, s.active - s.key_limit)) AS handed
        FROM unnest(keys, freed) AS m (key, freed)
        JOIN (SELECT key, active, key_limit FROM forge_nb_key_slots
              WHERE key = ANY (keys) ORDER BY key FOR UPDATE) AS s ON s.key = m.key
    ) AS m;
    IF handed_keys IS NOT NULL THEN
        ids := ARRAY(SELECT forge_nb_next_held(handed_keys, handed));
    END IF;
    WITH promoted AS (
        UPDATE forge_nb_jobs SET status = 'pending'
        WHERE id = ANY (ids)
        RETURNING concurrency_key AS key, queue
    ),
    taken AS (
        SELECT key, count(*)::integer AS n FROM promoted GROUP BY key
    ),
    counted AS (  -- places not handed over are freed; jobs that stopped running counted
        UPDATE forge_nb_key_slots AS s
        SET active = greatest(0, s.active - (m.freed - coalesce(t.n, 0))),
            running = greatest(0, s.running - m.stopped)
        FROM unnest(keys, freed, stopped) AS m (key, freed, stopped)
        LEFT JOIN taken AS t ON t.key = m.key
        WHERE s.key = m.key AND (m.freed > coalesce(t.n, 0) OR m.stopped > 0)
    )
    SELECT count(pg_notify('forge_nb_jobs', queue)) INTO woken
    FROM (SELECT DISTINCT queue FROM promoted) AS ready;
    RETURN NULL;
END
$$;

CREATE TRIGGER forge_nb_jobs_key_release AFTER UPDATE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows NEW TABLE AS new_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_key_release();
CREATE TRIGGER forge_nb_jobs_key_release_gone AFTER DELETE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_key_release();
