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

-- Every queue has its five rows from the start (a job's queue row exists before the job),
-- so the job triggers below are plain UPDATEs: an UPSERT per moved job cost twice as much.
CREATE TRIGGER forge_nb_queues_count_rows AFTER INSERT ON forge_nb_queues
BEGIN
    INSERT OR IGNORE INTO forge_nb_job_counts (queue, status, n)
    VALUES (new.name, 'pending', 0), (new.name, 'running', 0), (new.name, 'failed', 0),
           (new.name, 'done', 0), (new.name, 'dead', 0);
END;

INSERT INTO forge_nb_job_counts (queue, status, n)
SELECT q.name, s.status, 0
FROM (SELECT name FROM forge_nb_queues UNION SELECT DISTINCT queue FROM forge_nb_jobs) AS q,
     (SELECT 'pending' AS status UNION ALL SELECT 'running' UNION ALL SELECT 'failed'
      UNION ALL SELECT 'done' UNION ALL SELECT 'dead') AS s;

UPDATE forge_nb_job_counts SET n = (
    SELECT count(*) FROM forge_nb_jobs j
    WHERE j.queue = forge_nb_job_counts.queue AND j.status = forge_nb_job_counts.status
);

CREATE TRIGGER forge_nb_jobs_count_insert AFTER INSERT ON forge_nb_jobs
BEGIN
    UPDATE forge_nb_job_counts SET n = n + 1 WHERE queue = new.queue AND status = new.status;
END;

-- Only updates that move a job (status or queue) touch the counts.
CREATE TRIGGER forge_nb_jobs_count_update AFTER UPDATE OF queue, status ON forge_nb_jobs
WHEN old.status IS NOT new.status OR old.queue IS NOT new.queue
BEGIN
    UPDATE forge_nb_job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
    UPDATE forge_nb_job_counts SET n = n + 1 WHERE queue = new.queue AND status = new.status;
END;

CREATE TRIGGER forge_nb_jobs_count_delete AFTER DELETE ON forge_nb_jobs
BEGIN
    UPDATE forge_nb_job_counts SET n = n - 1 WHERE queue = old.queue AND status = old.status;
END;
