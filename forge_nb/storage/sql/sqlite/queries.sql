-- Statements both backends have, under the same names (dialect.sql: SQLite's own).
-- Parameters: numbered (?1, ?2, …) in the order of the Postgres twin wherever the SQL core
-- (storage/core.py) runs the statement; positional (?) in the backend's own steps.

-- {take_jobs} --
-- A claim takes the jobs its WHERE picks (claimer ?1, now ?2).
UPDATE forge_nb_jobs
SET status = 'running', attempts = attempts + 1, claimed_by = ?1, started_at = ?2,
    cancel_requested_at = NULL, progress = NULL, progress_message = NULL,
    expires_at = NULL

-- {claimed_columns} --
-- What a claim returns of each job it took, as `rows.claimed_job` reads it.
id, kind, queue, payload, attempts, max_attempts, priority, created_at, scheduled_at,
code_version, dependencies

-- ensure_queue_row --
INSERT OR IGNORE INTO forge_nb_queues (name) VALUES (?)

-- insert_jobs --
-- Many key-less jobs in one statement ({rows}: one (?, …) group of 9 per job).
INSERT INTO forge_nb_jobs (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version, created_at)
VALUES {rows}

-- insert_unique_job --
INSERT INTO forge_nb_jobs (kind, queue, payload, priority, scheduled_at, max_attempts, unique_key, code_version, created_at)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (unique_key) WHERE unique_key IS NOT NULL AND status IN ('waiting', 'pending', 'running', 'failed')
DO NOTHING

-- count_enqueued --
-- Enqueue counts go to a shared '*' row per minute and queue, in the enqueue's own transaction.
INSERT INTO forge_nb_metrics (minute, queue, host_id, enqueued) VALUES (?, ?, '*', ?)
ON CONFLICT (minute, queue, host_id) DO UPDATE SET enqueued = enqueued + excluded.enqueued

-- live_job_by_unique_key --
SELECT id, status FROM forge_nb_jobs
WHERE unique_key = ? AND status IN ('waiting', 'pending', 'running', 'failed')

-- claim --
-- Any kind (tools and tests; workers claim by kind with claim_kinds): the best runnable
-- jobs of one queue to running in one statement. The claim index leads with (queue, kind),
-- so this sorts the queue's runnable jobs: slow on a big backlog.
{take_jobs}
WHERE id IN (
    SELECT id FROM forge_nb_jobs
    WHERE queue = ?3 AND {runnable}
      AND NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = ?3 AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT ?4
)
RETURNING {claimed_columns}

-- claim_kinds --
-- The claim of a process: the best runnable jobs of one queue (?3) among the kinds it runs,
-- to running in one statement. The arms are one claim_arm per kind (?5, ?6, …) joined by
-- UNION ALL: each reads its kind's range of the claim index in claim order and the compound
-- ORDER BY merges them (MERGE (UNION ALL), no sort), stopping after ?4 rows. Jobs of other
-- kinds are never read, however many wait ahead.
{take_jobs}
WHERE id IN (
    SELECT id FROM ({arms} ORDER BY priority DESC, scheduled_at, id LIMIT ?4)
    WHERE NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = ?3 AND q.paused)
)
RETURNING {claimed_columns}

-- claim_arm --
-- One kind's runnable jobs in claim order (the kind a parameter; NULL pads, matching none).
SELECT id, priority, scheduled_at FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
WHERE queue = ?3 AND kind = {kind} AND {runnable}

-- claim_arm_versions --
-- claim_arm less the shipped code versions this process cannot run ({excluded}: a JSON
-- array): their jobs stay pending for a process that can. Only when there are such
-- versions; it reads each row's code_version, which the index does not hold.
SELECT id, priority, scheduled_at FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
WHERE queue = ?3 AND kind = {kind} AND {runnable}
  AND (code_version IS NULL OR code_version NOT IN (SELECT value FROM json_each({excluded})))

