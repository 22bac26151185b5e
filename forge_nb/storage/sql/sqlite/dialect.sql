-- Statements only the SQLite backend needs: the steps it takes its own way. One writer
-- holds the database, so it works a row at a time where Postgres uses arrays (finish, reap,
-- retry and delete by filter), deletes job events itself (no data-modifying WITH), keeps one
-- count row per queue and status, claims many kinds through a JSON list when one
-- compound SELECT cannot hold an arm per kind, and promotes the dependents of a finish batch
-- in its own code (Postgres's statement trigger does it there).
-- queries.sql holds the statements both dialects have in their own words, under the same
-- names; ../common.sql those written alike in both.

-- count_pending --
-- New jobs of one queue added to the live counts, once per enqueue batch (no insert trigger).
UPDATE forge_nb_job_counts SET n = n + ? WHERE queue = ? AND status = 'pending'

-- claim_kinds_filtered --
-- claim_kinds for more kinds than one compound SELECT may hold (?5: a JSON array of them;
-- ?6: a JSON array of code versions not to claim):
-- correct, but it sorts the queue's runnable jobs of those kinds.
{take_jobs}
WHERE id IN (
    SELECT id FROM forge_nb_jobs
    WHERE queue = ?3 AND {runnable}
      AND kind IN (SELECT value FROM json_each(?5))
      AND (code_version IS NULL OR code_version NOT IN (SELECT value FROM json_each(?6)))
      AND NOT EXISTS (SELECT 1 FROM forge_nb_queues q WHERE q.name = ?3 AND q.paused)
    ORDER BY priority DESC, scheduled_at, id
    LIMIT ?4
)
RETURNING {claimed_columns}

-- finish_done --
-- No RETURNING: it doubled the statement's cost; keyed_among asks once per batch.
UPDATE forge_nb_jobs SET status = 'done', result = ?, finished_at = ?
WHERE id = ? AND status = 'running' AND claimed_by = ? AND attempts = ?

-- finish_other --
UPDATE forge_nb_jobs
SET status = ?, last_error = coalesce(?, last_error), last_traceback = ?,
    scheduled_at = coalesce(?, scheduled_at), finished_at = ?,
    attempts = attempts - ?
WHERE id = ? AND status = 'running' AND claimed_by = ? AND attempts = ?

-- keyed_among --
-- Whether any of these jobs (a JSON list of ids) has a concurrency key: its end may have
-- promoted its key's next held job. Asked only when some key exists at all.
SELECT CASE WHEN EXISTS (SELECT 1 FROM forge_nb_key_slots)
            THEN EXISTS (SELECT 1 FROM forge_nb_jobs
                         WHERE id IN (SELECT value FROM json_each(?))
                           AND concurrency_key IS NOT NULL)
            ELSE 0 END

-- queue_names --
SELECT name FROM forge_nb_queues

-- delete_events --
DELETE FROM forge_nb_job_events WHERE job_id = ?

-- stale_running_jobs --
-- Running jobs whose owner has no live slot (or is listed in ?2): a slot is live while it
-- is silent for no longer than its own stale_after at ?3 (else the reaper's: since ?1).
SELECT id, kind, queue, attempts, max_attempts, claimed_by FROM forge_nb_jobs
WHERE status = 'running'
  AND (claimed_by IS NULL
       OR claimed_by NOT IN (SELECT host_id FROM forge_nb_processes
                             WHERE last_heartbeat >= coalesce(?3 - stale_after, ?1))
       OR claimed_by IN (SELECT value FROM json_each(?2)))

-- reap_job --
UPDATE forge_nb_jobs
SET status = ?, last_error = 'worker lost', last_traceback = NULL, finished_at = ?,
    scheduled_at = ?
WHERE id = ? AND status = 'running' AND attempts = ?

-- purge_rollups --
DELETE FROM forge_nb_metric_rollups WHERE minute < ?

-- purge_samples --
DELETE FROM forge_nb_samples WHERE minute < ?

-- job_ids_where --
-- The jobs retry_many and delete_many act on ({where}: the filter's terms).
SELECT id FROM forge_nb_jobs WHERE {where}

-- promote_dependents --
-- Dependencies just done (?1: a JSON array of ids) take one each off their waiting
-- dependents' counts, in the finishing transaction; a dependent reaching zero is pending.
WITH met AS (
    SELECT job_id, count(*) AS n FROM forge_nb_job_deps
    WHERE depends_on IN (SELECT value FROM json_each(?1))
    GROUP BY job_id
)
UPDATE forge_nb_jobs
SET waiting_on = waiting_on - (SELECT n FROM met WHERE met.job_id = forge_nb_jobs.id),
    status = CASE
        WHEN waiting_on <= (SELECT n FROM met WHERE met.job_id = forge_nb_jobs.id)
        THEN 'pending' ELSE 'waiting' END
WHERE status = 'waiting' AND id IN (SELECT job_id FROM met)

-- workflows_exist --
-- Whether any job waits or waited for another (else a finish has no dependents to promote).
SELECT EXISTS (SELECT 1 FROM forge_nb_job_deps)

-- status_queues_term --
-- A job filter's statuses ({statuses}: their parameters) read queue by queue from (queue,
-- status, id), for retry_many and delete_many with no queue given: there is no (status, id)
-- index (migration 20). The queues are those with count rows, as in list_status_jobs.
queue IN (SELECT queue FROM forge_nb_job_counts WHERE status IN ({statuses}))
