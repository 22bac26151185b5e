-- v11: workflows. A job may wait for other jobs (forge_nb_job_deps): status 'waiting' until
-- every dependency is done. The finish that makes jobs done takes them off their dependents'
-- waiting_on in the same transaction, once per batch (the last makes them pending:
-- sqlite_statements.finish; nothing to do while no workflow exists). Triggers queue the
-- cascade of a dead or deleted dependency (forge_nb_dead_parents), which the leader
-- finishes in bounded batches.
-- SQLite cannot change a CHECK constraint in place, so forge_nb_jobs is rebuilt (the
-- documented rename-and-copy procedure) with 'waiting' allowed and the two new columns.
CREATE TABLE forge_nb_v11_sequence AS
SELECT seq FROM sqlite_sequence WHERE name = 'forge_nb_jobs';

CREATE TABLE forge_nb_jobs_v11 (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                TEXT    NOT NULL,
    queue               TEXT    NOT NULL,
    payload             TEXT    NOT NULL,          -- JSON object
    priority            INTEGER NOT NULL DEFAULT 0,   -- higher runs first
    status              TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('waiting','pending','running','failed','done','dead')),
    attempts            INTEGER NOT NULL DEFAULT 0,   -- runs started
    max_attempts        INTEGER NOT NULL,
    unique_key          TEXT,
    created_at          REAL    NOT NULL,
    scheduled_at        REAL    NOT NULL,             -- earliest next run
    started_at          REAL,                         -- start of the latest run
    finished_at         REAL,                         -- end of the latest run
    claimed_by          TEXT,                         -- host_id of the owning process
    cancel_requested_at REAL,
    last_error          TEXT,
    last_traceback      TEXT,
    result              TEXT,                         -- JSON
    progress            REAL,
    progress_message    TEXT,
    code_version        TEXT,
    waiting_on          INTEGER NOT NULL DEFAULT 0,   -- dependencies not done yet
    dependencies        INTEGER NOT NULL DEFAULT 0    -- dependencies it was enqueued with
);

INSERT INTO forge_nb_jobs_v11 (
    id, kind, queue, payload, priority, status, attempts, max_attempts, unique_key,
    created_at, scheduled_at, started_at, finished_at, claimed_by, cancel_requested_at,
    last_error, last_traceback, result, progress, progress_message, code_version
)
SELECT
    id, kind, queue, payload, priority, status, attempts, max_attempts, unique_key,
    created_at, scheduled_at, started_at, finished_at, claimed_by, cancel_requested_at,
    last_error, last_traceback, result, progress, progress_message, code_version
FROM forge_nb_jobs;

DROP TABLE forge_nb_jobs;
ALTER TABLE forge_nb_jobs_v11 RENAME TO forge_nb_jobs;

-- Ids are never reused, even of jobs purged before this migration.
UPDATE sqlite_sequence
SET seq = max(seq, coalesce((SELECT seq FROM forge_nb_v11_sequence), 0))
WHERE name = 'forge_nb_jobs';
DROP TABLE forge_nb_v11_sequence;

-- The indexes of versions 1-10, with waiting jobs holding their unique key like live ones.
CREATE UNIQUE INDEX forge_nb_jobs_unique_live ON forge_nb_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('waiting', 'pending', 'running', 'failed');
CREATE INDEX forge_nb_jobs_running ON forge_nb_jobs (claimed_by) WHERE status = 'running';
CREATE INDEX forge_nb_jobs_status ON forge_nb_jobs (status, id);
CREATE INDEX forge_nb_jobs_queue_status ON forge_nb_jobs (queue, status, id);
CREATE INDEX forge_nb_jobs_kind ON forge_nb_jobs (kind, id);
CREATE INDEX forge_nb_jobs_finished ON forge_nb_jobs (queue, status, finished_at)
    WHERE status IN ('done', 'dead');
CREATE INDEX forge_nb_jobs_queue ON forge_nb_jobs (queue, id);
CREATE INDEX forge_nb_jobs_scheduled ON forge_nb_jobs (scheduled_at, id)
    WHERE status = 'pending' AND scheduled_at > created_at;
CREATE INDEX forge_nb_jobs_claim_kind
    ON forge_nb_jobs (queue, kind, priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'failed');

-- The count triggers of version 7, and a 'waiting' count row for every queue.
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

DROP TRIGGER forge_nb_queues_count_rows;
CREATE TRIGGER forge_nb_queues_count_rows AFTER INSERT ON forge_nb_queues
BEGIN
    INSERT OR IGNORE INTO forge_nb_job_counts (queue, status, n)
    VALUES (new.name, 'waiting', 0), (new.name, 'pending', 0), (new.name, 'running', 0),
           (new.name, 'failed', 0), (new.name, 'done', 0), (new.name, 'dead', 0);
END;
INSERT OR IGNORE INTO forge_nb_job_counts (queue, status, n)
SELECT name, 'waiting', 0 FROM forge_nb_queues;

-- Edges: job_id waits for depends_on. Both directions are read (a job's dependencies, a
-- finished job's dependents).
CREATE TABLE forge_nb_job_deps (
    job_id     INTEGER NOT NULL,
    depends_on INTEGER NOT NULL,
    PRIMARY KEY (job_id, depends_on)
) WITHOUT ROWID;
CREATE INDEX forge_nb_job_deps_dependents ON forge_nb_job_deps (depends_on, job_id);

-- Dependencies that ended without being done, whose waiting dependents are still to end
-- dead (error: `error`). Rows go once the cascade has no waiting dependent left to end.
CREATE TABLE forge_nb_dead_parents (
    job_id INTEGER PRIMARY KEY,
    error  TEXT NOT NULL
);

CREATE TRIGGER forge_nb_jobs_dependency_dead AFTER UPDATE OF status ON forge_nb_jobs
WHEN new.status = 'dead' AND old.status <> 'dead'
  AND EXISTS (SELECT 1 FROM forge_nb_job_deps WHERE depends_on = new.id)
BEGIN
    INSERT OR REPLACE INTO forge_nb_dead_parents (job_id, error)
    VALUES (new.id, 'dependency ' || new.id || ' dead');
END;

CREATE TRIGGER forge_nb_jobs_dependency_gone AFTER DELETE ON forge_nb_jobs
WHEN old.dependencies > 0 OR (
    old.status NOT IN ('done', 'dead')  -- retention deletes done and dead jobs: free for it
    AND EXISTS (SELECT 1 FROM forge_nb_job_deps WHERE depends_on = old.id)
)
BEGIN
    DELETE FROM forge_nb_job_deps WHERE job_id = old.id;
    INSERT OR REPLACE INTO forge_nb_dead_parents (job_id, error)
    SELECT old.id, 'dependency ' || old.id || ' deleted'
    WHERE old.status NOT IN ('done', 'dead')
      AND EXISTS (SELECT 1 FROM forge_nb_job_deps WHERE depends_on = old.id);
END;
