-- Statements whose text is the same in both dialects, under the names the SQL core runs
-- (storage/core.py). Written with Postgres's numbered parameters ($n); SQLite reads them
-- as ?n. What differs between the dialects lives in sql/<dialect>/queries.sql (the same
-- names in both) and sql/<dialect>/dialect.sql (one dialect's own).
-- An entry named in braces (-- {part} --) is not a statement: it is text several statements
-- share, written out wherever one names {part} when the files are read (storage/schema.py);
-- parts written here serve both dialects' files.

-- {job_columns} --
-- A job row's columns, in the order of `rows.job_record` (every statement that reads whole
-- jobs names this part, so a new column is added here once).
id, kind, queue, status, priority, attempts, max_attempts, payload, result, last_error,
last_traceback, progress, progress_message, unique_key, created_at, scheduled_at,
started_at, finished_at, claimed_by, cancel_requested_at, code_version, dependencies,
waiting_on, expires_at, concurrency_key

-- {runnable} --
-- A job a claim may take at $2: waiting its turn, due, not expired, and its concurrency
-- key (if any) has a free place.
status IN ('pending', 'failed') AND scheduled_at <= $2
AND (expires_at IS NULL OR expires_at > $2)
AND (concurrency_key IS NULL OR NOT EXISTS (
    SELECT 1 FROM forge_nb_key_slots AS s
    WHERE s.key = concurrency_key AND s.running >= s.key_limit))

-- {metric_columns} --
-- A metric row's counters and histograms, in `MetricRow` order after its key columns.
enqueued, started, completed, failed, retried, throttled, dead, processing_hist, e2e_hist

-- job_events --
SELECT job_id, at, event, attempt, message FROM forge_nb_job_events WHERE job_id = $1 ORDER BY id

-- cancel_requests --
SELECT id FROM forge_nb_jobs
WHERE status = 'running' AND claimed_by = $1 AND cancel_requested_at IS NOT NULL
ORDER BY id

-- queue_configs --
SELECT name, workers, paused, backoff_enabled, backoff_base_seconds, backoff_max_seconds,
       backoff_jitter, retain_done_seconds, retain_dead_seconds, global_limit
FROM forge_nb_queues ORDER BY name

-- set_current_jobs --
UPDATE forge_nb_processes SET current_job = $2 WHERE id = $1

-- processes --
SELECT id, host_id, hostname, pid, queue, current_job, last_heartbeat, started_at, version,
       kinds, stale_after
FROM forge_nb_processes ORDER BY id

-- schedules --
SELECT name, cron, kind, payload, queue, enabled, tz, last_fire_at, next_fire_at
FROM forge_nb_schedules ORDER BY name

-- set_schedule_enabled --
UPDATE forge_nb_schedules SET enabled = $2 WHERE name = $1 RETURNING name

-- record_fire --
UPDATE forge_nb_schedules SET last_fire_at = $2, next_fire_at = $3 WHERE name = $1

-- release_lease --
DELETE FROM forge_nb_leases WHERE name = $1 AND holder = $2

-- leases --
SELECT name, holder, expires_at FROM forge_nb_leases ORDER BY name

-- rate_limit --
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until
FROM forge_nb_rate_limits WHERE scope = $1

-- drain_rate_limit --
UPDATE forge_nb_rate_limits SET tokens = 0, updated_at = $2, held_until = $2 WHERE scope = $1
RETURNING scope

-- rate_limits --
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until
FROM forge_nb_rate_limits WHERE template IS NULL ORDER BY scope

-- rollup_marks --
SELECT step, through FROM forge_nb_rollup_marks

-- read_samples --
SELECT minute, host_id, data FROM forge_nb_samples
WHERE kind = $1 AND minute BETWEEN $2 AND $3 ORDER BY minute, host_id

-- id_bounds --
-- Lowest and highest job id (two index end lookups): where a windowed search stops.
SELECT (SELECT min(id) FROM forge_nb_jobs), (SELECT max(id) FROM forge_nb_jobs)

-- publish_code --
-- A version is a content hash: publishing it again changes nothing.
INSERT INTO forge_nb_code (version, kind, python, forge_nb_version, signature, code, created_at)
VALUES ($1, $2, $3, $4, $5, $6, $7)
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
FROM forge_nb_code WHERE version = $1

