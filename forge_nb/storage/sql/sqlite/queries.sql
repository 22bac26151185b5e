-- Statements both backends have, under the same names (dialect.sql: SQLite's own).
-- Parameters: numbered (?1, ?2, …) in the order of the Postgres twin wherever the SQL core
-- (storage/core.py) runs the statement; positional (?) in the backend's own steps.

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
UPDATE forge_nb_jobs
SET status = 'running', attempts = attempts + 1, claimed_by = ?1, started_at = ?2,
    cancel_requested_at = NULL, progress = NULL, progress_message = NULL,
    expires_at = NULL
WHERE id IN (
    SELECT id FROM forge_nb_jobs
    WHERE queue = ?3 AND status IN ('pending', 'failed') AND scheduled_at <= ?2
      AND (expires_at IS NULL OR expires_at > ?2)
      AND (concurrency_key IS NULL OR NOT EXISTS (
          SELECT 1 FROM forge_nb_key_slots AS s
          WHERE s.key = concurrency_key AND s.running >= s.key_limit))
      AND NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = ?3 AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT ?4
)
RETURNING id, kind, queue, payload, attempts, max_attempts, priority, created_at, scheduled_at,
          code_version, dependencies

-- claim_kinds --
-- The claim of a process: the best runnable jobs of one queue (?3) among the kinds it runs,
-- to running in one statement. The arms are one claim_arm per kind (?5, ?6, …) joined by
-- UNION ALL: each reads its kind's range of the claim index in claim order and the compound
-- ORDER BY merges them (MERGE (UNION ALL), no sort), stopping after ?4 rows. Jobs of other
-- kinds are never read, however many wait ahead.
UPDATE forge_nb_jobs
SET status = 'running', attempts = attempts + 1, claimed_by = ?1, started_at = ?2,
    cancel_requested_at = NULL, progress = NULL, progress_message = NULL,
    expires_at = NULL
WHERE id IN (
    SELECT id FROM ({arms} ORDER BY priority DESC, scheduled_at, id LIMIT ?4)
    WHERE NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = ?3 AND q.paused)
)
RETURNING id, kind, queue, payload, attempts, max_attempts, priority, created_at, scheduled_at,
          code_version, dependencies

-- claim_arm --
-- One kind's runnable jobs in claim order (the kind a parameter; NULL pads, matching none).
SELECT id, priority, scheduled_at FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
WHERE queue = ?3 AND kind = {kind} AND status IN ('pending', 'failed') AND scheduled_at <= ?2
  AND (expires_at IS NULL OR expires_at > ?2)
  AND (concurrency_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM forge_nb_key_slots AS s
      WHERE s.key = concurrency_key AND s.running >= s.key_limit))

-- claim_arm_versions --
-- claim_arm less the shipped code versions this process cannot run ({excluded}: a JSON
-- array): their jobs stay pending for a process that can. Only when there are such
-- versions; it reads each row's code_version, which the index does not hold.
SELECT id, priority, scheduled_at FROM forge_nb_jobs INDEXED BY forge_nb_jobs_claim_kind
WHERE queue = ?3 AND kind = {kind} AND status IN ('pending', 'failed') AND scheduled_at <= ?2
  AND (expires_at IS NULL OR expires_at > ?2)
  AND (concurrency_key IS NULL OR NOT EXISTS (
      SELECT 1 FROM forge_nb_key_slots AS s
      WHERE s.key = concurrency_key AND s.running >= s.key_limit))
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

-- get_job --
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_jobs WHERE id = ?1

-- job_events --
SELECT job_id, at, event, attempt, message FROM forge_nb_job_events WHERE job_id = ?1 ORDER BY id

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

-- cancel_requests --
SELECT id FROM forge_nb_jobs
WHERE status = 'running' AND claimed_by = ?1 AND cancel_requested_at IS NOT NULL
ORDER BY id

-- queue_config --
SELECT name, workers, paused, backoff_enabled, backoff_base_seconds, backoff_max_seconds,
       backoff_jitter, retain_done_seconds, retain_dead_seconds, global_limit
FROM forge_nb_queues WHERE name = ?

