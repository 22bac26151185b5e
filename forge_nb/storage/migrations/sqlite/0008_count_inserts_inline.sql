-- v8: enqueues add their new pending jobs to the counts themselves, one UPDATE per queue and
-- batch (the `count_pending` statement, in the enqueue's transaction) instead of a trigger
-- firing once per inserted row: the row trigger cost 8 % of bulk enqueue throughput.
-- Updates and deletes are still counted by the v7 triggers.
DROP TRIGGER forge_nb_jobs_count_insert;
