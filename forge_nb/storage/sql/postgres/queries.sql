-- Statements both backends have, under the same names (dialect.sql: Postgres's own).
-- Parameters are numbered ($n); batches travel as arrays expanded with unnest().

-- {insert_job_rows} --
-- A batch of jobs from the arrays $1 … $8 (created at $9), inserted in input order
-- (ORDER BY ord: identities rise with it); the statement says what it returns.
INSERT INTO forge_nb_jobs
    (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version,
     created_at)
SELECT kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version,
       $9
FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[], $5::float8[], $6::bigint[],
            $7::text[], $8::text[])
     WITH ORDINALITY AS t (kind, queue, payload, priority, scheduled_at, max_attempts,
                           unique_key, code_version, ord)
ORDER BY ord

-- {count_inserted} --
-- The rows of ``inserted`` (id, queue, status) added to the minute's ($11) ``enqueued``
-- metric and to the live counts, queues in order so concurrent enqueuers cannot deadlock.
-- The rows' host and shard are the connection's backend pid: concurrent enqueuers on other
-- connections update other rows instead of queueing behind one row lock until each other's
-- commit.
counted AS (
    INSERT INTO forge_nb_metrics (minute, queue, host_id, enqueued)
    SELECT $11, queue, '*' || pg_backend_pid(), count(*)
    FROM inserted GROUP BY queue ORDER BY queue
    ON CONFLICT (minute, queue, host_id)
    DO UPDATE SET enqueued = forge_nb_metrics.enqueued + EXCLUDED.enqueued
),
counted_jobs AS (  -- migration 8: inserts count themselves
    INSERT INTO forge_nb_job_counts (queue, status, shard, n)
    SELECT queue, status, pg_backend_pid(), count(*)
    FROM inserted GROUP BY queue, status ORDER BY queue, status
    ON CONFLICT (queue, status, shard) DO UPDATE SET n = forge_nb_job_counts.n + EXCLUDED.n
)

-- {lock_candidate_keys} --
-- The concurrency keys of the jobs in ``candidates`` locked in key order, before the
-- statement locks any of those jobs (it joins ``(SELECT count(*) FROM keys) >= 0`` to its
-- job lock, so this runs first). Finish takes a key and then its next held job: a statement
-- ending several jobs that locked them first could deadlock with it (reap, expiry, delete).
keys AS (
    SELECT s.key FROM forge_nb_key_slots AS s
    WHERE s.key IN (SELECT concurrency_key FROM candidates WHERE concurrency_key IS NOT NULL)
    ORDER BY s.key
    FOR UPDATE OF s
),

-- {take_picked} --
-- A claim takes the rows of ``picked`` (claimer $4, now $2) and returns them as
-- `rows.claimed_job` reads them.
UPDATE forge_nb_jobs j
SET status = 'running', attempts = j.attempts + 1, claimed_by = $4, started_at = $2,
    cancel_requested_at = NULL, progress = NULL, progress_message = NULL,
    expires_at = NULL
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.kind, j.queue, j.payload, j.attempts, j.max_attempts, j.priority,
          j.created_at, j.scheduled_at, j.code_version, j.dependencies

-- insert_jobs --
-- A whole batch in one statement: create the missing queues ($10, sorted), insert the rows
-- and count them ({insert_job_rows}, {count_inserted}). The new ids come back as one sorted
-- array (one value to decode, not a row per job).
WITH new_queues AS (
    INSERT INTO forge_nb_queues (name) SELECT unnest($10::text[]) ON CONFLICT DO NOTHING
),
inserted AS (
    {insert_job_rows}
    RETURNING id, unique_key, queue, status
),
{count_inserted}
SELECT array_agg(id ORDER BY id) FROM inserted