-- queue_configs --
SELECT name, workers, paused, backoff_enabled, backoff_base_seconds, backoff_max_seconds,
       backoff_jitter, retain_done_seconds, retain_dead_seconds, global_limit
FROM forge_nb_queues ORDER BY name

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

-- set_current_jobs --
UPDATE forge_nb_processes SET current_job = ?2 WHERE id = ?1

-- processes --
SELECT id, host_id, hostname, pid, queue, current_job, last_heartbeat, started_at, version,
       kinds, stale_after
FROM forge_nb_processes ORDER BY id

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

-- schedules --
SELECT name, cron, kind, payload, queue, enabled, tz, last_fire_at, next_fire_at
FROM forge_nb_schedules ORDER BY name

-- set_schedule_enabled --
UPDATE forge_nb_schedules SET enabled = ?2 WHERE name = ?1 RETURNING name

-- record_fire --
UPDATE forge_nb_schedules SET last_fire_at = ?2, next_fire_at = ?3 WHERE name = ?1

-- acquire_lease --
INSERT INTO forge_nb_leases (name, holder, expires_at) VALUES (?1, ?2, ?3)
ON CONFLICT (name) DO UPDATE SET holder = excluded.holder, expires_at = excluded.expires_at
WHERE forge_nb_leases.holder = excluded.holder OR forge_nb_leases.expires_at < ?4
RETURNING holder

-- release_lease --
DELETE FROM forge_nb_leases WHERE name = ?1 AND holder = ?2

-- leases --
SELECT name, holder, expires_at FROM forge_nb_leases ORDER BY name

-- ensure_rate_limit --
INSERT INTO forge_nb_rate_limits (scope, capacity, refill_per_second, tokens, updated_at)
VALUES (?1, ?2, ?3, ?2, ?4)
ON CONFLICT (scope) DO UPDATE SET
    capacity = excluded.capacity, refill_per_second = excluded.refill_per_second,
    tokens = min(forge_nb_rate_limits.tokens, excluded.capacity)
RETURNING scope, capacity, refill_per_second, tokens, updated_at, held_until

-- rate_limit --
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until
FROM forge_nb_rate_limits WHERE scope = ?1

-- take_tokens --
-- Refill and take in one statement (the refill rule of storage/rules.py, in SQL).
UPDATE forge_nb_rate_limits
SET tokens = min(capacity, tokens + max(0.0, ?3 - updated_at) * refill_per_second) - ?2,
    updated_at = ?3
WHERE scope = ?1 AND held_until <= ?3 AND ?2 > 0 AND ?2 <= capacity
  AND min(capacity, tokens + max(0.0, ?3 - updated_at) * refill_per_second) >= ?2
RETURNING scope

-- drain_rate_limit --
UPDATE forge_nb_rate_limits SET tokens = 0, updated_at = ?2, held_until = ?2 WHERE scope = ?1
RETURNING scope

-- rate_limits --
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until
FROM forge_nb_rate_limits WHERE template IS NULL ORDER BY scope

-- write_metrics --
INSERT OR REPLACE INTO forge_nb_metrics
    (minute, queue, host_id, enqueued, started, completed, failed, retried, throttled, dead,
     processing_hist, e2e_hist)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)

-- read_metrics --
SELECT minute, queue, host_id, enqueued, started, completed, failed, retried, throttled, dead,
       processing_hist, e2e_hist
FROM forge_nb_metrics WHERE minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR queue = ?3)
ORDER BY minute, queue, host_id

-- sum_metrics --
SELECT minute / ?1 * ?1 AS bucket, queue, '*', SUM(enqueued), SUM(started), SUM(completed),
       SUM(failed), SUM(retried), SUM(throttled), SUM(dead), '{}', '{}'
FROM forge_nb_metrics WHERE minute BETWEEN ?2 AND ?3 AND (?4 IS NULL OR queue = ?4)
GROUP BY bucket, queue
ORDER BY bucket, queue

