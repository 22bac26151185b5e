-- v15: one index fewer for every enqueue to write (issue 20: enqueue speed). The Jobs page
-- filtered by queue alone read (queue, id); it now reads (queue, status, id) once per status
-- (dialect.sql: list_queue_jobs, a LATERAL over the fixed statuses, each range newest first,
-- merged): the same pages at any table size, and a job insert updates five indexes, not six.
DROP INDEX forge_nb_jobs_queue;
