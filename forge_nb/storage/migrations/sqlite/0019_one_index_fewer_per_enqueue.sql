-- v19: one index fewer for every enqueue to write (issue 18: enqueue speed), as Postgres's
-- migration 15 did. The Jobs page filtered by queue alone read (queue, id); it now reads
-- (queue, status, id) once per status (queries.sql: list_queue_jobs, each status's range
-- newest first, merged): the same pages at any table size, and a pending job's insert writes
-- four indexes, not five.
DROP INDEX IF EXISTS forge_nb_jobs_queue;
