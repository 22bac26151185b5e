-- v7: enqueues NOTIFY from the client after their transaction commits. A NOTIFY inside the
-- transaction (this trigger) takes Postgres's global notification lock at commit, so
-- concurrent enqueues on different connections committed one at a time.
DROP TRIGGER forge_nb_jobs_notify ON forge_nb_jobs;
DROP FUNCTION forge_nb_notify_enqueued();
