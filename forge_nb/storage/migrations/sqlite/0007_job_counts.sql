-- v7: per-queue, per-status job counts kept by triggers, so the dashboard's counts read a few
-- hundred rows instead of counting every job (1,000,000 jobs: 77 ms). SQLite has one writer,
-- so one row per (queue, status) is enough. The migration runs under the write lock: no
-- job changes between seeding the counts and creating the triggers.
CREATE TABLE forge_nb_job_counts (
    queue  TEXT NOT NULL,
    status TEXT NOT NULL,
    n      INTEGER NOT NULL,
    PRIMARY KEY (queue, status)
) WITHOUT ROWID;

INSERT INTO forge_nb_job_counts (queue, status, n)
SELECT queue, status, count(*) FROM forge_nb_jobs GROUP BY queue, status;

CREATE TRIGGER forge_nb_jobs_count_insert AFTER INSERT ON forge_nb_jobs
BEGIN
    INSERT INTO forge_nb_job_counts (queue, status, n) VALUES (new.queue, new.status, 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

-- Only updates that move a job (status or queue) touch the counts.
CREATE TRIGGER forge_nb_jobs_count_update AFTER UPDATE OF queue, status ON forge_nb_jobs
WHEN old.status IS NOT new.status OR old.queue IS NOT new.queue
BEGIN
    UPDATE forge_nb_job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
    INSERT INTO forge_nb_job_counts (queue, status, n) VALUES (new.queue, new.status, 1)
    ON CONFLICT (queue, status) DO UPDATE SET n = n + 1;
END;

CREATE TRIGGER forge_nb_jobs_count_delete AFTER DELETE ON forge_nb_jobs
BEGIN
    UPDATE forge_nb_job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;
