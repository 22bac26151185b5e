-- v2: per-process samples of resources and database health, one JSON document per minute.
CREATE TABLE forge_nb_samples (
    minute  bigint           NOT NULL,  -- epoch seconds // 60
    host_id text COLLATE "C" NOT NULL,
    kind    text COLLATE "C" NOT NULL,  -- 'resources' or 'db'
    data    text             NOT NULL,  -- JSON object, same keys on every backend
    PRIMARY KEY (kind, minute, host_id)
);

-- Jobs of one queue newest first (the Jobs page filtered by queue alone).
CREATE INDEX forge_nb_jobs_queue ON forge_nb_jobs (queue, id);