-- release_claims --
-- Jobs that a claim of one queue by one host at this time (started_at = the claim's now)
-- took although the claimer never heard back: pending again, the claim's attempt refunded.
UPDATE forge_nb_jobs
SET status = 'pending', attempts = attempts - 1, claimed_by = NULL, started_at = NULL
WHERE status = 'running' AND queue = ? AND claimed_by = ? AND started_at = ?
RETURNING id

-- insert_event --
INSERT INTO forge_nb_job_events (job_id, at, event, attempt, message) VALUES (?, ?, ?, ?, ?)

-- update_progress --
UPDATE forge_nb_jobs SET progress = ?, progress_message = ? WHERE id = ? AND status = 'running'

-- counts --
-- Kept by triggers (migration 7): one row per queue and status, never a scan of the jobs.
SELECT queue, status, n FROM forge_nb_job_counts WHERE n <> 0

-- retry --
UPDATE forge_nb_jobs
SET status = 'pending', attempts = 0, scheduled_at = ?, finished_at = NULL,
    cancel_requested_at = NULL, claimed_by = NULL
WHERE id = ? AND status IN ('dead', 'failed')
RETURNING dependencies,
    EXISTS (SELECT 1 FROM forge_nb_job_deps WHERE depends_on = forge_nb_jobs.id)

-- job_status --
SELECT status FROM forge_nb_jobs WHERE id = ?

-- delete_job --
DELETE FROM forge_nb_jobs WHERE id = ? AND status <> 'running'

-- cancel_waiting --
UPDATE forge_nb_jobs SET status = 'dead', last_error = 'cancelled', last_traceback = NULL,
       finished_at = ?, cancel_requested_at = ?
WHERE id = ? AND status IN ('waiting', 'pending', 'failed')
RETURNING attempts

-- cancel_running --
UPDATE forge_nb_jobs SET cancel_requested_at = coalesce(cancel_requested_at, ?)
WHERE id = ? AND status = 'running'

-- queue_config --
SELECT name, workers, paused, backoff_enabled, backoff_base_seconds, backoff_max_seconds,
       backoff_jitter, retain_done_seconds, retain_dead_seconds, global_limit
FROM forge_nb_queues WHERE name = ?

-- register_process --
INSERT OR REPLACE INTO forge_nb_processes
    (id, host_id, hostname, pid, queue, current_job, last_heartbeat, started_at, version, kinds,
     stale_after)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)

-- unregister_processes --
DELETE FROM forge_nb_processes WHERE id IN (SELECT value FROM json_each(?1))

-- heartbeat_host --
-- kinds (a JSON array) only when given: the process's handlers changed.
UPDATE forge_nb_processes SET last_heartbeat = ?1, kinds = coalesce(?3, kinds) WHERE host_id = ?2

-- stranded_kinds --
-- Kinds with jobs waiting (pending or failed) in a queue where no live process runs them:
-- no slot row of that queue that heartbeated since ?1 lists the kind. The (queue, kind)
-- pairs come from a skip scan of the claim index: each step seeks the next kind of the same
-- queue, else the first of the next queue (two index seeks, however many jobs each pair
-- has; a row-value seek would scan the rest of the queue). At most ?3 stranded pairs, each
-- counted up to ?2.
WITH RECURSIVE pairs(queue, kind) AS (
    SELECT queue, kind FROM (
        SELECT queue, kind FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
        WHERE status IN ('pending', 'failed') ORDER BY queue, kind LIMIT 1
    )
    UNION ALL
    SELECT j.queue, j.kind FROM pairs AS p JOIN forge_nb_jobs AS j ON j.id = coalesce(
        (SELECT id FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
         WHERE status IN ('pending', 'failed') AND queue = p.queue AND kind > p.kind
         ORDER BY queue, kind LIMIT 1),
        (SELECT id FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
         WHERE status IN ('pending', 'failed') AND queue > p.queue
         ORDER BY queue, kind LIMIT 1)
    )
),
live(queue, kind) AS (
    SELECT DISTINCT p.queue, k.value FROM forge_nb_processes AS p, json_each(p.kinds) AS k
    WHERE p.last_heartbeat >= ?1
),
stranded AS (
    SELECT queue, kind FROM pairs AS p
    WHERE NOT EXISTS (SELECT 1 FROM live WHERE live.queue = p.queue AND live.kind = p.kind)
    ORDER BY queue, kind
    LIMIT ?3
)
SELECT s.queue, s.kind, (
    SELECT count(*) FROM (
        SELECT 1 FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
        WHERE queue = s.queue AND kind = s.kind AND status IN ('pending', 'failed')
        LIMIT ?2
    )
)
FROM stranded AS s
ORDER BY s.queue, s.kind

