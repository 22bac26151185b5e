"""Metric roll-ups: per-minute rows summed into 5-minute and hourly buckets.

Each process writes one row per minute, queue and host, so seven days are
hundreds of thousands of rows. The leader adds closed minutes up into
5-minute buckets and those into hours (all hosts in one row per queue), and
moves a per-step mark. Readers take roll-ups before the mark and finer rows
after it, so a range is complete and exact whether or not the roller has
caught up: roll-ups only make long ranges cheap.
"""

from __future__ import annotations

import asyncio
import math
from collections.abc import Iterable

from forge_nb.runtime.metrics import merge_histograms
from forge_nb.storage.base import Storage
from forge_nb.storage.records import METRIC_COUNTERS, MetricRow

#: Roll-up widths in minutes, finest first; each is built from the one before (or minutes).
STEPS = (5, 60)
#: Minutes a closed minute waits before it is rolled (processes flush within seconds).
GRACE_MIN = 2
#: Minutes rolled per storage round trip when catching up (a day of minute rows).
CHUNK_MIN = 24 * 60
#: Every width a reader may ask for.
VALID_STEPS = (1, *STEPS)


def _finer(step: int) -> int:
    """The step a roll-up is built from."""
    i = STEPS.index(step)
    return STEPS[i - 1] if i else 1


def aggregate(rows: Iterable[MetricRow], step: int) -> list[MetricRow]:
    """Rows summed per (``step``-minute bucket, queue), hosts merged into ``'*'``."""
    groups: dict[tuple[int, str], list[MetricRow]] = {}
    for row in rows:
        groups.setdefault((row.minute // step * step, row.queue), []).append(row)
    return [
        MetricRow(
            minute,
            queue,
            "*",
            **{c: sum(getattr(r, c) for r in group) for c in METRIC_COUNTERS},
            processing_hist=merge_histograms(r.processing_hist for r in group),
            e2e_hist=merge_histograms(r.e2e_hist for r in group),
        )
        for (minute, queue), group in sorted(groups.items())
    ]


def _sources(first: int, last: int, step: int, marks: dict[int, int]) -> list[tuple[int, int, int]]:
    """Where a ``step``-minute read of minutes [first, last] finds its rows.

    ``(stored step, first, last)`` parts in time order, stored step 1 being minute
    rows: roll-ups of ``step`` up to its mark, then finer rows after it.
    """
    if step == 1:
        return [(1, first, last)]
    mark = marks.get(step, first)
    parts = [(step, first, min(last, mark - 1))] if mark > first else []
    rest = max(first, mark)
    if rest <= last:
        parts += _sources(rest, last, _finer(step), marks)
    return parts


async def read_rows(
    storage: Storage,
    first: int,
    last: int,
    queue: str | None = None,
    step: int = 1,
    marks: dict[int, int] | None = None,
    histograms: bool = True,
) -> list[MetricRow]:
    """One row per (``step``-minute bucket, queue) of minutes [first, last], oldest first.

    ``first`` is rounded down to a whole bucket. All hosts are added up. Buckets
    before the step's mark come from its roll-ups (one row each already); the rest
    are summed from finer rows.
    """
    if step not in VALID_STEPS:
        raise ValueError(f"step must be one of {VALID_STEPS} minutes, not {step!r}")
    first = first // step * step
    if last < first:
        return []
    if step != 1 and marks is None:
        marks = await storage.rollup_marks()
    rolled: list[MetricRow] = []  # one row per bucket already
    finer: list[MetricRow] = []  # to be added up per bucket (finer parts may share one)
    for source, lo, hi in _sources(first, last, step, marks or {}):
        since, until = lo * 60, hi * 60
        if source == step != 1:
            rolled += await storage.read_rollups(step, since, until, queue, histograms)
        elif source != 1:
            finer += await storage.read_rollups(source, since, until, queue, histograms)
        elif histograms:
            finer += await storage.read_metrics(since, until, queue)
        else:  # the database adds hosts and minutes up (minutes are always the last part)
            summed = await storage.sum_metrics(step, since, until, queue)
            if not finer:
                return rolled + summed
            finer += summed
    return rolled + aggregate(finer, step)


def _span_sources(first: int, last: int, marks: dict[int, int]) -> list[tuple[int, int, int]]:
    """Stored rows covering exactly minutes [first, last], as coarse as possible.

    Whole hours come from hourly rows, the partial hours at either end from
    5-minute rows, and the partial 5 minutes from minute rows.
    """
    lo, hi = first, last + 1  # half-open
    for step in reversed(STEPS):
        inner_lo, inner_hi = math.ceil(lo / step) * step, hi // step * step
        if inner_hi - inner_lo >= step:
            parts = _sources(inner_lo, inner_hi - 1, step, marks)
            for a, b in ((lo, inner_lo), (inner_hi, hi)):
                if b > a:
                    parts += _span_sources(a, b - 1, marks)
            return parts
    return [(1, first, last)]


async def span_histograms(
    storage: Storage, first: int, last: int, queue: str | None = None
) -> tuple[dict[int, int], dict[int, int]]:
    """Processing and end-to-end histograms over exactly minutes [first, last].

    The database adds each stored part up, so a week costs a few small queries.
    """
    marks = await storage.rollup_marks()
    parts = [
        await storage.sum_histograms(source, lo * 60, hi * 60, queue)
        for source, lo, hi in _span_sources(first, last, marks)
    ]
    return (
        merge_histograms(processing for processing, _ in parts),
        merge_histograms(e2e for _, e2e in parts),
    )


async def roll_up(storage: Storage, now: float, keep_min: int) -> int:
    """Roll closed minutes into every step; return how many buckets were written.

    Idempotent and restartable: a bucket is rebuilt whole from finer rows and the
    mark moves in the same transaction, so a crash between chunks loses nothing.
    ``keep_min`` bounds how far back a first roll starts (the metrics retention).
    """
    current = int(now // 60)
    marks = await storage.rollup_marks()
    written = 0
    for step in STEPS:
        finer = _finer(step)
        ready = (current - GRACE_MIN) // step * step
        if finer != 1:  # a bucket is only whole once every finer bucket in it is
            ready = min(ready, marks.get(finer, 0) // step * step)
        start = marks.get(step, (current - keep_min) // STEPS[-1] * STEPS[-1])
        while start < ready:
            end = min(ready, start + CHUNK_MIN)
            since, until = start * 60, (end - 1) * 60
            found = await (
                storage.read_metrics(since, until)
                if finer == 1
                else storage.read_rollups(finer, since, until)
            )
            rows = aggregate(found, step)
            await storage.write_rollups(step, rows, end)
            written += len(rows)
            marks[step] = start = end
            await asyncio.sleep(0)  # let claims in between chunks
    return written
