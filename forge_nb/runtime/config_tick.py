"""The config tick: follow live queue settings, publish the kinds this process runs, and
write what was gathered in memory (progress, metrics, resource samples)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from forge_nb.errors import StorageError
from forge_nb.runtime import global_slots

if TYPE_CHECKING:
    from forge_nb.runtime.queue_handle import QueueHandle


async def tick(handle: QueueHandle) -> None:
    """Follow live config, keep the change listener up, store progress and metrics."""
    await handle.storage.watch(handle.on_db_change)
    for config in await handle.storage.queues():
        pool = handle.pools.get(config.name)
        if pool is not None:
            if pool.config != config:
                await pool.apply_config(config)
            await global_slots.rebalance(pool)
        elif handle.app.works_queue(config.name) and not handle.stopping:
            await handle.add_pool(config)
    await handle.refresh_shipped_code()
    await publish_kinds(handle)
    await flush(handle)


async def publish_kinds(handle: QueueHandle) -> None:
    """Rewrite the kinds our process rows list when the handlers changed."""
    kinds = handle.runnable_kinds()
    if kinds != handle.published_kinds:
        await handle.storage.heartbeat(handle.host_id, time.time(), {}, kinds=sorted(kinds))
        handle.published_kinds = kinds


async def flush(handle: QueueHandle) -> None:
    """Write progress and metrics gathered in memory."""
    progress = handle.app._take_progress()
    if progress:
        await handle.storage.update_progress(progress)
    now = time.time()
    minute = int(now // 60)
    resources = {"hostname": handle.hostname, **handle.resources.take(now)}
    db = handle.app.db_probe.take(handle.storage.pool_capacity(), now)
    await handle.storage.write_samples(
        [(minute, handle.host_id, "resources", resources), (minute, handle.host_id, "db", db)]
    )
    rows = handle.metrics.dirty_rows(now)
    if rows:
        try:
            await handle.storage.write_metrics(rows)
        except StorageError:
            handle.metrics.restore(rows)
            raise
