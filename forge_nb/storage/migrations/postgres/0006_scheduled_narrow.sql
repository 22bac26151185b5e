-- v6: the Scheduled view's index holds only jobs scheduled later than they were created, so
-- an immediately runnable job (the usual enqueue) adds no entry to it.
DROP INDEX forge_nb_jobs_scheduled;
CREATE INDEX forge_nb_jobs_scheduled ON forge_nb_jobs (scheduled_at, id)
    WHERE status = 'pending' AND scheduled_at > created_at;
