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
