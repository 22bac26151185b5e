"""Per-key concurrency across real `forge-nb worker` processes, on both backends (SPEC §9.3)."""

from __future__ import annotations

import asyncio
import itertools
import signal
from collections import defaultdict
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Spawn
from .test_app import eventually
from .test_processes import hosts_registered

pytestmark = pytest.mark.slow


def intervals(tmp_path: Path) -> tuple[dict[str, list[tuple[float, float]]], set[int]]:
    """Run intervals per customer, and the pids that ran them."""
    out: dict[str, list[tuple[float, float]]] = defaultdict(list)
    pids = set()
    for path in tmp_path.glob("interval.*"):
        pids.add(int(path.suffix[1:]))
        for line in path.read_text().split("\n"):
            if line:
                customer, start, end = line.split()
                out[customer].append((float(start), float(end)))
    return out, pids


async def test_runs_of_one_key_never_overlap_across_two_processes(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default", workers=8)
        a, b = spawn_worker(db_url), spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=20)

        @app.job(kind="keyed_nap", concurrency_key="customer", key_limit=1)
        async def keyed_nap(ctx: fnb.JobCtx, customer: str, seconds: float) -> None: ...

        customers = sorted(f"c{i:02}" for i in range(12))  # more keys than one process's slots
        calls = [{"customer": c, "seconds": 0.15} for _ in range(4) for c in customers]
        await keyed_nap.enqueue_many(calls)

        async def all_done() -> bool:
            return (await app.counts())["default"]["done"] == len(calls)

        await eventually(all_done, timeout=60, interval=0.2)
    runs, pids = intervals(tmp_path)
    assert pids == {a.pid, b.pid}, "both processes ran keyed jobs"
    assert sorted(runs) == customers and all(len(r) == 4 for r in runs.values())
    for customer, spans in runs.items():
        spans.sort()
        for (_, end), (start, _) in itertools.pairwise(spans):
            assert start >= end, f"two runs of {customer} overlapped"
    everything = sorted((s, e, c) for c, spans in runs.items() for s, e in spans)
    overlapping_keys = any(
        s2 < e1 and c1 != c2 for (_, e1, c1), (s2, _, c2) in itertools.combinations(everything, 2)
    )
    assert overlapping_keys, "different keys ran at the same time"


async def test_template_buckets_are_per_scope_and_hold_across_processes(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default", workers=4)
        await app.ensure_rate_limit("user:*", capacity=3, refill_per_second=0.001)
        a, b = spawn_worker(db_url), spawn_worker(db_url)
        await eventually(lambda: hosts_registered(app, 2), timeout=20)
        user_token = app.job(kind="user_token")(lambda ctx, user: None)
        await user_token.enqueue_many([(u,) for _ in range(10) for u in ("ann", "bob")])

        async def all_done() -> bool:
            return (await app.counts())["default"]["done"] == 20

        await eventually(all_done, timeout=60, interval=0.2)
        buckets = {r.scope: r for r in await app.busiest_rate_limits()}
    taken: dict[str, int] = defaultdict(int)
    pids = set()
    for path in tmp_path.glob("user_token.*"):
        pids.add(int(path.suffix[1:]))
        for line in path.read_text().split("\n"):
            if line:
                user, ok = line.split()
                taken[user] += int(ok)
    assert dict(taken) == {"ann": 3, "bob": 3}, "each user's budget, once, across processes"
    assert pids == {a.pid, b.pid}
    assert sorted(buckets) == ["user:ann", "user:bob"]
    assert all(r.template == "user:*" for r in buckets.values())


async def test_global_limit_holds_across_three_processes_and_rebalances_when_one_dies(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    limit = 4
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default", workers=8)
        await app.set_queue_config("default", global_limit=limit)
        workers = [spawn_worker(db_url) for _ in range(3)]
        await eventually(lambda: hosts_registered(app, 3), timeout=30)
        nap = app.job(kind="nap")(lambda ctx, seconds: None)
        await nap.enqueue_many([(0.3,) for _ in range(60)])
        storage = await app.storage()
        peak = 0

        async def sample_until(done: int) -> None:
            nonlocal peak
            while True:
                counts = (await app.counts())["default"]
                peak = max(peak, counts["running"])
                assert counts["running"] <= limit, counts
                if counts["done"] >= done:
                    return
                await asyncio.sleep(0.02)

        await asyncio.wait_for(sample_until(15), 60)
        assert peak == limit, "the limit is used, not only respected"
        hosts = {p.host_id: p.pid for p in await app.processes()}
        held = {h: (await storage.held_queue_slots("default", h, limit))[1] for h in hosts}
        assert sorted(held.values()) == [1, 1, 2], f"fair shares of 4 among 3: {held}"
        workers[0].send_signal(signal.SIGKILL)
        dead_host = next(h for h, pid in hosts.items() if pid == workers[0].pid)

        async def rebalanced() -> bool:
            shares = [
                (await storage.held_queue_slots("default", h, limit))[1]
                for h in hosts
                if h != dead_host
            ]
            return sorted(shares) == [2, 2]

        await asyncio.wait_for(sample_until(0), 5)
        await eventually(rebalanced, timeout=30, interval=0.1)
        await asyncio.wait_for(sample_until(60), 90)
