-- v5: metrics rolled up into 5-minute and hourly buckets (all hosts added up), so long
-- ranges read a few hundred rows instead of one per minute, queue and host.
CREATE TABLE forge_nb_metric_rollups (
    step            INTEGER NOT NULL,   -- bucket width in minutes (5 or 60)
    minute          INTEGER NOT NULL,   -- first minute of the bucket (epoch seconds // 60)
    queue           TEXT    NOT NULL,
    enqueued        INTEGER NOT NULL DEFAULT 0,
    started         INTEGER NOT NULL DEFAULT 0,
    completed       INTEGER NOT NULL DEFAULT 0,
    failed          INTEGER NOT NULL DEFAULT 0,
    retried         INTEGER NOT NULL DEFAULT 0,
    throttled       INTEGER NOT NULL DEFAULT 0,
    dead            INTEGER NOT NULL DEFAULT 0,
    processing_hist TEXT    NOT NULL DEFAULT '{}',
    e2e_hist        TEXT    NOT NULL DEFAULT '{}',
    PRIMARY KEY (step, minute, queue)
);
-- Per step, the first minute not rolled up yet: readers take minute rows from there on.
CREATE TABLE forge_nb_rollup_marks (
    step    INTEGER PRIMARY KEY,
    through INTEGER NOT NULL
);
