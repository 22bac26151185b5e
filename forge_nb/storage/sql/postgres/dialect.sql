-- Statements only the Postgres backend needs: the steps it takes its own way. Batches
-- travel as arrays (finish, the unique-key inserts, process slots), one statement does what
-- SQLite does a row at a time (reap, retry_where, delete_where), enqueues NOTIFY, rows are
-- locked FOR UPDATE, and the per-connection count shards are folded.
-- queries.sql holds the statements both dialects have in their own words, under the same
-- names; ../common.sql those written alike in both.

-- ensure_queue_rows --
-- Create the missing queues named in $1 (sorted: concurrent enqueuers lock in one order).
INSERT INTO forge_nb_queues (name) SELECT unnest($1::text[]) ON CONFLICT DO NOTHING

-- next_job_ids --
-- $1 new job ids, rising, drawn from the jobs' identity sequence (for a COPY that sets them;
-- the sequence is looked up once, not per id), and the missing queues named in $2 (sorted:
-- concurrent enqueuers lock in one order) created: one round trip before the COPY.
WITH new_queues AS (
    INSERT INTO forge_nb_queues (name) SELECT unnest($2::text[]) ON CONFLICT DO NOTHING
)
SELECT array_agg(nextval(s.seq) ORDER BY n)
FROM (SELECT pg_get_serial_sequence('forge_nb_jobs', 'id')::regclass AS seq) AS s,
     generate_series(1, $1) AS n

-- insert_job --
-- insert_jobs for a single job: plain VALUES, no arrays to build or unnest ($8: the minute,
-- $9: the code version). The queue row is created only when $10 (a queue this process has
-- not enqueued to yet). $12: queues to wake on channel $11, NOTIFYed by this statement (so
-- at its commit, with no round trip of its own); empty when the caller's notifier has sent
-- one within its gap (those wait for its next one).
WITH new_queue AS (
    INSERT INTO forge_nb_queues (name) SELECT $2 WHERE $10 ON CONFLICT DO NOTHING
),
inserted AS (
    INSERT INTO forge_nb_jobs
        (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version,
         created_at)
    VALUES ($1, $2, $3, $4, $5, $6, NULL, $9, $7)
    RETURNING id
),
counted AS (
    INSERT INTO forge_nb_metrics (minute, queue, host_id, enqueued)
    VALUES ($8, $2, '*' || pg_backend_pid(), 1)
    ON CONFLICT (minute, queue, host_id)
    DO UPDATE SET enqueued = forge_nb_metrics.enqueued + 1
),
counted_job AS (  -- the pending count (migration 8: inserts count themselves)
    INSERT INTO forge_nb_job_counts (queue, status, shard, n)
    VALUES ($2, 'pending', pg_backend_pid(), 1)
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = forge_nb_job_counts.n + 1
)
SELECT id, (SELECT count(pg_notify($11, q)) FROM unnest($12::text[]) AS q) FROM inserted

-- insert_jobs_unique --
-- As insert_jobs, skipping rows whose unique key a live job holds (each key at most once in $7).
WITH new_queues AS (
    INSERT INTO forge_nb_queues (name) SELECT unnest($10::text[]) ON CONFLICT DO NOTHING
),
inserted AS (
    {insert_job_rows}
    ON CONFLICT (unique_key)
        WHERE unique_key IS NOT NULL AND status IN ('waiting', 'pending', 'running', 'failed')
    DO NOTHING
    RETURNING id, unique_key, queue, status
),
{count_inserted}
SELECT id, unique_key FROM inserted

-- live_jobs_by_unique_keys --
SELECT unique_key, id, status FROM forge_nb_jobs
WHERE unique_key = ANY ($1::text[]) AND status IN ('waiting', 'pending', 'running', 'failed')

-- lock_key_slots --
-- A flow enqueue's concurrency keys ($1), locked in key order before its jobs take places:
-- batches sharing keys cannot deadlock (finish locks them in the same order).
SELECT key FROM forge_nb_key_slots WHERE key = ANY ($1::text[]) ORDER BY key FOR UPDATE

-- ensure_key_slots --
-- A flow enqueue's concurrency keys ($1, sorted) with their limits ($2): the missing slot
-- rows (existing ones are left alone, as ensure_key_slot does), one statement for the batch.
INSERT INTO forge_nb_key_slots (key, key_limit)
SELECT key, key_limit FROM unnest($1::text[], $2::int[]) AS k (key, key_limit) ORDER BY key
ON CONFLICT (key) DO NOTHING