-- get_job --
SELECT {job_columns}
FROM forge_nb_jobs WHERE id = $1

-- list_jobs --
-- A page of jobs newest first; {where}: the filter's terms (bound parameters), {limit}: the
-- page size's parameter.
SELECT {job_columns}
FROM forge_nb_jobs WHERE {where} ORDER BY id DESC LIMIT {limit}

-- list_scheduled_jobs --
-- list_jobs for the Scheduled view: soonest first.
SELECT {job_columns}
FROM forge_nb_jobs WHERE {where} ORDER BY scheduled_at, id LIMIT {limit}

-- list_tagged_jobs --
-- list_jobs for one tag ($1): its range of the tags' primary key read newest first, each job
-- joined by id, so a page stops after {limit} matches at any table size. {where}: the other
-- terms (job_id for the cursor).
SELECT {job_columns}
FROM forge_nb_job_tags JOIN forge_nb_jobs ON id = job_id
WHERE tag = {tag} AND {where} ORDER BY job_id DESC LIMIT {limit}

-- tag_filter_term --
-- A job filter's tag ({p}), where no page is read in id order (bulk retry and delete, the
-- Scheduled view).
id IN (SELECT job_id FROM forge_nb_job_tags WHERE tag = {p})

-- set_redaction --
INSERT INTO forge_nb_redactions (kind, fields) VALUES ($1, $2)
ON CONFLICT (kind) DO UPDATE SET fields = excluded.fields

-- redactions --
SELECT kind, fields FROM forge_nb_redactions

-- write_job_log --
-- One attempt's log as it stands (the worker keeps it bounded): inserted, then replaced.
-- A job deleted meanwhile has no row to log for: nothing is written.
INSERT INTO forge_nb_job_logs (job_id, attempt, text, lines, dropped, updated_at)
SELECT $1, $2, $3, $4, $5, $6 WHERE EXISTS (SELECT 1 FROM forge_nb_jobs WHERE id = $1)
{log_upsert}

-- write_finished_log --
-- write_job_log for an attempt whose outcome this transaction just applied: its job's row
-- is there, no need to look.
INSERT INTO forge_nb_job_logs (job_id, attempt, text, lines, dropped, updated_at)
VALUES ($1, $2, $3, $4, $5, $6)
{log_upsert}

-- {log_upsert} --
-- An attempt's log replaces the stored one unless that is newer: a copy flushed after a line
-- written past the attempt's end must not be overwritten by its outcome's, written later.
ON CONFLICT (job_id, attempt) DO UPDATE SET
    text = excluded.text, lines = excluded.lines, dropped = excluded.dropped,
    updated_at = excluded.updated_at
WHERE excluded.updated_at >= forge_nb_job_logs.updated_at

-- job_logs --
SELECT attempt, text, lines, dropped, updated_at FROM forge_nb_job_logs
WHERE job_id = $1 ORDER BY attempt