-- sum_histograms_minutes --
-- Both latency histograms added up bucket by bucket (0 = processing, 1 = end-to-end).
SELECT 0, CAST(h.key AS INTEGER), SUM(h.value)
FROM forge_nb_metrics AS m, json_each(m.processing_hist) AS h
WHERE m.minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR m.queue = ?3)
GROUP BY 2
UNION ALL
SELECT 1, CAST(h.key AS INTEGER), SUM(h.value)
FROM forge_nb_metrics AS m, json_each(m.e2e_hist) AS h
WHERE m.minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR m.queue = ?3)
GROUP BY 2

-- sum_histograms_rollups --
-- Both latency histograms added up bucket by bucket (0 = processing, 1 = end-to-end).
SELECT 0, CAST(h.key AS INTEGER), SUM(h.value)
FROM forge_nb_metric_rollups AS m, json_each(m.processing_hist) AS h
WHERE m.minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR m.queue = ?3) AND m.step = ?4
GROUP BY 2
UNION ALL
SELECT 1, CAST(h.key AS INTEGER), SUM(h.value)
FROM forge_nb_metric_rollups AS m, json_each(m.e2e_hist) AS h
WHERE m.minute BETWEEN ?1 AND ?2 AND (?3 IS NULL OR m.queue = ?3) AND m.step = ?4
GROUP BY 2

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
    (step, minute, queue, enqueued, started, completed, failed, retried, throttled, dead,
     processing_hist, e2e_hist)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12)

-- write_rollup_mark --
INSERT OR REPLACE INTO forge_nb_rollup_marks (step, through) VALUES (?1, ?2)

-- read_rollups --
SELECT minute, queue, '*', enqueued, started, completed, failed, retried, throttled, dead,
       processing_hist, e2e_hist
FROM forge_nb_metric_rollups
WHERE step = ?1 AND minute BETWEEN ?2 AND ?3 AND (?4 IS NULL OR queue = ?4)
ORDER BY minute, queue

-- rollup_marks --
SELECT step, through FROM forge_nb_rollup_marks

-- fire_schedule --
-- Compare-and-set on next_fire_at: only one process can advance a given tick.
UPDATE forge_nb_schedules SET last_fire_at = ?3, next_fire_at = ?4
WHERE name = ?1 AND next_fire_at = ?2 AND enabled

-- write_sample --
INSERT OR REPLACE INTO forge_nb_samples (minute, host_id, kind, data) VALUES (?1, ?2, ?3, ?4)

-- read_samples --
SELECT minute, host_id, data FROM forge_nb_samples
WHERE kind = ?1 AND minute BETWEEN ?2 AND ?3 ORDER BY minute, host_id

-- id_bounds --
-- Lowest and highest job id (two index end lookups): where a windowed search stops.
SELECT (SELECT min(id) FROM forge_nb_jobs), (SELECT max(id) FROM forge_nb_jobs)

-- publish_code --
-- A version is a content hash: publishing it again changes nothing.
INSERT INTO forge_nb_code (version, kind, python, forge_nb_version, signature, code, created_at)
VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)
ON CONFLICT (version) DO NOTHING
RETURNING version

-- code_catalogue --
-- Every published version without its code: what a shipped-code worker may claim.
SELECT version, kind, python, forge_nb_version, signature, created_at
FROM forge_nb_code ORDER BY created_at, version

-- code_stamp --
-- Cheap "did the catalogue change?": rows are only ever added.
SELECT count(*), max(created_at) FROM forge_nb_code

-- code_row --
SELECT version, kind, python, forge_nb_version, signature, created_at, code
FROM forge_nb_code WHERE version = ?1

-- list_jobs --
-- A page of jobs newest first; {where}: the filter's terms (bound parameters), {limit}: the
-- page size's parameter.
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_jobs WHERE {where} ORDER BY id DESC LIMIT {limit}

-- list_scheduled_jobs --
-- list_jobs for the Scheduled view: soonest first.
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_jobs WHERE {where} ORDER BY scheduled_at, id LIMIT {limit}

-- list_tagged_jobs --
-- list_jobs for one tag (?1): its range of the tags' primary key read newest first, each job
-- joined by id, so a page stops after {limit} matches at any table size. {where}: the other
-- terms (job_id for the cursor).
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_job_tags JOIN forge_nb_jobs ON id = job_id
WHERE tag = {tag} AND {where} ORDER BY job_id DESC LIMIT {limit}

