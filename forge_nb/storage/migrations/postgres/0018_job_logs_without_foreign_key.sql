-- v18: a job's log rows go with it through a statement trigger, not a foreign key (issue 21).
-- The key's check ran once per log row written: a lookup and a row lock on the job, most of
-- what storing a job's log with its outcome cost a Postgres drain. Each write of logs already
-- joins the jobs table, so no row is written for a job that is gone when it runs. What the
-- key added was a guard against a job deleted while its log is written; the delete paths
-- take no running job, and an outcome's log is written in the statement that ends the run,
-- which holds the job's row until it commits. Left open: the log of a run taken back
-- (reaped), arriving in the instant its job is deleted, may outlive the job.
ALTER TABLE forge_nb_job_logs DROP CONSTRAINT IF EXISTS forge_nb_job_logs_job_id_fkey;

CREATE OR REPLACE FUNCTION forge_nb_job_logs_gone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    DELETE FROM forge_nb_job_logs AS l USING old_rows AS o WHERE l.job_id = o.id;
    RETURN NULL;
END $$;

DROP TRIGGER IF EXISTS forge_nb_jobs_logs_gone ON forge_nb_jobs;
CREATE TRIGGER forge_nb_jobs_logs_gone AFTER DELETE ON forge_nb_jobs
    REFERENCING OLD TABLE AS old_rows
    FOR EACH STATEMENT EXECUTE FUNCTION forge_nb_job_logs_gone();
