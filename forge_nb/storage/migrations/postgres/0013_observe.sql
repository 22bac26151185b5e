-- v13: observability (issue 21). Tags: one row per (tag, job), so a tag filter reads its
-- tag's range of the primary key newest first and stops after a page, at any table size.
-- A deleted or purged job takes its tags with it (the foreign key's cascade).
CREATE TABLE forge_nb_job_tags (
    tag    text COLLATE "C" NOT NULL,
    job_id bigint NOT NULL REFERENCES forge_nb_jobs (id) ON DELETE CASCADE,
    PRIMARY KEY (tag, job_id)
);

CREATE INDEX forge_nb_job_tags_job ON forge_nb_job_tags (job_id);

-- Redaction: the payload fields each kind's views mask (`@app.job(redact=[...])`), written by
-- the processes that have the handler, read by every view (a dashboard has no handlers).
CREATE TABLE forge_nb_redactions (
    kind   text COLLATE "C" PRIMARY KEY,
    fields text NOT NULL                          -- JSON array of field names
);

-- Context propagation (`app.propagate(var)`): the variables' values at enqueue, for the jobs
-- enqueued with some, set around their run. Dropped with the job.
CREATE TABLE forge_nb_job_context (
    job_id  bigint PRIMARY KEY REFERENCES forge_nb_jobs (id) ON DELETE CASCADE,
    context text NOT NULL                         -- JSON object {variable name: value}
);

-- Per-job logs: one row per attempt that logged, its last lines (bounded by the worker),
-- rewritten while the attempt runs. Dropped with the job (so retention sweeps them).
CREATE TABLE forge_nb_job_logs (
    job_id     bigint NOT NULL REFERENCES forge_nb_jobs (id) ON DELETE CASCADE,
    attempt    integer NOT NULL,
    text       text NOT NULL,
    lines      integer NOT NULL,                  -- lines written (kept or dropped)
    dropped    integer NOT NULL,                  -- earliest lines dropped by the bound
    updated_at double precision NOT NULL,
    PRIMARY KEY (job_id, attempt)
);