-- tag_filter_term --
-- A job filter's tag ({p}), where no page is read in id order (bulk retry and delete, the
-- Scheduled view).
id IN (SELECT job_id FROM forge_nb_job_tags WHERE tag = {p})

-- insert_job_tag --
INSERT OR IGNORE INTO forge_nb_job_tags (tag, job_id) VALUES (?1, ?2)

-- job_tags --
-- The tags of a page of jobs (?1: a JSON array of ids).
SELECT job_id, tag FROM forge_nb_job_tags
WHERE job_id IN (SELECT value FROM json_each(?1)) ORDER BY job_id, tag

-- set_redaction --
INSERT INTO forge_nb_redactions (kind, fields) VALUES (?1, ?2)
ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields

-- redactions --
SELECT kind, fields FROM forge_nb_redactions

-- insert_job_context --
INSERT INTO forge_nb_job_context (job_id, context) VALUES (?1, ?2)

-- job_contexts --
-- The contexts of some jobs (?1: a JSON array of ids).
SELECT job_id, context FROM forge_nb_job_context WHERE job_id IN (SELECT value FROM json_each(?1))

-- write_job_log --
-- One attempt's log as it stands (the worker keeps it bounded): inserted, then replaced.
-- A job deleted meanwhile has no row to log for: nothing is written.
INSERT INTO forge_nb_job_logs (job_id, attempt, text, lines, dropped, updated_at)
SELECT ?1, ?2, ?3, ?4, ?5, ?6 WHERE EXISTS (SELECT 1 FROM forge_nb_jobs WHERE id = ?1)
ON CONFLICT (job_id, attempt) DO UPDATE SET
    text = excluded.text, lines = excluded.lines, dropped = excluded.dropped,
    updated_at = excluded.updated_at

-- job_logs --
SELECT attempt, text, lines, dropped, updated_at FROM forge_nb_job_logs
WHERE job_id = ?1 ORDER BY attempt

-- run_now --
-- A pending job scheduled for later becomes due now (the Scheduled view's "run now").
UPDATE forge_nb_jobs SET scheduled_at = ?2
WHERE id = ?1 AND status = 'pending' AND scheduled_at > ?2
RETURNING queue

-- payload_search_term --
-- A job filter's payload search ({p}: the LIKE pattern; SQLite's LIKE folds ASCII case).
payload LIKE {p} ESCAPE '\'

-- set_queue_knobs --
-- Change a queue's settings ({sets}: "knob = <parameter>" for each knob given, names
-- checked against the known knobs; the queue's name is the first parameter).
UPDATE forge_nb_queues SET {sets} WHERE name = ?1

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

-- dependency_results --
SELECT d.depends_on, j.result
FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS j ON j.id = d.depends_on
WHERE d.job_id = ?1

-- dependencies_of --
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_jobs
WHERE id IN (SELECT depends_on FROM forge_nb_job_deps WHERE job_id = ?1)
ORDER BY id LIMIT ?2

-- dependents_of --
SELECT id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
       last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
       started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
       waiting_on, expires_at, concurrency_key
FROM forge_nb_jobs
WHERE id IN (SELECT job_id FROM forge_nb_job_deps WHERE depends_on = ?1)
ORDER BY id LIMIT ?2

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

-- kill_waiting_dependents --
-- Up to ?4 waiting dependents of ?1 end dead with ?2 (the cascade of a dead dependency).
UPDATE forge_nb_jobs
SET status = 'dead', last_error = ?2, last_traceback = NULL, finished_at = ?3
WHERE status = 'waiting' AND id IN (
    SELECT d.job_id FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS j ON j.id = d.job_id
    WHERE d.depends_on = ?1 AND j.status = 'waiting'
    ORDER BY d.job_id LIMIT ?4
)
RETURNING id, attempts

-- forget_dead_parent --
DELETE FROM forge_nb_dead_parents WHERE job_id = ?1

