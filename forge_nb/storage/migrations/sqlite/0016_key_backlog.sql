-- v16: a key's backlog waits outside the claimable set (issue 20). A keyed job is *admitted*
-- (pending, failed or running) only while its key has fewer admitted jobs than its limit;
-- the others wait (status 'waiting', waiting_on 0: "held") and are out of the claim index,
-- so a claim never walks past the backlog of a busy key. A job leaving the admitted set
-- (done, dead, cancelled, expired, deleted) hands its key's place to the key's next held job
-- in the same transaction (claim order: priority, scheduled_at, id), or frees it when none
-- waits. The running count and its start check (v12) stay: the limit on running jobs stays
-- exact even while a lowered limit drains.
ALTER TABLE forge_nb_key_slots ADD COLUMN active INTEGER NOT NULL DEFAULT 0;

-- A key's held jobs in promotion order (keyed waiting jobs only: plain jobs are not in it).
CREATE INDEX forge_nb_jobs_key_held
    ON forge_nb_jobs (concurrency_key, priority DESC, scheduled_at, id)
    WHERE status = 'waiting' AND waiting_on = 0 AND concurrency_key IS NOT NULL;

-- Existing backlogs: each key keeps its running and retrying jobs and its first pending ones
-- up to its limit; the rest are held. Then every key counts its admitted jobs.
UPDATE forge_nb_jobs SET status = 'waiting', waiting_on = 0
WHERE id IN (
    SELECT id FROM (
        SELECT j.id, j.status, s.key_limit,
               sum(j.status IN ('running', 'failed'))
                   OVER (PARTITION BY j.concurrency_key) AS busy,
               row_number() OVER (PARTITION BY j.concurrency_key, j.status = 'pending'
                                  ORDER BY j.priority DESC, j.scheduled_at, j.id) AS place
        FROM forge_nb_jobs AS j JOIN forge_nb_key_slots AS s ON s.key = j.concurrency_key
        WHERE j.concurrency_key IS NOT NULL AND j.status IN ('pending', 'running', 'failed')
    )
    WHERE status = 'pending' AND busy + place > key_limit
);

UPDATE forge_nb_key_slots SET active = (
    SELECT count(*) FROM forge_nb_jobs AS j
    WHERE j.concurrency_key = forge_nb_key_slots.key
      AND j.status IN ('pending', 'running', 'failed'));

-- Admission: a keyed job entering the admitted set (other than a held one being promoted:
-- its place was handed over) takes a place, or is held (written back to 'waiting') when
-- its key has none. The hold comes first, so the count sees the key as it was.
CREATE TRIGGER forge_nb_jobs_key_admit AFTER UPDATE OF status ON forge_nb_jobs
WHEN new.concurrency_key IS NOT NULL
  AND new.status IN ('pending', 'failed', 'running')
  AND old.status NOT IN ('pending', 'failed', 'running')
  AND NOT (old.status = 'waiting' AND old.waiting_on = 0)
BEGIN
    UPDATE forge_nb_jobs SET status = 'waiting'
    WHERE id = new.id AND NOT EXISTS (
        SELECT 1 FROM forge_nb_key_slots WHERE key = new.concurrency_key AND active < key_limit);
    UPDATE forge_nb_key_slots SET active = active + 1
    WHERE key = new.concurrency_key AND active < key_limit;
END;

-- A job leaving the admitted set (not into held: only admission writes that) hands its place
-- to the key's next held job (no count changes), or frees it when none waits or the key is
-- above a lowered limit (changes(): the promotion's own row count).
CREATE TRIGGER forge_nb_jobs_key_release AFTER UPDATE OF status ON forge_nb_jobs
WHEN old.concurrency_key IS NOT NULL
  AND old.status IN ('pending', 'failed', 'running')
  AND new.status NOT IN ('pending', 'failed', 'running')
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
WHEN old.concurrency_key IS NOT NULL AND old.status IN ('pending', 'failed', 'running')
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
