"""``global_limit``: a queue's running jobs across every process (SPEC §9.3).

The queue has ``global_limit`` slot rows in the database. A process runs at most as many
jobs of the queue as it holds slots: each tick it frees the slots of dead processes (once
the reaper took their jobs back), gives back what it holds beyond its fair share and does
not use, and takes free slots up to its share. Its local cap drops before it gives a slot
back and rises only after it took one, so the running jobs of the queue never exceed the
limit, while processes come and go.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from forge_nb.runtime.worker import QueuePool, RunningJob


async def rebalance(pool: QueuePool) -> None:
    """Bring this process's slots of the pool's queue to its fair share (one tick's work)."""
    storage = pool.handle.storage
    host = pool.handle.host_id
    limit = pool.config.global_limit
    if limit <= 0:
        if pool.global_cap is not None:  # the limit was lifted: give everything back
            pool.global_cap = None
            await storage.release_queue_slots(pool.name, host, 1_000_000)
        return
    if pool.global_cap is None:
        pool.global_cap = 0  # run nothing until slots are held
    live_after = time.time() - pool.handle.app.stale_after
    share, held, usable = await storage.plan_queue_slots(pool.name, host, limit, live_after)
    # A process never holds more slots than it can use (its per-process ``workers``).
    share = 0 if pool.stopping else min(share, pool.config.workers)
    if held > share:
        # Above its share: claim no more than the share from now on (first here, then in
        # the database), and give back the slots no running job uses.
        pool.global_cap = min(usable, share)
        # A claim in flight may be about to start jobs in the slots it counted on.
        keep = max(share, len(pool.running) + pool.unsettled + pool.claiming)
        if held > keep:
            await storage.release_queue_slots(pool.name, host, held - keep)
            held, usable = await storage.held_queue_slots(pool.name, host, limit)
    elif held < share:
        await storage.take_queue_slots(pool.name, host, share - held, limit)
        held, usable = await storage.held_queue_slots(pool.name, host, limit)
    was = pool.global_cap
    pool.global_cap = min(usable, share)
    if pool.global_cap > was:
        pool.wake()


async def release_all(pool: QueuePool) -> None:
    """The pool stopped: its slots go back at once (not after it looks dead)."""
    if pool.global_cap is not None:
        pool.global_cap = 0
        await pool.handle.storage.release_queue_slots(pool.name, pool.handle.host_id, 1_000_000)


def settled(pool: QueuePool | None, rj: RunningJob) -> None:
    """A run's finish committed: its slot is free for the pool's next claim."""
    rj.unsettled = False
    if pool is not None:
        pool.unsettled -= 1
        pool.wake()