-- revive_dependents --
-- A retried job's dependents that its death killed (error ?2) wait again, unless another of
-- their dependencies is dead too; they never ran.
UPDATE forge_nb_jobs
SET status = 'waiting', last_error = NULL, last_traceback = NULL, finished_at = NULL,
    waiting_on = (
        SELECT count(*) FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = forge_nb_jobs.id AND p.status <> 'done'
    )
WHERE status = 'dead' AND last_error = ?2
  AND id IN (SELECT job_id FROM forge_nb_job_deps WHERE depends_on = ?1)
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
      WHERE d.job_id = forge_nb_jobs.id AND p.status = 'dead'
  )
RETURNING id, EXISTS (SELECT 1 FROM forge_nb_job_deps AS e WHERE e.depends_on = forge_nb_jobs.id)

-- dead_dependency --
-- One dead dependency of a job, if any (a job cannot be retried while one is dead).
SELECT d.depends_on FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
WHERE d.job_id = ?1 AND p.status = 'dead'
LIMIT 1

-- settle_retried_dependent --
-- A retried job with dependencies waits for those not done (pending when all are).
UPDATE forge_nb_jobs
SET waiting_on = (
        SELECT count(*) FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = ?1 AND p.status <> 'done'
    ),
    status = CASE WHEN EXISTS (
        SELECT 1 FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = ?1 AND p.status <> 'done'
    ) THEN 'waiting' ELSE status END
WHERE id = ?1 AND dependencies > 0 AND status IN ('pending', 'waiting')  -- waiting: held


-- unique_hold --
-- The job that last took unique key ?1 with a window (unique_for), its status, when it
-- finished and the window: while that job is live or finished less than the window ago, the
-- key is taken.
SELECT h.job_id, j.status, j.finished_at, h.hold_seconds
FROM forge_nb_unique_holds AS h JOIN forge_nb_jobs AS j ON j.id = h.job_id
WHERE h.unique_key = ?1

-- unique_holds_exist --
-- Whether any key was ever taken with a window (else plain unique enqueues need not look).
SELECT EXISTS (SELECT 1 FROM forge_nb_unique_holds)

-- set_unique_hold --
INSERT INTO forge_nb_unique_holds (unique_key, job_id, hold_seconds) VALUES (?1, ?2, ?3)
ON CONFLICT (unique_key) DO UPDATE SET job_id = excluded.job_id, hold_seconds = excluded.hold_seconds

-- set_job_flow --
-- A new job's flow columns (the enqueue statements stay those of plain jobs).
UPDATE forge_nb_jobs SET expires_at = ?2, concurrency_key = ?3 WHERE id = ?1

-- ensure_key_slot --
-- A concurrency key's slot row (an existing row is left alone: not even locked, so an
-- enqueue never waits for a claim or finish of the key, nor they for it).
INSERT INTO forge_nb_key_slots (key, key_limit) VALUES (?1, ?2)
ON CONFLICT (key) DO NOTHING

-- retune_key_slot --
-- A changed limit applies from the next start (the row is written only when it changes;
-- a raised one promotes held jobs: promote_held).
UPDATE forge_nb_key_slots SET key_limit = ?2 WHERE key = ?1 AND key_limit <> ?2
RETURNING key

-- admit_key --
-- A new keyed job takes one of its key's places (?1), if one is free (Postgres: the
-- enqueue locked the batch's key rows first, in key order). No row: the job is held.
UPDATE forge_nb_key_slots SET active = active + 1 WHERE key = ?1 AND active < key_limit
RETURNING key

-- hold_job --
-- A new keyed job whose key has no free place waits out of the claimable set ("held").
UPDATE forge_nb_jobs SET status = 'waiting' WHERE id = ?1 AND status = 'pending'

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

-- count_promoted --
-- ?2 held jobs of key ?1 took places (promote_held).
UPDATE forge_nb_key_slots SET active = active + ?2 WHERE key = ?1