-- retune_key_slots --
-- The batch's keys ($1) whose limit ($2) changed (their rows locked: lock_key_slots); a
-- raised one promotes held jobs (promote_held).
UPDATE forge_nb_key_slots AS s SET key_limit = k.key_limit
FROM unnest($1::text[], $2::int[]) AS k (key, key_limit)
WHERE s.key = k.key AND s.key_limit <> k.key_limit
RETURNING s.key

-- insert_flow_jobs --
-- A batch with flow options but no unique key (expiry, concurrency keys) in one statement,
-- after its keys were made and locked (take_keys). $1-$9 and $11 (the metric minute) as
-- insert_jobs, $10 expires_at and $12 concurrency keys per row. In input order,
-- each key's jobs take its free places (pending) and the rest are held ('waiting'), as the
-- same jobs enqueued one by one would be; the keys' admitted counts, the enqueued metric
-- and the live counts are added in the same statement. Ids and statuses in input order.
WITH t AS (
    SELECT t.*, row_number() OVER (PARTITION BY t.concurrency_key ORDER BY t.ord) AS place
    FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::bigint[],
                $7::text[], $8::text[], $10::float8[], $12::text[])
         WITH ORDINALITY AS t (kind, queue, payload, priority, scheduled_at, max_attempts,
                               unique_key, code_version, expires_at, concurrency_key, ord)
),
inserted AS (
    INSERT INTO forge_nb_jobs
        (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version,
         created_at, expires_at, concurrency_key, status)
    SELECT t.kind, t.queue, t.payload, t.priority, t.scheduled_at, t.max_attempts,
           t.unique_key, t.code_version, $9, t.expires_at, t.concurrency_key,
           CASE WHEN t.concurrency_key IS NULL OR t.place <= s.key_limit - s.active
                THEN 'pending' ELSE 'waiting' END
    FROM t LEFT JOIN forge_nb_key_slots AS s ON s.key = t.concurrency_key
    ORDER BY t.ord
    RETURNING id, queue, status, concurrency_key
),
admitted AS (
    UPDATE forge_nb_key_slots AS s SET active = s.active + a.n
    FROM (SELECT concurrency_key AS key, count(*) AS n FROM inserted
          WHERE concurrency_key IS NOT NULL AND status = 'pending'
          GROUP BY concurrency_key) AS a
    WHERE s.key = a.key
),
{count_inserted}
SELECT array_agg(id ORDER BY id), array_agg(status ORDER BY id) FROM inserted

-- {finish_runs} --
-- Apply a batch of outcomes to runs still owned by $1 with the same attempt count,
-- write the history events of the non-done ones, return the finalized ids. The concurrency
-- keys of the batch's jobs are locked first, in key order (the InitPlan runs before the
-- first job is locked): the key triggers then find them held, and two batches that share
-- keys cannot lock them in opposite orders (a deadlock). No keys anywhere: one probe.
-- Every job is found by its primary key, one lookup per outcome, whatever the statistics
-- say (from a never-analyzed table's estimate of one running row, a plain join scanned the
-- jobs and re-read the outcomes for each: quadratic in the batch):
-- - ``owned`` locks each run through a LATERAL subquery, which the lock keeps from being
--   merged into a join; (status || '') keeps it off the running-jobs index, which holds
--   every running job of this process;
-- - the UPDATE matches ``j.id = ANY (ARRAY[f.id])``, which no hash or merge join can use,
--   so the planner cannot trade the lookups for a scan of every job (a plain ``=`` let it
--   hash the whole table for each batch).
f AS (
    SELECT * FROM unnest($2::bigint[], $3::int[], $4::text[], $5::text[], $6::text[],
                         $7::text[], $8::text[], $9::float8[], $10::int[])
        AS f (id, attempt, status, event, result, error, traceback, scheduled_at, refund)
),
keys AS (
    SELECT s.key FROM forge_nb_key_slots AS s
    WHERE EXISTS (SELECT 1 FROM forge_nb_key_slots)
      AND s.key IN (
          SELECT j.concurrency_key FROM unnest($2::bigint[]) AS u (id)
          CROSS JOIN LATERAL (
              SELECT concurrency_key FROM forge_nb_jobs WHERE id = u.id OFFSET 0
          ) AS j
          WHERE j.concurrency_key IS NOT NULL)
    ORDER BY s.key
    FOR UPDATE OF s
),
owned AS MATERIALIZED (  -- locked in id order, as the reaper locks
    SELECT f.* FROM (SELECT * FROM f ORDER BY id) AS f
    CROSS JOIN LATERAL (
        SELECT 1 FROM forge_nb_jobs AS j
        WHERE j.id = f.id AND (j.status || '') = 'running' AND j.claimed_by = $1
          AND j.attempts = f.attempt
        FOR NO KEY UPDATE
    ) AS run
    WHERE (SELECT count(*) FROM keys) >= 0
),
finished AS (
    UPDATE forge_nb_jobs j SET
        status = f.status,
        result = CASE WHEN f.status = 'done' THEN f.result ELSE j.result END,
        last_error = CASE WHEN f.status = 'done' THEN j.last_error
                          ELSE coalesce(f.error, j.last_error) END,
        last_traceback = CASE WHEN f.status = 'done' THEN j.last_traceback ELSE f.traceback END,
        scheduled_at = CASE WHEN f.status = 'done' THEN j.scheduled_at
                            ELSE coalesce(f.scheduled_at, j.scheduled_at) END,
        attempts = CASE WHEN f.status = 'done' THEN j.attempts ELSE j.attempts - f.refund END,
        finished_at = $11
    FROM owned AS f
    WHERE j.id = ANY (ARRAY[f.id])  -- locked above: still this run's
    RETURNING j.id, f.event, f.attempt, f.error
),
events AS (
    INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message)
    SELECT id, $11, event, attempt, error FROM finished WHERE event <> 'done'
)

