-- forge-nb schema v1 (SQLite). Times are REAL epoch seconds (UTC).

CREATE TABLE forge_nb_jobs (
    id                  INTEGER PRIMARY KEY AUTOINCREMENT,
    kind                TEXT    NOT NULL,
    queue               TEXT    NOT NULL,
    payload             TEXT    NOT NULL,          -- JSON object
    priority            INTEGER NOT NULL DEFAULT 0,   -- higher runs first
    status              TEXT    NOT NULL DEFAULT 'pending'
                        CHECK (status IN ('pending','running','failed','done','dead')),
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
    progress_message    TEXT
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
    id       INTEGER PRIMARY KEY AUTOINCREMENT,
    job_id   INTEGER NOT NULL,
    at       REAL    NOT NULL,
    event    TEXT    NOT NULL,   -- failed, throttled, cancelled, released, retried, dead, worker_lost
    attempt  INTEGER NOT NULL,
    message  TEXT
);
CREATE INDEX forge_nb_job_events_job ON forge_nb_job_events (job_id, id);

CREATE TABLE forge_nb_queues (
    name                 TEXT PRIMARY KEY,
    workers              INTEGER NOT NULL DEFAULT 10,
    paused               INTEGER NOT NULL DEFAULT 0,
    backoff_enabled      INTEGER NOT NULL DEFAULT 1,
    backoff_base_seconds REAL    NOT NULL DEFAULT 1.0,
    backoff_max_seconds  REAL    NOT NULL DEFAULT 300.0,
    backoff_jitter       INTEGER NOT NULL DEFAULT 1,
    retain_done_seconds  REAL    NOT NULL DEFAULT 86400.0,
    retain_dead_seconds  REAL    NOT NULL DEFAULT 604800.0
);

-- One row per worker slot: id "{queue}-{slot}-{host_id}".
CREATE TABLE forge_nb_processes (
    id             TEXT PRIMARY KEY,
    host_id        TEXT    NOT NULL,
    hostname       TEXT    NOT NULL,
    pid            INTEGER NOT NULL,
    queue          TEXT    NOT NULL,
    current_job    TEXT,
    last_heartbeat REAL    NOT NULL,
    started_at     REAL    NOT NULL,
    version        TEXT    NOT NULL DEFAULT ''
);
CREATE INDEX forge_nb_processes_host ON forge_nb_processes (host_id, last_heartbeat);

CREATE TABLE forge_nb_schedules (
    name         TEXT PRIMARY KEY,
    cron         TEXT    NOT NULL,
    kind         TEXT    NOT NULL,
    payload      TEXT    NOT NULL,
    queue        TEXT    NOT NULL,
    enabled      INTEGER NOT NULL DEFAULT 1,
    tz           TEXT    NOT NULL DEFAULT 'UTC',
    last_fire_at REAL,
    next_fire_at REAL
);

CREATE TABLE forge_nb_leases (
    name       TEXT PRIMARY KEY,
    holder     TEXT NOT NULL,
    expires_at REAL NOT NULL
);

CREATE TABLE forge_nb_rate_limits (
    scope             TEXT PRIMARY KEY,
    capacity          REAL NOT NULL,
    refill_per_second REAL NOT NULL,
    tokens            REAL NOT NULL,
    updated_at        REAL NOT NULL,
    held_until        REAL NOT NULL DEFAULT 0
);

-- Per-process per-minute totals; readers add rows up. Histograms are JSON {bucket: count}.
CREATE TABLE forge_nb_metrics (
    minute          INTEGER NOT NULL,   -- epoch seconds // 60
    queue           TEXT    NOT NULL,
    host_id         TEXT    NOT NULL,
    enqueued        INTEGER NOT NULL DEFAULT 0,
    started         INTEGER NOT NULL DEFAULT 0,
    completed       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    retried         INTEGER NOT NULL DEFAULT 0,
    throttled       INTEGER NOT NULL DEFAULT 0,
    dead            INTEGER NOT NULL DEFAULT 0,
    processing_hist TEXT    NOT NULL DEFAULT '{}',
    e2e_hist        TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (minute, queue, host_id)
);