-- replace_pending --
-- on_conflict="replace": the pending holder of a key takes the new payload and run time
-- (a keyed job held behind its key's limit is pending in all but name).
UPDATE forge_nb_jobs SET payload = ?2, scheduled_at = ?3
WHERE id = ?1 AND (status = 'pending'
                  OR (status = 'waiting' AND waiting_on = 0 AND concurrency_key IS NOT NULL))
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


-- ensure_rate_limit_template --
INSERT INTO forge_nb_rate_limit_templates (pattern, capacity, refill_per_second)
VALUES (?1, ?2, ?3)
ON CONFLICT (pattern) DO UPDATE SET
    capacity = excluded.capacity, refill_per_second = excluded.refill_per_second
RETURNING pattern, capacity, refill_per_second

-- retune_template_buckets --
-- The live buckets made from template ?1 take its new settings (tokens capped).
UPDATE forge_nb_rate_limits
SET capacity = ?2, refill_per_second = ?3, tokens = min(tokens, ?2)
WHERE template = ?1

-- rate_limit_templates --
SELECT pattern, capacity, refill_per_second FROM forge_nb_rate_limit_templates ORDER BY pattern

-- make_templated_bucket --
-- Scope ?1's bucket, full, made from template ?5 (a concurrent maker may have won).
INSERT INTO forge_nb_rate_limits (scope, capacity, refill_per_second, tokens, updated_at, template)
VALUES (?1, ?2, ?3, ?2, ?4, ?5)
ON CONFLICT (scope) DO NOTHING

-- sweep_template_buckets --
-- Buckets made from templates, untouched since ?2 and full again at ?1 (at most ?3):
-- deleted, as a bucket made anew starts full. The conditions are re-checked on the row
-- deleted, so a take that lands meanwhile keeps its bucket.
DELETE FROM forge_nb_rate_limits
WHERE template IS NOT NULL AND updated_at < ?2 AND held_until <= ?1
  AND tokens + (?1 - updated_at) * refill_per_second >= capacity
  AND scope IN (
      SELECT scope FROM forge_nb_rate_limits
      WHERE template IS NOT NULL AND updated_at < ?2 AND held_until <= ?1
        AND tokens + (?1 - updated_at) * refill_per_second >= capacity
      LIMIT ?3
  )
RETURNING scope

-- busiest_template_buckets --
-- The live buckets made from templates that were used last (at most ?1).
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until, template
FROM forge_nb_rate_limits WHERE template IS NOT NULL
ORDER BY updated_at DESC
LIMIT ?1

-- ensure_queue_slots --
-- Slot rows 0 … ?2-1 of queue ?1 (global_limit).
WITH RECURSIVE s (n) AS (SELECT 0 UNION ALL SELECT n + 1 FROM s WHERE n + 1 < ?2)
INSERT OR IGNORE INTO forge_nb_queue_slots (queue, slot)
SELECT ?1, n FROM s

-- drop_extra_queue_slots --
-- Free slot rows at or above the limit ?2 (it went down).
DELETE FROM forge_nb_queue_slots WHERE queue = ?1 AND slot >= ?2 AND holder IS NULL

-- free_dead_queue_slots --
-- Slots of processes with no slot row heartbeating since ?2, once none of their jobs of
-- the queue is running any more (the reaper took them back): free for the living.
UPDATE forge_nb_queue_slots
SET holder = NULL
WHERE queue = ?1 AND holder IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_processes AS p
      WHERE p.host_id = forge_nb_queue_slots.holder AND p.last_heartbeat >= ?2)
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_jobs AS j
      WHERE j.status = 'running' AND j.claimed_by = forge_nb_queue_slots.holder
        AND j.queue = ?1)

-- live_queue_hosts --
-- The processes working queue ?1 that heartbeated since ?2: who shares its slots.
SELECT DISTINCT host_id FROM forge_nb_processes
WHERE queue = ?1 AND last_heartbeat >= ?2
ORDER BY host_id

-- held_queue_slots --
-- How many of queue ?1's slots process ?2 holds: all, and those under the limit ?3.
SELECT count(*), coalesce(sum(CASE WHEN slot < ?3 THEN 1 ELSE 0 END), 0)
FROM forge_nb_queue_slots WHERE queue = ?1 AND holder = ?2

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