-- finish --
-- {finish_runs} of a batch of outcomes; the ids finalized.
WITH {finish_runs}
SELECT id FROM finished

-- finish_logged --
-- finish, and in the same statement the ended attempts' logs, each stored while its job
-- exists (a run taken back included). The logs' arrays run alongside the outcomes' ($2, $3):
-- $12 texts (NULL: that run logged nothing new), $13 lines, $14 dropped, $15 times. Four
-- arrays, not write_job_logs_batch's six: the job ids and attempts are already sent.
WITH {finish_runs},
logged AS (
    INSERT INTO forge_nb_job_logs (job_id, attempt, text, lines, dropped, updated_at)
    SELECT u.job_id, u.attempt, u.text, u.lines, u.dropped, u.updated_at
    FROM unnest($2::bigint[], $3::integer[], $12::text[], $13::integer[], $14::integer[],
                $15::double precision[]) AS u (job_id, attempt, text, lines, dropped, updated_at)
    WHERE u.text IS NOT NULL AND EXISTS (SELECT 1 FROM forge_nb_jobs AS j WHERE j.id = u.job_id)
    {log_upsert}
)
SELECT id FROM finished

-- fold_job_counts --
-- Move the count rows of connections that are gone into shard 0, so the rows stay few.
-- A connection that reappears under a recycled pid just adds to a fresh row. Returns how
-- many rows were folded.
WITH gone AS (
    DELETE FROM forge_nb_job_counts c
    WHERE c.shard <> 0
      AND NOT EXISTS (SELECT 1 FROM pg_stat_activity a WHERE a.pid = c.shard)
    RETURNING queue, status, n
),
folded AS (
    INSERT INTO forge_nb_job_counts (queue, status, shard, n)
    SELECT queue, status, 0, sum(n) FROM gone GROUP BY queue, status ORDER BY queue, status
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = forge_nb_job_counts.n + EXCLUDED.n
)
SELECT count(*) FROM gone

-- lock_job_status --
SELECT status FROM forge_nb_jobs WHERE id = $1 FOR UPDATE

-- reap --
-- Running jobs whose owner has no live slot (or is listed in $3) go back to the retry path.
-- A slot is live while it is silent for no longer than its own stale_after (else the
-- reaper's: heartbeated since $2). SKIP LOCKED: a concurrent reaper takes each job at most once.
-- The candidates' concurrency keys are locked first, in key order, before any job row (as
-- finish does): a reap and a finish sharing keys cannot deadlock.
WITH candidates AS (
    SELECT id, claimed_by, concurrency_key FROM forge_nb_jobs j
    WHERE status = 'running'
      AND (claimed_by IS NULL
           OR claimed_by = ANY ($3::text[])
           OR NOT EXISTS (SELECT 1 FROM forge_nb_processes p
                          WHERE p.host_id = j.claimed_by
                            AND p.last_heartbeat >= coalesce($1 - p.stale_after, $2)))
),
{lock_candidate_keys}
stale AS (
    SELECT j.id, j.claimed_by FROM forge_nb_jobs j JOIN candidates AS c ON c.id = j.id
    WHERE j.status = 'running' AND j.claimed_by IS NOT DISTINCT FROM c.claimed_by
      AND (SELECT count(*) FROM keys) >= 0
    ORDER BY j.id
    FOR UPDATE OF j SKIP LOCKED
),
reaped AS (
    UPDATE forge_nb_jobs j
    SET status = CASE WHEN j.attempts >= j.max_attempts THEN 'dead' ELSE 'failed' END,
        last_error = 'worker lost', last_traceback = NULL, finished_at = $1, scheduled_at = $1
    FROM stale
    WHERE j.id = stale.id AND (j.status || '') = 'running'  -- by primary key: see finish
    RETURNING j.id, j.kind, j.queue, j.status, stale.claimed_by, j.attempts
),
events AS (
    INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message)
    SELECT id, $1, 'worker_lost', attempts, 'worker lost' FROM reaped
)
SELECT id, kind, queue, status, claimed_by FROM reaped ORDER BY id