-- delete_stale_processes --
-- Slots silent for longer than their own stale_after at ?3 (else than the reaper's, since ?1).
DELETE FROM forge_nb_processes
WHERE last_heartbeat < coalesce(?3 - stale_after, ?1) OR host_id IN (SELECT value FROM json_each(?2))

-- upsert_schedule --
INSERT INTO forge_nb_schedules (name, cron, kind, payload, queue, enabled, tz, next_fire_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
ON CONFLICT (name) DO UPDATE SET
    cron = excluded.cron, kind = excluded.kind, payload = excluded.payload,
    queue = excluded.queue, enabled = excluded.enabled, tz = excluded.tz,
    next_fire_at = excluded.next_fire_at
RETURNING name, cron, kind, payload, queue, enabled, tz, last_fire_at, next_fire_at

-- acquire_lease --
INSERT INTO forge_nb_leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE forge_nb_leases.holder = excluded.holder OR forge_nb_leases.expires_at < ?4
RETURNING holder

-- ensure_rate_limit --
INSERT INTO forge_nb_rate_limits (scope, capacity, refill_per_second, tokens, updated_at)
VALUES (?1, ?2, ?3, ?2, ?4)
ON CONFLICT (scope) DO UPDATE SET
    capacity = excluded.capacity, refill_per_second = excluded.refill_per_second,
    tokens = min(forge_nb_rate_limits.tokens, excluded.capacity)
RETURNING scope, capacity, refill_per_second, tokens, updated_at, held_until

-- take_tokens --
-- Refill and take in one statement (the refill rule of storage/rules.py, in SQL).
UPDATE forge_nb_rate_limits
SET tokens = min(capacity, tokens + max(0.0, ?3 - updated_at) * refill_per_second) - ?2,
    updated_at = ?3
WHERE scope = ?1 AND held_until <= ?3 AND ?2 > 0 AND ?2 <= capacity
  AND min(capacity, tokens + max(0.0, ?3 - updated_at) * refill_per_second) >= ?2
RETURNING scope

-- write_metrics --
INSERT OR REPLACE INTO forge_nb_metrics
    (minute, queue, host_id, {metric_columns})
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)

-- read_metrics --
SELECT minute, queue, host_id, {metric_columns}
FROM forge_nb_metrics WHERE minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR queue = ?3)
ORDER BY minute, queue, host_id

-- sum_metrics --
SELECT minute / ?1 * ?1 AS bucket, queue, '*', SUM(enqueued), SUM(started), SUM(completed),
       SUM(failed), SUM(retried), SUM(throttled), SUM(dead), '{}', '{}'
FROM forge_nb_metrics WHERE minute BETWEEN ?2 AND ?3 AND (?4 IS NULL OR queue = ?4)
GROUP BY bucket, queue
ORDER BY bucket, queue

-- {sum_histograms} --
-- Both latency histograms of the rows ``m`` added up bucket by bucket (0 = processing,
-- 1 = end-to-end). ``m`` is NOT MATERIALIZED: each half reads the rows through its index.
SELECT 0, CAST(h.key AS INTEGER), SUM(h.value)
FROM m, json_each(m.processing_hist) AS h
GROUP BY 2
UNION ALL
SELECT 1, CAST(h.key AS INTEGER), SUM(h.value)
FROM m, json_each(m.e2e_hist) AS h
GROUP BY 2

-- sum_histograms_minutes --
WITH m AS NOT MATERIALIZED (
    SELECT processing_hist, e2e_hist FROM forge_nb_metrics
    WHERE minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR queue = ?3)
)
{sum_histograms}

