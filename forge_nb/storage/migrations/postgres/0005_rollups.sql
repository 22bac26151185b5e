-- v5: metrics rolled up into 5-minute and hourly buckets (all hosts added up), so long
-- ranges read a few hundred rows instead of one per minute, queue and host.
CREATE TABLE forge_nb_metric_rollups (
    step            integer NOT NULL,   -- bucket width in minutes (5 or 60)
    minute          bigint  NOT NULL,   -- first minute of the bucket (epoch seconds // 60)
    queue           text COLLATE "C" NOT NULL,
    enqueued        bigint NOT NULL DEFAULT 0,
    started         bigint NOT NULL DEFAULT 0,
    completed       bigint NOT NULL DEFAULT 0,
    failed          bigint NOT NULL DEFAULT 0,
    retried         bigint NOT NULL DEFAULT 0,
    throttled       bigint NOT NULL DEFAULT 0,
    dead            bigint NOT NULL DEFAULT 0,
    processing_hist text   NOT NULL DEFAULT '{}',
    e2e_hist        text   NOT NULL DEFAULT '{}',
    PRIMARY KEY (step, minute, queue)
);
-- Per step, the first minute not rolled up yet: readers take minute rows from there on.
CREATE TABLE forge_nb_rollup_marks (
    step    integer PRIMARY KEY,
    through bigint NOT NULL
);
