-- v13: observability (issue 21). Tags: one row per (tag, job), so a tag filter reads its
-- tag's range of the primary key newest first and stops after a page, at any table size.
-- A trigger drops a deleted or purged job's tags (foreign keys are not enforced here).
CREATE TABLE forge_nb_job_tags (
    tag    TEXT    NOT NULL,
    job_id INTEGER NOT NULL,
    PRIMARY KEY (tag, job_id)
) WITHOUT ROWID;

CREATE INDEX forge_nb_job_tags_job ON forge_nb_job_tags (job_id);

CREATE TRIGGER forge_nb_job_tags_gone AFTER DELETE ON forge_nb_jobs
BEGIN
    DELETE FROM forge_nb_job_tags WHERE job_id = OLD.id;
END;

-- Redaction: the payload fields each kind's views mask (`@app.job(redact=[...])`), written by
-- the processes that have the handler, read by every view (a dashboard has no handlers).
CREATE TABLE forge_nb_redactions (
    kind   TEXT PRIMARY KEY,
    fields TEXT NOT NULL                          -- JSON array of field names
);

-- Context propagation (`app.propagate(var)`): the variables' values at enqueue, for the jobs
-- enqueued with some, set around their run. Dropped with the job.
CREATE TABLE forge_nb_job_context (
    job_id  INTEGER PRIMARY KEY,
    context TEXT    NOT NULL                      -- JSON object {variable name: value}
);

CREATE TRIGGER forge_nb_job_context_gone AFTER DELETE ON forge_nb_jobs
BEGIN
    DELETE FROM forge_nb_job_context WHERE job_id = OLD.id;
END;

-- Per-job logs: one row per attempt that logged, its last lines (bounded by the worker),
-- rewritten while the attempt runs. Dropped with the job (so retention sweeps them).
CREATE TABLE forge_nb_job_logs (
    job_id     INTEGER NOT NULL,
    attempt    INTEGER NOT NULL,
    text       TEXT    NOT NULL,
    lines      INTEGER NOT NULL,                  -- lines written (kept or dropped)
    dropped    INTEGER NOT NULL,                  -- earliest lines dropped by the bound
    updated_at REAL    NOT NULL,
    PRIMARY KEY (job_id, attempt)
);

CREATE TRIGGER forge_nb_job_logs_gone AFTER DELETE ON forge_nb_jobs
BEGIN
    DELETE FROM forge_nb_job_logs WHERE job_id = OLD.id;
END;