-- sum_histograms_rollups --
WITH m AS NOT MATERIALIZED (
    SELECT processing_hist, e2e_hist FROM forge_nb_metric_rollups
    WHERE minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR queue = ?3) AND step = ?4
)
{sum_histograms}

-- purge_jobs --
DELETE FROM forge_nb_jobs WHERE id IN (
    SELECT id FROM forge_nb_jobs
    WHERE queue = ? AND status = ? AND finished_at < ? AND status IN ('done', 'dead')
    LIMIT ?
)
RETURNING id

-- purge_metrics --
DELETE FROM forge_nb_metrics WHERE minute < ?

-- write_rollup --
INSERT OR REPLACE INTO forge_nb_metric_rollups
    (step, minute, queue, {metric_columns})
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)

-- write_rollup_mark --
INSERT OR REPLACE INTO forge_nb_rollup_marks (step, through) VALUES (?1, ?2)

-- read_rollups --
SELECT minute, queue, '*', {metric_columns}
FROM forge_nb_metric_rollups
WHERE step = ?1 AND minute BETWEEN ?2 AND ?3 AND (?4 IS NULL OR queue = ?4)
ORDER BY minute, queue

-- fire_schedule --
-- Compare-and-set on next_fire_at: only one process can advance a given tick.
UPDATE forge_nb_schedules SET last_fire_at = ?3, next_fire_at = ?4
WHERE name = ?1 AND next_fire_at = ?2 AND enabled

-- write_sample --
INSERT OR REPLACE INTO forge_nb_samples (minute, host_id, kind, data) VALUES (?1, ?2, ?3, ?4)

-- insert_job_tag --
INSERT OR IGNORE INTO forge_nb_job_tags (tag, job_id) VALUES (?1, ?2)

-- job_tags --
-- The tags of a page of jobs (?1: a JSON array of ids).
SELECT job_id, tag FROM forge_nb_job_tags
WHERE job_id IN (SELECT value FROM json_each(?1)) ORDER BY job_id, tag

-- insert_job_context --
INSERT INTO forge_nb_job_context (job_id, context) VALUES (?1, ?2)

-- job_contexts --
-- The contexts of some jobs (?1: a JSON array of ids).
SELECT job_id, context FROM forge_nb_job_context WHERE job_id IN (SELECT value FROM json_each(?1))

-- payload_search_term --
-- A job filter's payload search ({p}: the LIKE pattern; SQLite's LIKE folds ASCII case).
payload LIKE {p} ESCAPE '\'

-- dependency_statuses --
-- The statuses of new jobs' dependencies (?1: a JSON array of ids).
SELECT id, status FROM forge_nb_jobs WHERE id IN (SELECT value FROM json_each(?1))

-- insert_dependency --
INSERT INTO forge_nb_job_deps (job_id, depends_on) VALUES (?1, ?2)

-- settle_new_dependent --
-- A new job with dependencies: waiting for the unmet ones, or dead at once (a dead one).
UPDATE forge_nb_jobs
SET dependencies = ?2, waiting_on = ?3, status = ?4, last_error = ?5, finished_at = ?6
WHERE id = ?1

-- graph_edges --
-- Edges touching any of these jobs (?1: a JSON array of ids), both directions.
SELECT job_id, depends_on FROM forge_nb_job_deps
WHERE job_id IN (SELECT value FROM json_each(?1))
UNION
SELECT job_id, depends_on FROM forge_nb_job_deps
WHERE depends_on IN (SELECT value FROM json_each(?1))

-- graph_nodes --
SELECT id, kind, queue, status, last_error FROM forge_nb_jobs
WHERE id IN (SELECT value FROM json_each(?1)) ORDER BY id

-- dead_parents_batch --
SELECT job_id, error FROM forge_nb_dead_parents ORDER BY job_id LIMIT ?1

-- promote_held --
-- Held jobs of key ?1, in claim order, take the places its raised limit freed (a promotion
-- is not counted by the trigger: count_promoted adds them).
UPDATE forge_nb_jobs SET status = 'pending'
WHERE status = 'waiting' AND waiting_on = 0 AND id IN (
    SELECT id FROM forge_nb_jobs
    WHERE concurrency_key = ?1 AND status = 'waiting' AND waiting_on = 0
    ORDER BY priority DESC, scheduled_at, id
    LIMIT (SELECT max(0, key_limit - active) FROM forge_nb_key_slots WHERE key = ?1)
)
RETURNING id