-- run_now --
-- A pending job scheduled for later becomes due now (the Scheduled view's "run now").
UPDATE forge_nb_jobs SET scheduled_at = $2
WHERE id = $1 AND status = 'pending' AND scheduled_at > $2
RETURNING queue

-- set_queue_knobs --
-- Change a queue's settings ({sets}: "knob = <parameter>" for each knob given, names
-- checked against the known knobs; the queue's name is the first parameter).
UPDATE forge_nb_queues SET {sets} WHERE name = $1

-- dependency_results --
SELECT d.depends_on, j.result
FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS j ON j.id = d.depends_on
WHERE d.job_id = $1

-- dependencies_of --
SELECT {job_columns}
FROM forge_nb_jobs
WHERE id IN (SELECT depends_on FROM forge_nb_job_deps WHERE job_id = $1)
ORDER BY id LIMIT $2

-- dependents_of --
SELECT {job_columns}
FROM forge_nb_jobs
WHERE id IN (SELECT job_id FROM forge_nb_job_deps WHERE depends_on = $1)
ORDER BY id LIMIT $2

-- kill_waiting_dependents --
-- Up to $4 waiting dependents of $1 end dead with $2 (the cascade of a dead dependency).
UPDATE forge_nb_jobs
SET status = 'dead', last_error = $2, last_traceback = NULL, finished_at = $3
WHERE status = 'waiting' AND id IN (
    SELECT d.job_id FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS j ON j.id = d.job_id
    WHERE d.depends_on = $1 AND j.status = 'waiting'
    ORDER BY d.job_id LIMIT $4
)
RETURNING id, attempts

-- forget_dead_parent --
DELETE FROM forge_nb_dead_parents WHERE job_id = $1

-- revive_dependents --
-- A retried job's dependents that its death killed (error $2) wait again, unless another of
-- their dependencies is dead too; they never ran.
UPDATE forge_nb_jobs
SET status = 'waiting', last_error = NULL, last_traceback = NULL, finished_at = NULL,
    waiting_on = (
        SELECT count(*) FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = forge_nb_jobs.id AND p.status <> 'done'
    )
WHERE status = 'dead' AND last_error = $2
  AND id IN (SELECT job_id FROM forge_nb_job_deps WHERE depends_on = $1)
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
      WHERE d.job_id = forge_nb_jobs.id AND p.status = 'dead'
  )
RETURNING id, EXISTS (SELECT 1 FROM forge_nb_job_deps AS e WHERE e.depends_on = forge_nb_jobs.id)

-- dead_dependency --
-- One dead dependency of a job, if any (a job cannot be retried while one is dead).
SELECT d.depends_on FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
WHERE d.job_id = $1 AND p.status = 'dead'
LIMIT 1

-- settle_retried_dependent --
-- A retried job with dependencies waits for those not done (pending when all are).
UPDATE forge_nb_jobs
SET waiting_on = (
        SELECT count(*) FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = $1 AND p.status <> 'done'
    ),
    status = CASE WHEN EXISTS (
        SELECT 1 FROM forge_nb_job_deps AS d JOIN forge_nb_jobs AS p ON p.id = d.depends_on
        WHERE d.job_id = $1 AND p.status <> 'done'
    ) THEN 'waiting' ELSE status END
WHERE id = $1 AND dependencies > 0 AND status IN ('pending', 'waiting')  -- waiting: held

-- unique_hold --
-- The job that last took unique key $1 with a window (unique_for), its status, when it
-- finished and the window: while that job is live or finished less than the window ago, the
-- key is taken.
SELECT h.job_id, j.status, j.finished_at, h.hold_seconds
FROM forge_nb_unique_holds AS h JOIN forge_nb_jobs AS j ON j.id = h.job_id
WHERE h.unique_key = $1

-- unique_holds_exist --
-- Whether any key was ever taken with a window (else plain unique enqueues need not look).
SELECT EXISTS (SELECT 1 FROM forge_nb_unique_holds)

-- set_unique_hold --
INSERT INTO forge_nb_unique_holds (unique_key, job_id, hold_seconds) VALUES ($1, $2, $3)
ON CONFLICT (unique_key) DO UPDATE SET job_id = excluded.job_id, hold_seconds = excluded.hold_seconds

-- set_job_flow --
-- A new job's flow columns (the enqueue statements stay those of plain jobs).
UPDATE forge_nb_jobs SET expires_at = $2, concurrency_key = $3 WHERE id = $1

-- ensure_key_slot --
-- A concurrency key's slot row (an existing row is left alone: not even locked, so an
-- enqueue never waits for a claim or finish of the key, nor they for it).
INSERT INTO forge_nb_key_slots (key, key_limit) VALUES ($1, $2)
ON CONFLICT (key) DO NOTHING

-- retune_key_slot --
-- A changed limit applies from the next start (the row is written only when it changes;
-- a raised one promotes held jobs: promote_held).
UPDATE forge_nb_key_slots SET key_limit = $2 WHERE key = $1 AND key_limit <> $2
RETURNING key

-- admit_key --
-- A new keyed job takes one of its key's places ($1), if one is free (Postgres: the
-- enqueue locked the batch's key rows first, in key order). No row: the job is held.
UPDATE forge_nb_key_slots SET active = active + 1 WHERE key = $1 AND active < key_limit
RETURNING key

