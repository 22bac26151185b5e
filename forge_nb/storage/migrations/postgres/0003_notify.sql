-- v3: wake other processes' workers at once: NOTIFY forge_nb_jobs with the queue name of
-- newly inserted jobs, one notification per queue per statement (delivered on commit).
CREATE FUNCTION forge_nb_notify_enqueued() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pg_notify('forge_nb_jobs', q.queue) FROM (SELECT DISTINCT queue FROM inserted) q;
    RETURN NULL;
END $$;

CREATE TRIGGER forge_nb_jobs_notify AFTER INSERT ON forge_nb_jobs
    REFERENCING NEW TABLE AS inserted
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_notify_enqueued();
