-- v4: the Scheduled view: pending jobs due later, soonest first (keyset on scheduled_at, id).
CREATE INDEX forge_nb_jobs_scheduled ON forge_nb_jobs (scheduled_at, id) WHERE status = 'pending';