-- notify_queues --
-- Wake every process LISTENing on channel $1: one notification per queue name ($2).
SELECT pg_notify($1, q) FROM unnest($2::text[]) AS q

-- retry_where --
-- retry_many: lock the matching dead/failed jobs ({where}: the filter's terms), skip any
-- whose unique key another live job holds (and keep one per key), reset them, and record a
-- retried event ({now}: the time's parameter).
WITH candidates AS (
    SELECT id, unique_key FROM forge_nb_jobs
    WHERE {where}
      AND NOT EXISTS (  -- it would wait forever: a dead dependency must be retried first
          SELECT 1 FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
          WHERE d.job_id = forge_nb_jobs.id AND p.status = 'dead')
    ORDER BY id FOR UPDATE OF forge_nb_jobs
),
picked AS (
    SELECT id FROM candidates WHERE unique_key IS NULL
    UNION ALL
    SELECT min(c.id) FROM candidates c
    WHERE c.unique_key IS NOT NULL AND NOT EXISTS (
        SELECT 1 FROM forge_nb_jobs live
        WHERE live.unique_key = c.unique_key AND live.id <> c.id
          AND live.status IN ('waiting', 'pending', 'running', 'failed'))
    GROUP BY c.unique_key
),
retried AS (
    UPDATE forge_nb_jobs j
    SET status = 'pending', attempts = 0, scheduled_at = {now}, finished_at = NULL,
        cancel_requested_at = NULL, claimed_by = NULL
    FROM picked
    WHERE j.id = picked.id AND j.status IN ('dead', 'failed')
    RETURNING j.id, j.dependencies > 0
        OR EXISTS (SELECT 1 FROM forge_nb_job_deps AS e WHERE e.depends_on = j.id) AS in_workflow
),
events AS (
    INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message)
    SELECT id, {now}, 'retried', 0, NULL FROM retried ORDER BY id
)
SELECT (SELECT count(*) FROM retried), ARRAY(SELECT id FROM retried WHERE in_workflow)

-- delete_where --
-- delete_many: every matching non-running job ({where}: the filter's terms) and its history.
-- Their concurrency keys are locked first, in key order, as reap and expire_jobs do.
WITH candidates AS (
    SELECT id, concurrency_key FROM forge_nb_jobs WHERE {where} AND status <> 'running'
),
{lock_candidate_keys}
gone AS (
    DELETE FROM forge_nb_jobs
    WHERE id IN (SELECT id FROM candidates) AND status <> 'running'
      AND (SELECT count(*) FROM keys) >= 0
    RETURNING id
),
events AS (DELETE FROM forge_nb_job_events WHERE job_id IN (SELECT id FROM gone))
SELECT count(*) FROM gone

-- write_job_logs_batch --
-- write_job_log for many attempts in one statement (arrays, pairwise: job ids, attempts,
-- texts, lines, dropped, times); attempts of jobs deleted meanwhile are left out.
WITH u AS (
    SELECT * FROM unnest($1::bigint[], $2::integer[], $3::text[], $4::integer[],
                         $5::integer[], $6::double precision[])
        AS u (job_id, attempt, text, lines, dropped, updated_at)
)
{insert_logs_from_u}
{log_upsert}

-- {insert_logs_from_u} --
-- Attempts' logs from the rows of u, for jobs that exist.
INSERT INTO forge_nb_job_logs (job_id, attempt, text, lines, dropped, updated_at)
SELECT u.job_id, u.attempt, u.text, u.lines, u.dropped, u.updated_at
FROM u JOIN forge_nb_jobs AS j ON j.id = u.job_id

-- list_queue_status_arm --
-- One arm of list_queue_jobs: the queue's newest $3 jobs of one status below id $2. The status
-- as a one-value range, ordered by (status, id): only the (queue, status, id) index gives
-- that order, so the arm reads it (with status = '...', the planner could walk the primary
-- key back, expecting the queue's jobs spread evenly through the table).
SELECT * FROM (SELECT * FROM forge_nb_jobs
               WHERE queue = $1 AND status BETWEEN '{status}' AND '{status}' AND id < $2
               ORDER BY status DESC, id DESC LIMIT $3) AS {status}