-- expire_jobs --
-- Jobs not started by their expires_at (at most ?2, the earliest first): dead, "expired".
UPDATE forge_nb_jobs
SET status = 'dead', last_error = 'expired', last_traceback = NULL, finished_at = ?1,
    expires_at = NULL
WHERE id IN (
    SELECT id FROM forge_nb_jobs INDEXED BY forge_nb_jobs_expiring
    WHERE expires_at IS NOT NULL AND expires_at <= ?1
      AND status IN ('waiting', 'pending', 'failed')
    ORDER BY expires_at
    LIMIT ?2
)
RETURNING id, queue


-- retune_template_buckets --
-- The live buckets made from template ?1 take its new settings (tokens capped).
UPDATE forge_nb_rate_limits
SET capacity = ?2, refill_per_second = ?3, tokens = min(tokens, ?2)
WHERE template = ?1

-- ensure_queue_slots --
-- Slot rows 0 … ?2-1 of queue ?1 (global_limit).
WITH RECURSIVE s (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < ?2)
INSERT OR IGNORE INTO forge_nb_queue_slots (queue, slot)
SELECT ?1, n FROM s

-- release_queue_slots --
-- Process ?2 gives back ?3 of its slots of queue ?1, the highest first.
UPDATE forge_nb_queue_slots
SET holder = NULL
WHERE queue = ?1 AND holder = ?2 AND slot IN (
    SELECT slot FROM forge_nb_queue_slots
    WHERE queue = ?1 AND holder = ?2
    ORDER BY slot DESC
    LIMIT ?3
)

-- take_queue_slots --
-- Process ?2 takes up to ?3 free slots of queue ?1 under the limit ?4; the
-- outer check keeps a slot another process took meanwhile.
UPDATE forge_nb_queue_slots
SET holder = ?2
WHERE queue = ?1 AND holder IS NULL AND slot < ?4 AND slot IN (
    SELECT slot FROM forge_nb_queue_slots
    WHERE queue = ?1 AND holder IS NULL AND slot < ?4
    ORDER BY slot
    LIMIT ?3
)
RETURNING slot

-- list_queue_jobs --
-- list_jobs for a queue (?1) alone: the page newest first below id ?2. For each status, its
-- newest ?3 ids below ?2 are read backwards from the (queue, status, id) index (a correlated
-- subquery per status, stopped after ?3), each row fetched by its id, and the statuses'
-- rows merged. So no (queue, id) index has to be written by every enqueue (migration 19).
-- The statuses, json_each's array, are records.STATUSES, written in by `sqlite_statements`.
SELECT {job_columns} FROM (
    SELECT j.* FROM json_each('{statuses}') AS s
    JOIN forge_nb_jobs AS j ON j.id IN (
        SELECT id FROM forge_nb_jobs
        WHERE queue = ?1 AND status = s.value AND id < ?2
        ORDER BY id DESC LIMIT ?3)
)
ORDER BY id DESC LIMIT ?3

-- list_status_jobs --
-- list_jobs for a status (?1) alone: the page newest first below id ?2. There is no (status,
-- id) index (migration 20): for each queue, its newest ?3 ids of the status below ?2 are read
-- backwards from (queue, status, id) (a correlated subquery per queue, stopped after ?3),
-- each row fetched by its id, and the queues' rows merged. The queues are those with count
-- rows: every queue a job was ever enqueued to has them (its queue row makes them).
SELECT {job_columns} FROM (
    SELECT j.* FROM forge_nb_job_counts AS c
    JOIN forge_nb_jobs AS j ON j.id IN (
        SELECT id FROM forge_nb_jobs
        WHERE queue = c.queue AND status = ?1 AND id < ?2
        ORDER BY id DESC LIMIT ?3)
    WHERE c.status = ?1
)
ORDER BY id DESC LIMIT ?3
