-- v17: the key triggers' conditions without IN lists (issue 20). SQLite evaluates a trigger's
-- WHEN inside the trigger's program, once per row, and an IN list of constants there builds
-- a fresh ephemeral index at each evaluation: with v16's admission and release triggers
-- firing for every status change of a keyed job, that was most of a keyed drain's time
-- (claims and finishes of keyed jobs cost 2x-3x those of plain ones). The same triggers,
-- their conditions spelled out as comparisons; what they do is v16's.
DROP TRIGGER forge_nb_jobs_key_admit;
DROP TRIGGER forge_nb_jobs_key_release;
DROP TRIGGER forge_nb_jobs_key_release_gone;

CREATE TRIGGER forge_nb_jobs_key_admit AFTER UPDATE OF status ON forge_nb_jobs
WHEN new.concurrency_key IS NOT NULL
  AND (new.status = 'pending' OR new.status = 'failed' OR new.status = 'running')
  AND old.status <> 'pending' AND old.status <> 'failed' AND old.status <> 'running'
  AND NOT (old.status = 'waiting' AND old.waiting_on = 0)
BEGIN
    UPDATE forge_nb_jobs SET status = 'waiting'
    WHERE id = new.id AND NOT EXISTS (
        SELECT 1 FROM forge_nb_key_slots WHERE key = new.concurrency_key AND active < key_limit);
    UPDATE forge_nb_key_slots SET active = active + 1
    WHERE key = new.concurrency_key AND active < key_limit;
END;

CREATE TRIGGER forge_nb_jobs_key_release AFTER UPDATE OF status ON forge_nb_jobs
WHEN old.concurrency_key IS NOT NULL
  AND (old.status = 'pending' OR old.status = 'failed' OR old.status = 'running')
  AND new.status <> 'pending' AND new.status <> 'failed' AND new.status <> 'running'
  AND NOT (new.status = 'waiting' AND new.waiting_on = 0)
BEGIN
    UPDATE forge_nb_jobs SET status = 'pending'
    WHERE id = (
        SELECT id FROM forge_nb_jobs
        WHERE concurrency_key = old.concurrency_key AND status = 'waiting' AND waiting_on = 0
        ORDER BY priority DESC, scheduled_at, id
        LIMIT 1)
      AND (SELECT active <= key_limit FROM forge_nb_key_slots WHERE key = old.concurrency_key);
    UPDATE forge_nb_key_slots SET active = max(0, active - 1)
    WHERE key = old.concurrency_key AND changes() = 0;
END;

CREATE TRIGGER forge_nb_jobs_key_release_gone AFTER DELETE ON forge_nb_jobs
WHEN old.concurrency_key IS NOT NULL
  AND (old.status = 'pending' OR old.status = 'failed' OR old.status = 'running')
BEGIN
    UPDATE forge_nb_jobs SET status = 'pending'
    WHERE id = (
        SELECT id FROM forge_nb_jobs
        WHERE concurrency_key = old.concurrency_key AND status = 'waiting' AND waiting_on = 0
        ORDER BY priority DESC, scheduled_at, id
        LIMIT 1)
      AND (SELECT active <= key_limit FROM forge_nb_key_slots WHERE key = old.concurrency_key);
    UPDATE forge_nb_key_slots SET active = max(0, active - 1)
    WHERE key = old.concurrency_key AND changes() = 0;
END;