-- hold_job --
-- A new keyed job whose key has no free place waits out of the claimable set ("held").
UPDATE forge_nb_jobs SET status = 'waiting' WHERE id = $1 AND status = 'pending'

-- count_promoted --
-- $2 held jobs of key $1 took places (promote_held).
UPDATE forge_nb_key_slots SET active = active + $2 WHERE key = $1

-- replace_pending --
-- on_conflict="replace": the pending holder of a key takes the new payload and run time
-- (a keyed job held behind its key's limit is pending in all but name).
UPDATE forge_nb_jobs SET payload = $2, scheduled_at = $3
WHERE id = $1 AND (status = 'pending'
                  OR (status = 'waiting' AND waiting_on = 0 AND concurrency_key IS NOT NULL))
RETURNING id

-- ensure_rate_limit_template --
INSERT INTO forge_nb_rate_limit_templates (pattern, capacity, refill_per_second)
VALUES ($1, $2, $3)
ON CONFLICT (pattern) DO UPDATE SET
    capacity = excluded.capacity, refill_per_second = excluded.refill_per_second
RETURNING pattern, capacity, refill_per_second

-- rate_limit_templates --
SELECT pattern, capacity, refill_per_second FROM forge_nb_rate_limit_templates ORDER BY pattern

-- make_templated_bucket --
-- Scope $1's bucket, full, made from template $5 (a concurrent maker may have won).
INSERT INTO forge_nb_rate_limits (scope, capacity, refill_per_second, tokens, updated_at, template)
VALUES ($1, $2, $3, $2, $4, $5)
ON CONFLICT (scope) DO NOTHING

-- sweep_template_buckets --
-- Buckets made from templates, untouched since $2 and full again at $1 (at most $3):
-- deleted, as a bucket made anew starts full. The conditions are re-checked on the row
-- deleted, so a take that lands meanwhile keeps its bucket.
DELETE FROM forge_nb_rate_limits
WHERE template IS NOT NULL AND updated_at < $2 AND held_until <= $1
  AND tokens + ($1 - updated_at) * refill_per_second >= capacity
  AND scope IN (
      SELECT scope FROM forge_nb_rate_limits
      WHERE template IS NOT NULL AND updated_at < $2 AND held_until <= $1
        AND tokens + ($1 - updated_at) * refill_per_second >= capacity
      LIMIT $3
  )
RETURNING scope

-- busiest_template_buckets --
-- The live buckets made from templates that were used last (at most $1).
SELECT scope, capacity, refill_per_second, tokens, updated_at, held_until, template
FROM forge_nb_rate_limits WHERE template IS NOT NULL
ORDER BY updated_at DESC
LIMIT $1

-- drop_extra_queue_slots --
-- Free slot rows at or above the limit $2 (it went down).
DELETE FROM forge_nb_queue_slots WHERE queue = $1 AND slot >= $2 AND holder IS NULL

-- free_dead_queue_slots --
-- Slots of processes with no slot row heartbeating since $2, once none of their jobs of
-- the queue is running any more (the reaper took them back): free for the living.
UPDATE forge_nb_queue_slots
SET holder = NULL
WHERE queue = $1 AND holder IS NOT NULL
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_processes AS p
      WHERE p.host_id = forge_nb_queue_slots.holder AND p.last_heartbeat >= $2)
  AND NOT EXISTS (
      SELECT 1 FROM forge_nb_jobs AS j
      WHERE j.status = 'running' AND j.claimed_by = forge_nb_queue_slots.holder
        AND j.queue = $1)

-- live_queue_hosts --
-- The processes working queue $1 that heartbeated since $2: who shares its slots.
SELECT DISTINCT host_id FROM forge_nb_processes
WHERE queue = $1 AND last_heartbeat >= $2
ORDER BY host_id

-- held_queue_slots --
-- How many of queue $1's slots process $2 holds: all, and those under the limit $3.
SELECT count(*), coalesce(sum(CASE WHEN slot < $3 THEN 1 ELSE 0 END), 0)
FROM forge_nb_queue_slots WHERE queue = $1 AND holder = $2