-- count_enqueued --
-- $3 jobs inserted into each queue in $2 by COPY or insert_unique_job: the minute's ($1)
-- enqueued metric and the pending counts (insert_jobs does both in its own statement).
WITH counted AS (
    INSERT INTO forge_nb_metrics (minute, queue, host_id, enqueued)
    SELECT $1, queue, '*' || pg_backend_pid(), n
    FROM unnest($2::text[], $3::bigint[]) AS c (queue, n) ORDER BY queue
    ON CONFLICT (minute, queue, host_id)
    DO UPDATE SET enqueued = forge_nb_metrics.enqueued + EXCLUDED.enqueued
)
INSERT INTO forge_nb_job_counts (queue, status, shard, n)
SELECT queue, 'pending', pg_backend_pid(), n
FROM unnest($2::text[], $3::bigint[]) AS c (queue, n) ORDER BY queue
ON CONFLICT (queue, status, shard) DO UPDATE SET n = forge_nb_job_counts.n + EXCLUDED.n

-- insert_unique_job --
INSERT INTO forge_nb_jobs
    (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version,
     created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('waiting', 'pending', 'running', 'failed')
DO NOTHING
RETURNING id

-- live_job_by_unique_key --
SELECT id, status FROM forge_nb_jobs
WHERE unique_key = $1 AND status IN ('waiting', 'pending', 'running', 'failed')

-- claim --
-- Any kind (tools and tests; workers claim by kind with claim_kinds): lock the best runnable
-- jobs of one queue (skipping rows other claimers hold), then take them. The claim index
-- leads with (queue, kind), so this sorts the queue's runnable jobs: slow on a big backlog.
WITH picked AS (
    SELECT id FROM forge_nb_jobs
    WHERE queue = $1 AND {runnable}
      AND NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = $1 AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
{take_picked}

-- claim_kinds --
-- The claim of a process: the best runnable jobs of one queue ($1) among the kinds it runs.
-- The arms are one claim_arm per kind ($6, $7, …), joined by UNION ALL: each reads its kind's
-- range of the claim index in claim order, and a Merge Append interleaves them lazily, so
-- jobs of other kinds are never read however many wait ahead (Postgres 15 cannot return
-- the ranges of `kind = ANY (...)` in order). Each arm and the merge stop after $5 rows
-- (the claim's size plus room to skip rows that concurrent claimers hold). The LATERAL locks
-- the candidates one by one in that order, skipping locked ones, until $3 are taken; the
-- LATERAL keeps the join a nested loop that stops there (a hash join would read them all),
-- and finds each row by its ctid (a TID scan: no second index descent). It re-checks status
-- and time on the locked row version: a concurrent claim may have moved it.
WITH picked AS (
    SELECT l.id
    FROM (
        SELECT tid, id, priority, scheduled_at FROM (
            {arms}
        ) AS arms
        ORDER BY priority DESC, scheduled_at, id
        LIMIT $5
    ) AS c
    CROSS JOIN LATERAL (
        SELECT j.id FROM forge_nb_jobs j
        WHERE j.ctid = c.tid AND j.id = c.id
          AND j.status IN ('pending', 'failed') AND j.scheduled_at <= $2
        FOR UPDATE SKIP LOCKED
    ) AS l
    WHERE NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = $1 AND q.paused)
    LIMIT $3
)
{take_picked}

-- claim_arm --
-- One kind's runnable jobs in claim order (the kind a parameter; NULL pads, matching none).
-- Its own ORDER BY and LIMIT keep it an ordered index range under the merge.
(SELECT ctid AS tid, id, priority, scheduled_at FROM forge_nb_jobs
 WHERE queue = $1 AND kind = {kind} AND {runnable}
 ORDER BY priority DESC, scheduled_at, id
 LIMIT $5)

-- claim_arm_versions --
-- claim_arm less the shipped code versions this process cannot run ({excluded}: an array):
-- their jobs stay pending for a process that can. Only when there are such versions.
(SELECT ctid AS tid, id, priority, scheduled_at FROM forge_nb_jobs
 WHERE queue = $1 AND kind = {kind} AND {runnable}
   AND (code_version IS NULL OR code_version <> ALL ({excluded}::text[]))
 ORDER BY priority DESC, scheduled_at, id
 LIMIT $5)

-- release_claims --
-- Jobs that claims of one queue by one host at these times (started_at = the claim's now)
-- took although the claimer never heard back: pending again, the claim's attempt refunded.
UPDATE forge_nb_jobs
SET status = 'pending', attempts = attempts - 1, claimed_by = NULL, started_at = NULL
WHERE status = 'running' AND queue = $1 AND claimed_by = $2
  AND started_at = ANY ($3::float8[])
RETURNING id

-- update_progress --
-- Each running job found by its primary key and locked in id order, as finish finds its
-- runs (see {finish_runs}): no plan reads the whole table or re-reads the batch per job.
WITH running AS MATERIALIZED (
    SELECT u.* FROM (
        SELECT * FROM unnest($1::bigint[], $2::float8[], $3::text[]) AS u (id, progress, message)
        ORDER BY id
    ) AS u
    CROSS JOIN LATERAL (
        SELECT 1 FROM forge_nb_jobs AS j
        WHERE j.id = u.id AND (j.status || '') = 'running'
        FOR NO KEY UPDATE
    ) AS run
)
UPDATE forge_nb_jobs j SET progress = u.progress, progress_message = u.message
FROM running AS u
WHERE j.id = ANY (ARRAY[u.id])

-- insert_event --
INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message) VALUES ($1, $2, $3, $4, $5)

-- counts --
-- Kept by triggers (migration 8): the sum over connections' shards, never a scan of the jobs.
SELECT name, NULL::text, 0::bigint FROM forge_nb_queues
UNION ALL
SELECT queue, status, sum(n)::bigint FROM forge_nb_job_counts
GROUP BY queue, status HAVING sum(n) <> 0

-- job_status --
SELECT status FROM forge_nb_jobs WHERE id = $1

-- retry --
UPDATE forge_nb_jobs
SET status = 'pending', attempts = 0, scheduled_at = $2, finished_at = NULL,
    cancel_requested_at = NULL, claimed_by = NULL
WHERE id = $1 AND status IN ('dead', 'failed')
RETURNING dependencies,
    EXISTS (SELECT 1 FROM forge_nb_job_deps WHERE depends_on = forge_nb_jobs.id)

-- delete_job --
WITH gone AS (
    DELETE FROM forge_nb_jobs WHERE id = $1 AND status <> 'running' RETURNING id, status
),
events AS (DELETE FROM forge_nb_job_events WHERE job_id IN (SELECT id FROM gone))
SELECT status FROM gone

-- cancel_waiting --
UPDATE forge_nb_jobs SET status = 'dead', last_error = 'cancelled', last_traceback = NULL,
       finished_at = $2, cancel_requested_at = $2
WHERE id = $1 AND status IN ('waiting', 'pending', 'failed')
RETURNING attempts

-- cancel_running --
UPDATE forge_nb_jobs SET cancel_requested_at = coalesce(cancel_requested_at, $2)
WHERE id = $1 AND status = 'running'

-- ensure_queue_row --
INSERT INTO forge_nb_queues (name) VALUES ($1) ON CONFLICT DO NOTHING

-- queue_config --
SELECT name, workers, paused, backoff_enabled, backoff_base_seconds, backoff_max_seconds,
       backoff_jitter, retain_done_seconds, retain_dead_seconds, global_limit
FROM forge_nb_queues WHERE name = $1

-- register_process --
INSERT INTO forge_nb_processes
    (id, host_id, hostname, pid, queue, current_job, last_heartbeat, started_at, version, kinds,
     stale_after)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
ON CONFLICT (id) DO UPDATE SET
    host_id = EXCLUDED.host_id, hostname = EXCLUDED.hostname, pid = EXCLUDED.pid,
    queue = EXCLUDED.queue, current_job = EXCLUDED.current_job,
    last_heartbeat = EXCLUDED.last_heartbeat, started_at = EXCLUDED.started_at,
    version = EXCLUDED.version, kinds = EXCLUDED.kinds, stale_after = EXCLUDED.stale_after

-- unregister_processes --
DELETE FROM forge_nb_processes WHERE id = ANY ($1::text[])

-- heartbeat_host --
-- kinds ($3) only when given: the process's handlers changed.
UPDATE forge_nb_processes SET last_heartbeat = $1, kinds = coalesce($3::text[], kinds)
WHERE host_id = $2

-- stranded_kinds --
-- Kinds with jobs waiting (pending or failed) in a queue where no live process runs them:
-- no slot row of that queue that heartbeated since $1 lists the kind. The (queue, kind)
-- pairs come from a skip scan of the claim index (one descent per pair, however many jobs
-- each has). At most $3 stranded pairs, each counted up to $2.
WITH RECURSIVE pairs AS (
    (SELECT queue, kind FROM forge_nb_jobs
     WHERE status IN ('pending', 'failed') ORDER BY queue, kind LIMIT 1)
    UNION ALL
    SELECT nxt.queue, nxt.kind
    FROM pairs AS p
    CROSS JOIN LATERAL (
        SELECT queue, kind FROM forge_nb_jobs
        WHERE status IN ('pending', 'failed') AND (queue, kind) > (p.queue, p.kind)
        ORDER BY queue, kind LIMIT 1
    ) AS nxt
),
live AS (
    SELECT DISTINCT queue COLLATE "C" AS queue, unnest(kinds) AS kind
    FROM forge_nb_processes WHERE last_heartbeat >= $1
),
stranded AS (
    SELECT queue, kind FROM pairs AS p
    WHERE NOT EXISTS (SELECT 1 FROM live WHERE live.queue = p.queue AND live.kind = p.kind)
    ORDER BY queue, kind
    LIMIT $3
)
SELECT s.queue, s.kind, (
    SELECT count(*) FROM (
        SELECT 1 FROM forge_nb_jobs j
        WHERE j.queue = s.queue AND j.kind = s.kind AND j.status IN ('pending', 'failed')
        LIMIT $2
    ) AS waiting
)
FROM stranded AS s
ORDER BY s.queue, s.kind

-- delete_stale_processes --
-- Slots silent for longer than their own stale_after at $3 (else than the reaper's, since $1).
DELETE FROM forge_nb_processes
WHERE last_heartbeat < coalesce($3 - stale_after, $1) OR host_id = ANY ($2::text[])

-- upsert_schedule --
INSERT INTO forge_nb_schedules (name, cron, kind, payload, queue, enabled, tz, next_fire_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
ON CONFLICT (name) DO UPDATE SET
    cron = EXCLUDED.cron, kind = EXCLUDED.kind, payload = EXCLUDED.payload,
    queue = EXCLUDED.queue, enabled = EXCLUDED.enabled, tz = EXCLUDED.tz,
    next_fire_at = EXCLUDED.next_fire_at
RETURNING name, cron, kind, payload, queue, enabled, tz, last_fire_at, next_fire_at

-- acquire_lease --
INSERT INTO forge_nb_leases (name, holder, expires_at) VALUES ($1, $2, $3)
ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder, expires_at = EXCLUDED.expires_at
WHERE forge_nb_leases.holder = EXCLUDED.holder OR forge_nb_leases.expires_at < $4
RETURNING holder

-- ensure_rate_limit --
INSERT INTO forge_nb_rate_limits (scope, capacity, refill_per_second, tokens, updated_at)
VALUES ($1, $2, $3, $2, $4)
ON CONFLICT (scope) DO UPDATE SET
    capacity = EXCLUDED.capacity, refill_per_second = EXCLUDED.refill_per_second,
    tokens = least(forge_nb_rate_limits.tokens, EXCLUDED.capacity)
RETURNING scope, capacity, refill_per_second, tokens, updated_at, held_until

-- take_tokens --
-- Refill and take in one statement: concurrent takers re-check the newest row version.
UPDATE forge_nb_rate_limits
SET tokens = least(capacity, tokens + greatest(0.0, $3 - updated_at) * refill_per_second) - $2,
    updated_at = $3
WHERE scope = $1 AND held_until <= $3 AND $2 > 0 AND $2 <= capacity
  AND least(capacity, tokens + greatest(0.0, $3 - updated_at) * refill_per_second) >= $2
RETURNING scope

-- {metric_values_from_excluded} --
-- An upsert of a metric row replaces all its counters and histograms.
enqueued = EXCLUDED.enqueued, started = EXCLUDED.started, completed = EXCLUDED.completed,
failed = EXCLUDED.failed, retried = EXCLUDED.retried, throttled = EXCLUDED.throttled,
dead = EXCLUDED.dead, processing_hist = EXCLUDED.processing_hist,
e2e_hist = EXCLUDED.e2e_hist

-- write_metrics --
INSERT INTO forge_nb_metrics
    (minute, queue, host_id, {metric_columns})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (minute, queue, host_id) DO UPDATE SET
    {metric_values_from_excluded}

-- read_metrics --
SELECT minute, queue, host_id, {metric_columns}
FROM forge_nb_metrics
WHERE minute BETWEEN $1 AND $2 AND ($3::text IS NULL OR queue = $3)
ORDER BY minute, queue, host_id

-- sum_metrics --
SELECT minute / $1 * $1 AS bucket, queue, '*', SUM(enqueued)::bigint, SUM(started)::bigint,
       SUM(completed)::bigint, SUM(failed)::bigint, SUM(retried)::bigint,
       SUM(throttled)::bigint, SUM(dead)::bigint, '{}', '{}'
FROM forge_nb_metrics
WHERE minute BETWEEN $2 AND $3 AND ($4::text IS NULL OR queue = $4)
GROUP BY bucket, queue
ORDER BY bucket, queue

-- {sum_histograms} --
-- Both latency histograms of the rows ``m`` added up bucket by bucket (0 = processing,
-- 1 = end-to-end). ``m`` is NOT MATERIALIZED: each half reads the rows through its index.
SELECT 0, h.key::int, SUM(h.value::bigint)::bigint
FROM m, jsonb_each_text(m.processing_hist::jsonb) AS h
GROUP BY 2
UNION ALL
SELECT 1, h.key::int, SUM(h.value::bigint)::bigint
FROM m, jsonb_each_text(m.e2e_hist::jsonb) AS h
GROUP BY 2

-- sum_histograms_minutes --
WITH m AS NOT MATERIALIZED (
    SELECT processing_hist, e2e_hist FROM forge_nb_metrics
    WHERE minute BETWEEN $1 AND $2 AND ($3::text IS NULL OR queue = $3)
)
{sum_histograms}

-- sum_histograms_rollups --
WITH m AS NOT MATERIALIZED (
    SELECT processing_hist, e2e_hist FROM forge_nb_metric_rollups
    WHERE minute BETWEEN $1 AND $2 AND ($3::text IS NULL OR queue = $3) AND step = $4
)
{sum_histograms}

-- purge_jobs --
-- The outer status/finished_at test is re-checked on rows changed concurrently (a retry).
WITH gone AS (
    DELETE FROM forge_nb_jobs
    WHERE id IN (SELECT id FROM forge_nb_jobs
                 WHERE queue = $1 AND status = $2 AND finished_at < $3
                 LIMIT $4)
      AND status = $2 AND finished_at < $3
    RETURNING id
),
events AS (DELETE FROM forge_nb_job_events WHERE job_id IN (SELECT id FROM gone))
SELECT count(*) FROM gone

-- write_rollup --
INSERT INTO forge_nb_metric_rollups
    (step, minute, queue, {metric_columns})
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)
ON CONFLICT (step, minute, queue) DO UPDATE SET
    {metric_values_from_excluded}

-- write_rollup_mark --
INSERT INTO forge_nb_rollup_marks (step, through) VALUES ($1, $2)
ON CONFLICT (step) DO UPDATE SET through = EXCLUDED.through

-- read_rollups --
SELECT minute, queue, '*', {metric_columns}
FROM forge_nb_metric_rollups
WHERE step = $1 AND minute BETWEEN $2 AND $3 AND ($4::text IS NULL OR queue = $4)
ORDER BY minute, queue

-- purge_metrics --
-- Metrics and samples share the retention cutoff; returns how many rows went.
WITH metrics AS (DELETE FROM forge_nb_metrics WHERE minute < $1 RETURNING 1),
     rollups AS (DELETE FROM forge_nb_metric_rollups WHERE minute < $1 RETURNING 1),
     samples AS (DELETE FROM forge_nb_samples WHERE minute < $1 RETURNING 1)
SELECT (SELECT count(*) FROM metrics) + (SELECT count(*) FROM rollups)
     + (SELECT count(*) FROM samples)

-- fire_schedule --
-- Compare-and-set on next_fire_at: only one process can advance a given tick.
UPDATE forge_nb_schedules SET last_fire_at = $3, next_fire_at = $4
WHERE name = $1 AND next_fire_at = $2 AND enabled
RETURNING name

-- write_sample --
INSERT INTO forge_nb_samples (minute, host_id, kind, data) VALUES ($1, $2, $3, $4)
ON CONFLICT (kind, minute, host_id) DO UPDATE SET data = EXCLUDED.data

-- insert_job_tag --
-- Every tag of a batch in one statement ($1, $2: tags and their job ids, pairwise).
INSERT INTO forge_nb_job_tags (tag, job_id)
SELECT * FROM unnest($1::text[], $2::bigint[]) ON CONFLICT DO NOTHING

-- job_tags --
-- The tags of a page of jobs ($1: an array of ids).
SELECT job_id, tag FROM forge_nb_job_tags WHERE job_id = ANY($1::bigint[]) ORDER BY job_id, tag

-- insert_job_context --
-- Every context of a batch in one statement ($1, $2: job ids and their contexts, pairwise).
INSERT INTO forge_nb_job_context (job_id, context)
SELECT * FROM unnest($1::bigint[], $2::text[])

-- job_contexts --
-- The contexts of some jobs ($1: an array of ids).
SELECT job_id, context FROM forge_nb_job_context WHERE job_id = ANY($1::bigint[])

-- payload_search_term --
-- A job filter's payload search ({p}: the ILIKE pattern). COLLATE "C": fold ASCII case only,
-- whatever the database locale (as SQLite's LIKE).
(payload COLLATE "C") ILIKE {p} ESCAPE '\'

-- dependency_statuses --
-- The statuses of new jobs' dependencies, share-locked in id order: a dependency cannot
-- finish between this read and the new edges' commit (its trigger must see them).
SELECT id, status FROM forge_nb_jobs WHERE id = ANY ($1::bigint[]) ORDER BY id FOR SHARE

-- insert_dependency --
-- Every edge of a batch in one statement ($1, $2: job ids and their dependencies, pairwise).
INSERT INTO forge_nb_job_deps (job_id, depends_on)
SELECT * FROM unnest($1::bigint[], $2::bigint[])

-- settle_new_dependent --
-- A new job with dependencies: waiting for the unmet ones, or dead at once (a dead one).
-- Each by its primary key: ``= ANY (ARRAY[u.id])`` keeps a hash join over every job out.
UPDATE forge_nb_jobs AS j
SET dependencies = u.dependencies, waiting_on = u.waiting_on, status = u.status,
    last_error = u.error, finished_at = u.finished_at
FROM unnest($1::bigint[], $2::int[], $3::int[], $4::text[], $5::text[], $6::float8[])
    AS u (id, dependencies, waiting_on, status, error, finished_at)
WHERE j.id = ANY (ARRAY[u.id])

-- graph_edges --
-- Edges touching any of these jobs, both directions.
SELECT job_id, depends_on FROM forge_nb_job_deps
WHERE job_id = ANY ($1::bigint[])
UNION
SELECT job_id, depends_on FROM forge_nb_job_deps
WHERE depends_on = ANY ($1::bigint[])

-- graph_nodes --
SELECT id, kind, queue, status, last_error FROM forge_nb_jobs
WHERE id = ANY ($1::bigint[]) ORDER BY id

-- dead_parents_batch --
SELECT job_id, error FROM forge_nb_dead_parents ORDER BY job_id LIMIT $1
FOR UPDATE SKIP LOCKED

-- promote_held --
-- Held jobs of key $1, in claim order, take the places its raised limit freed (a promotion
-- is not counted by the trigger: count_promoted adds them).
WITH picked AS (
    SELECT id FROM forge_nb_jobs
    WHERE concurrency_key = $1 AND status = 'waiting' AND waiting_on = 0
    ORDER BY priority DESC, scheduled_at, id
    LIMIT (SELECT greatest(0, key_limit - active) FROM forge_nb_key_slots WHERE key = $1)
    FOR UPDATE
)
UPDATE forge_nb_jobs AS j SET status = 'pending'
FROM picked
WHERE j.id = picked.id AND j.status = 'waiting' AND j.waiting_on = 0
RETURNING j.id

-- expire_jobs --
-- Jobs not started by their expires_at (at most $2, the earliest first): dead, "expired".
-- Rows a claimer holds are skipped (it re-checks and leaves them). The candidates'
-- concurrency keys are locked first, in key order, before any job row (as finish and reap
-- do): a batch holding a key's held and admitted jobs cannot deadlock with a finish of
-- that key, which holds the key and then takes its next held job.
WITH candidates AS (
    SELECT id, concurrency_key FROM forge_nb_jobs
    WHERE expires_at IS NOT NULL AND expires_at <= $1
      AND status IN ('waiting', 'pending', 'failed')
    ORDER BY expires_at
    LIMIT $2
),
{lock_candidate_keys}
picked AS (
    SELECT j.id FROM forge_nb_jobs AS j JOIN candidates AS c ON c.id = j.id
    WHERE j.expires_at IS NOT NULL AND j.expires_at <= $1
      AND j.status IN ('waiting', 'pending', 'failed')
      AND (SELECT count(*) FROM keys) >= 0
    FOR UPDATE OF j SKIP LOCKED
)
UPDATE forge_nb_jobs AS j
SET status = 'dead', last_error = 'expired', last_traceback = NULL, finished_at = $1,
    expires_at = NULL
FROM picked
WHERE j.id = picked.id
RETURNING j.id, j.queue


-- retune_template_buckets --
-- The live buckets made from template $1 take its new settings (tokens capped).
UPDATE forge_nb_rate_limits
SET capacity = $2, refill_per_second = $3, tokens = least(tokens, $2)
WHERE template = $1

-- ensure_queue_slots --
-- Slot rows 0 … $2-1 of queue $1 (global_limit).
WITH RECURSIVE s (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < $2)
INSERT INTO forge_nb_queue_slots (queue, slot)
SELECT $1, n FROM s
ON CONFLICT DO NOTHING

-- release_queue_slots --
-- Process $2 gives back $3 of its slots of queue $1, the highest first.
WITH picked AS MATERIALIZED (
    SELECT slot FROM forge_nb_queue_slots
    WHERE queue = $1 AND holder = $2
    ORDER BY slot DESC
    LIMIT $3
)
UPDATE forge_nb_queue_slots AS s
SET holder = NULL
FROM picked
WHERE s.queue = $1 AND s.slot = picked.slot AND s.holder = $2

-- take_queue_slots --
-- Process $2 takes up to $3 free slots of queue $1 under the limit $4 (rows another process
-- is taking are skipped); the outer check keeps a slot another process took meanwhile.
WITH picked AS MATERIALIZED (
    SELECT slot FROM forge_nb_queue_slots
    WHERE queue = $1 AND holder IS NULL AND slot < $4
    ORDER BY slot
    LIMIT $3
    FOR UPDATE SKIP LOCKED
)
UPDATE forge_nb_queue_slots AS s
SET holder = $2
FROM picked
WHERE s.queue = $1 AND s.slot = picked.slot AND s.holder IS NULL
RETURNING s.slot

-- list_queue_jobs --
-- list_jobs for a queue ($1) alone: the page newest first below id $2, read one status at a
-- time from the (queue, status, id) index, each range backwards and stopped after $3 rows,
-- the ranges merged (at most $3 rows each). So no (queue, id) index has to be written by
-- every enqueue (migration 15). The arms, one list_queue_status_arm per status of
-- records.STATUSES, are written in by `postgres_statements`. Each status is its own: given
-- the status as a value (a LATERAL over a list), the planner could not tell an empty status
-- from a full one and walked the primary key back through the whole table for each empty
-- one; one LATERAL arm with the range below was no answer either (not knowing the status,
-- it guessed a few rows and read the status's whole range into a sort).
SELECT {job_columns} FROM ({status_arms}) AS j
ORDER BY id DESC LIMIT $3

-- list_status_jobs --
-- list_jobs for a status ($1) alone: the page newest first below id $2, read backwards from
-- the (status, id) index (SQLite, without that index, reads it queue by queue).
SELECT {job_columns} FROM forge_nb_jobs
WHERE status = $1 AND id < $2
ORDER BY id DESC LIMIT $3
