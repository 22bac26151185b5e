-- v20: one index fewer for every claim and finish to rewrite (issue 18: drain speed). A job's
-- status moves at least twice per run, and each move rewrote its entry in (status, id) as
-- well as in (queue, status, id). A status is now read queue by queue from the latter, the
-- queues being those with a count row (queries.sql: list_status_jobs for a page, the
-- status_queues term for retry_many and delete_many), as a queue's page reads it status by
-- status since v19. Postgres keeps its (status, id) index.
DROP INDEX IF EXISTS forge_nb_jobs_status;
