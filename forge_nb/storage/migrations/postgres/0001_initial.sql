-- forge-nb schema v1 (Postgres). Same tables and columns as the SQLite schema.
-- Times are double precision epoch seconds (UTC); payload/result are JSON text.
-- Every table is prefixed forge_nb_ (a Postgres database is often shared).
-- Names and keys use COLLATE "C": byte order like SQLite, and cheaper index comparisons.

CREATE TABLE forge_nb_jobs (
    id                  bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    kind                text COLLATE "C" NOT NULL,
    queue               text COLLATE "C" NOT NULL,
    payload             text             NOT NULL,          -- JSON object
    priority            bigint           NOT NULL DEFAULT 0, -- higher runs first
    status              text COLLATE "C" NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending', 'running', 'failed', 'done', 'dead')),
    attempts            integer          NOT NULL DEFAULT 0, -- runs started
    max_attempts        bigint           NOT NULL,
    unique_key          text COLLATE "C",
    created_at          double precision NOT NULL,
    scheduled_at        double precision NOT NULL,          -- earliest next run
    started_at          double precision,                   -- start of the latest run
    finished_at         double precision,                   -- end of the latest run
    claimed_by          text COLLATE "C",                   -- host_id of the owning process
    cancel_requested_at double precision,
    last_error          text,
    last_traceback      text,
    result              text,                               -- JSON
    progress            double precision,
    progress_message    text
);

-- The claim: runnable jobs of one queue in priority, time, id order.
CREATE INDEX forge_nb_jobs_claim ON forge_nb_jobs (queue, priority DESC, scheduled_at, id)
    WHERE status IN ('pending', 'failed');
-- One live job per unique key; terminal jobs free it.
CREATE UNIQUE INDEX forge_nb_jobs_unique_live ON forge_nb_jobs (unique_key)
    WHERE unique_key IS NOT NULL AND status IN ('pending', 'running', 'failed');
-- Reaper and cancel polling: running jobs by owner.
CREATE INDEX forge_nb_jobs_running ON forge_nb_jobs (claimed_by) WHERE status = 'running';
-- Inspection (newest first, keyset on id) and counts.
CREATE INDEX forge_nb_jobs_status ON forge_nb_jobs (status, id);
CREATE INDEX forge_nb_jobs_queue_status ON forge_nb_jobs (queue, status, id);
CREATE INDEX forge_nb_jobs_kind ON forge_nb_jobs (kind, id);
-- Retention sweep.
CREATE INDEX forge_nb_jobs_finished ON forge_nb_jobs (queue, status, finished_at)
    WHERE status IN ('done', 'dead');

-- History beyond what the row itself shows (created/started/finished are on the row).
CREATE TABLE forge_nb_job_events (
    id       bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    job_id   bigint           NOT NULL,
    at       double precision NOT NULL,
    event    text             NOT NULL,  -- failed, throttled, cancelled, released, retried, dead, worker_lost
    attempt  integer          NOT NULL,
    message  text
);
CREATE INDEX forge_nb_job_events_job ON forge_nb_job_events (job_id, id);

CREATE TABLE forge_nb_queues (
    name                 text COLLATE "C" PRIMARY KEY,
    workers              integer          NOT NULL DEFAULT 10,
    paused               boolean          NOT NULL DEFAULT false,
    backoff_enabled      boolean          NOT NULL DEFAULT true,
    backoff_base_seconds double precision NOT NULL DEFAULT 1.0,
    backoff_max_seconds  double precision NOT NULL DEFAULT 300.0,
    backoff_jitter       boolean          NOT NULL DEFAULT true,
    retain_done_seconds  double precision NOT NULL DEFAULT 86400.0,
    retain_dead_seconds  double precision NOT NULL DEFAULT 604800.0
);

-- One row per worker slot: id "{queue}-{slot}-{host_id}".
CREATE TABLE forge_nb_processes (
    id             text COLLATE "C" PRIMARY KEY,
    host_id        text COLLATE "C" NOT NULL,
    hostname       text             NOT NULL,
    pid            bigint           NOT NULL,
    queue          text             NOT NULL,
    current_job    text,
    last_heartbeat double precision NOT NULL,
    started_at     double precision NOT NULL,
    version        text             NOT NULL DEFAULT ''
);
CREATE INDEX forge_nb_processes_host ON forge_nb_processes (host_id, last_heartbeat);

CREATE TABLE forge_nb_schedules (
    name         text COLLATE "C" PRIMARY KEY,
    cron         text    NOT NULL,
    kind         text    NOT NULL,
    payload      text    NOT NULL,
    queue        text    NOT NULL,
    enabled      boolean NOT NULL DEFAULT true,
    tz           text    NOT NULL DEFAULT 'UTC',
    last_fire_at double precision,
    next_fire_at double precision
);

CREATE TABLE forge_nb_leases (
    name       text COLLATE "C" PRIMARY KEY,
    holder     text             NOT NULL,
    expires_at double precision NOT NULL
);

CREATE TABLE forge_nb_rate_limits (
    scope             text COLLATE "C" PRIMARY KEY,
    capacity          double precision NOT NULL,
    refill_per_second double precision NOT NULL,
    tokens            double precision NOT NULL,
    updated_at        double precision NOT NULL,
    held_until        double precision NOT NULL DEFAULT 0
);

-- Per-process per-minute totals; readers add rows up. Histograms are JSON {bucket: count}.
CREATE TABLE forge_nb_metrics (
    minute          bigint NOT NULL,   -- epoch seconds // 60
    queue           text COLLATE "C" NOT NULL,
    host_id         text COLLATE "C" NOT NULL,
    enqueued        bigint NOT NULL DEFAULT 0,
    started         bigint NOT NULL DEFAULT 0,
    completed       bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    retried         bigint NOT NULL DEFAULT 0,
    throttled       bigint NOT NULL DEFAULT 0,
    dead            bigint NOT NULL DEFAULT 0,
    processing_hist text   NOT NULL DEFAULT '{}',
    e2e_hist        text   NOT NULL DEFAULT '{}',
    PRIMARY KEY (minute, queue, host_id)
);

