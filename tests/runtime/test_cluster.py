"""Several `forge-nb worker` processes sharing one database: cron, leader loss, budgets, metrics."""

from __future__ import annotations

import asyncio
import os
import signal
import time
from datetime import datetime
from pathlib import Path

import pytest

import forge_nb as fnb
from forge_nb.runtime.leader import LEADER_LEASE

from .conftest import Spawn, marks
from .test_app import eventually
from .test_processes import hosts_registered

pytestmark = pytest.mark.slow
LEASE_TTL = 2.0


def fire_seconds(jobs: list[fnb.JobRecord]) -> list[int]:
    """The tick (epoch second) of each cron job, from its unique key."""
    return sorted(
        int(datetime.fromisoformat(j.unique_key.split(":", 2)[2]).timestamp()) for j in jobs
    )


async def leader_host(app: fnb.App) -> str | None:
    now = time.time()
    for lease in await app.leases():
        if lease.name == LEADER_LEASE and lease.expires_at > now:
            return lease.holder
    return None


async def test_three_workers_fire_each_cron_tick_once_and_survive_leader_loss(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        workers = [spawn_worker(db_url, "--lease-ttl", str(LEASE_TTL)) for _ in range(3)]
        await eventually(lambda: hosts_registered(app, 3), timeout=30)
        await app.ensure_schedule("beat", "* * * * * *", "tick")
        await asyncio.sleep(8)
        before = fire_seconds(await app.jobs(kind="tick", limit=1000))

        # Kill the leader; another process must take over within the lease TTL + a tick.
        leader = await eventually(lambda: leader_host(app))
        pid = next(p.pid for p in await app.processes() if p.host_id == leader)
        os.kill(pid, signal.SIGKILL)
        killed_at = time.time()
        new_leader = await eventually(lambda: _new_leader(app, leader), timeout=LEASE_TTL + 5)
        took_over_s = time.time() - killed_at
        await asyncio.sleep(3)
        after = fire_seconds(await app.jobs(kind="tick", limit=1000))
        ran = marks(tmp_path, "tick")
    assert new_leader != leader and took_over_s <= LEASE_TTL + 2
    assert len(before) >= 6 and before == list(range(before[0], before[0] + len(before)))
    assert len(after) == len(set(after)), "no tick fired twice"
    # After the takeover, missed ticks coalesce into one fire, then every second again.
    tail = [s for s in after if s > max(before) + LEASE_TTL + 2]
    assert tail and tail == list(range(tail[0], tail[0] + len(tail)))
    all_runs = [job_id for ids in ran.values() for job_id in ids]
    assert len(all_runs) == len(set(all_runs)), "each fire ran once"
    assert sum(w.poll() is None for w in workers) == 2


async def _new_leader(app: fnb.App, old: str) -> str | None:
    holder = await leader_host(app)
    return holder if holder not in (None, old) else None


async def test_shared_bucket_holds_its_budget_across_processes(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    capacity, refill = 5, 5.0
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        await app.ensure_rate_limit("shared", capacity=capacity, refill_per_second=refill)
        spawn_worker(db_url), spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=30)
        take = app.job(kind="take_token")(lambda ctx: None)
        refs = await take.enqueue_many([() for _ in range(25)])
        await asyncio.gather(*(r.wait(60) for r in refs))
    per_process = {
        int(path.suffix[1:]): [float(t) for t in path.read_text().split()]
        for path in tmp_path.glob("token.*")
    }
    stamps = sorted(t for ts in per_process.values() for t in ts)
    assert len(stamps) == 25 and len(per_process) == 2, "both processes drew from the bucket"
    # Any window of T seconds holds at most capacity + refill·T acquires.
    for i, start in enumerate(stamps):
        for j in range(i, len(stamps)):
            window = stamps[j] - start
            assert j - i + 1 <= capacity + refill * window + 1, (i, j, window)


async def test_metrics_add_up_across_processes(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default")
        a, b = spawn_worker(db_url), spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=30)
        work = app.job(kind="maybe_fail", max_attempts=1)(lambda ctx, fail: None)
        await work.enqueue_many([(i % 4 == 0,) for i in range(200)])
        await eventually(lambda: _finished(app, 200), timeout=60)
        for worker in (a, b):
            worker.send_signal(signal.SIGTERM)  # a clean stop flushes the last metrics
        await asyncio.to_thread(a.wait, 30)
        await asyncio.to_thread(b.wait, 30)
        logs = "\n".join(p.read_text() for p in sorted(tmp_path.glob("worker-*.log")))
        assert (a.returncode, b.returncode) == (0, 0), logs  # a clean stop, its flush included
        points = await app.metrics()
        counts = (await app.counts())["default"]
    totals = {k: sum(p[k] for p in points) for k in ("enqueued", "started", "completed", "dead")}
    assert totals == {
        "enqueued": 200,
        "started": 200,
        "completed": counts["done"],
        "dead": counts["dead"],
    }, (points, logs)
    assert counts["done"] == 150 and counts["dead"] == 50


async def _finished(app: fnb.App, n: int) -> bool:
    counts = (await app.counts())["default"]
    return counts["done"] + counts["dead"] == n
