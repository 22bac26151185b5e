"""Metric roll-ups: long ranges read 5-minute and hourly buckets yet add up exactly."""

from __future__ import annotations

import asyncio
import random
import time
from dataclasses import replace

import pytest

import forge_nb as fnb
from forge_nb.runtime import rollup
from forge_nb.runtime.metrics import merge_histograms
from forge_nb.storage import Storage
from forge_nb.storage.records import METRIC_COUNTERS, MetricRow

pytestmark = pytest.mark.asyncio

#: Ten minutes ago, on an hour boundary minus 7 minutes: ranges straddle hour edges.
NOW = (time.time() // 3600) * 3600 - 7 * 60
CURRENT = int(NOW // 60)
HOURS = 5


def random_rows(rng: random.Random) -> list[MetricRow]:
    """Five hours of minutes for two queues, three hosts (one the enqueue '*' host)."""
    rows = []
    for minute in range(CURRENT - HOURS * 60, CURRENT + 1):
        for queue in ("a", "b"):
            for host in ("*", "h1", "h2"):
                if rng.random() < 0.3:
                    continue  # quiet minutes have no row
                rows.append(
                    MetricRow(
                        minute,
                        queue,
                        host,
                        **{c: rng.randrange(0, 50) for c in METRIC_COUNTERS},
                        processing_hist={rng.randrange(60, 140): rng.randrange(1, 9)},
                        e2e_hist={rng.randrange(60, 160): rng.randrange(1, 9)},
                    )
                )
    return rows


def totals(rows: list[MetricRow]) -> tuple[dict[str, int], dict[int, int], dict[int, int]]:
    """Counters and histograms added up over rows."""
    counts = {c: sum(getattr(r, c) for r in rows) for c in METRIC_COUNTERS}
    processing = merge_histograms(r.processing_hist for r in rows)
    return counts, processing, merge_histograms(r.e2e_hist for r in rows)


async def test_rolled_up_buckets_equal_the_minutes_they_replace(storage: Storage) -> None:
    rng = random.Random(7)
    minutes = random_rows(rng)
    await storage.write_metrics(minutes)
    before = {step: await rollup.read_rows(storage, 0, CURRENT, step=step) for step in (5, 60)}

    written = await rollup.roll_up(storage, NOW, keep_min=HOURS * 60 + 60)
    marks = await storage.rollup_marks()
    assert written > 0
    assert marks[5] == (CURRENT - rollup.GRACE_MIN) // 5 * 5
    assert marks[60] == marks[5] // 60 * 60, "an hour is rolled only once its 5-minute rows are"
    assert await rollup.roll_up(storage, NOW, keep_min=HOURS * 60 + 60) == 0, "idempotent"
    for step, rows in before.items():
        assert await rollup.read_rows(storage, 0, CURRENT, step=step) == rows, f"step {step}"
    for step in (1, 5, 60):  # counters alone (summed by the database) are the same sums
        full = await rollup.read_rows(storage, 0, CURRENT, step=step)
        counters = await rollup.read_rows(storage, 0, CURRENT, step=step, histograms=False)
        assert counters == [replace(r, processing_hist={}, e2e_hist={}) for r in full], step
    assert totals(before[60]) == totals(minutes)

    # Totals over any range (unaligned ends included) match the raw minutes exactly.
    for _ in range(25):
        first = rng.randrange(CURRENT - HOURS * 60 - 10, CURRENT)
        last = rng.randrange(first, CURRENT + 2)
        expected = [m for m in minutes if first <= m.minute <= last and m.queue == "a"]
        span = await rollup.span_histograms(storage, first, last, "a")
        assert span == totals(expected)[1:], (first, last)


async def test_minutes_after_the_mark_still_count(db_url: str) -> None:
    async with fnb.App(db_url) as app:
        storage = await app.storage()
        old = CURRENT - 120
        await storage.write_metrics([MetricRow(old, "q", "h1", completed=5)])
        assert await app.roll_up_metrics() > 0
        # A late arrival (now) lands after the mark: readers add it from minute rows.
        now_minute = int(time.time() // 60)
        await storage.write_metrics([MetricRow(now_minute, "q", "h1", completed=2)])
        since = (old - 60) * 60
        hourly = await app.metrics(queue="q", since=since, step=60)
        assert sum(p["completed"] for p in hourly) == 7
        assert [p["minute"].minute for p in hourly] == [0] * len(hourly), "hour buckets"
        per_minute = await app.metrics(queue="q", since=since)
        assert sum(p["completed"] for p in per_minute) == 7
        with pytest.raises(ValueError, match="step"):
            await app.metrics(step=7)


async def test_the_leader_rolls_metrics_up(db_url: str) -> None:
    async with fnb.App(db_url) as app:
        storage = await app.storage()
        await storage.write_metrics([MetricRow(CURRENT - 30, "q", "h1", completed=3)])
        await app.start()
        for _ in range(200):
            # (the first roll catches up a day at a time: wait for the mark to pass the row)
            if (await storage.rollup_marks()).get(5, 0) > CURRENT - 30:
                break
            await asyncio.sleep(0.05)
        rolled = await storage.read_rollups(5, 0, time.time())
        assert [(r.minute, r.completed) for r in rolled] == [((CURRENT - 30) // 5 * 5, 3)]
