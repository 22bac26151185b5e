"""What the dashboard reads: one `Tick` per refresh, shared by every session of a server.

Each browser session ticks every 1.5 s. Without sharing, ten open tabs would
run ten ``counts()`` queries per tick; `SnapshotSource` keeps each answer for a
second and lets concurrent sessions await the same in-flight query. This module
imports no UI library: it turns database rows into plain lists for the charts.
"""

from __future__ import annotations

import asyncio
import math
import time
import weakref
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any, TypeVar

from forge_nb.runtime.app import App
from forge_nb.runtime.metrics import merge_histograms, percentile
from forge_nb.storage.records import (
    METRIC_COUNTERS,
    MetricRow,
    ProcessRecord,
    QueueConfig,
    RateLimit,
    RateLimitTemplate,
    Schedule,
    StrandedKind,
)

T = TypeVar("T")

#: How long one fetched answer is reused by other sessions (seconds).
SHARED_TTL_S = 1.0
#: How long the "no live worker runs it" flags are reused: a skip scan of the claim index
#: (one seek per waiting queue and kind) is cheap at 1,000,000 jobs, but no tick needs it fresh.
STRANDED_TTL_S = 5.0
#: Percentile series names, as plotted.
PERCENTILES = ("p50", "p95", "p99")
#: Ranges of the per-queue metrics page: label → (seconds, bucket seconds).
RANGES: dict[str, tuple[int, int]] = {
    "5m": (5 * 60, 60),
    "30m": (30 * 60, 60),
    "1h": (3600, 60),
    "3h": (3 * 3600, 120),
    "6h": (6 * 3600, 300),
    "24h": (24 * 3600, 900),
    "7d": (7 * 86400, 3600),
}


class SnapshotSource:
    """Reads from one `App`, each answer cached for ``ttl`` seconds and de-duplicated."""

    def __init__(self, app: App, ttl: float = SHARED_TTL_S) -> None:
        self.app = app
        self.ttl = ttl
        self._cache: dict[tuple[Any, ...], tuple[float, Any]] = {}
        self._inflight: dict[tuple[Any, ...], asyncio.Future[Any]] = {}
        #: The newest tick a session showed, and when (`time.monotonic`).
        self._latest: tuple[float, Tick] | None = None

    def remember(self, tick: Tick) -> None:
        """Keep ``tick`` (read by a session) for the next session's first render."""
        self._latest = (time.monotonic(), tick)

    def latest(self, max_age: float) -> Tick | None:
        """The newest tick a session read, if younger than ``max_age`` seconds."""
        if self._latest is None or time.monotonic() - self._latest[0] > max_age:
            return None
        return self._latest[1]

    async def cached(
        self, key: tuple[Any, ...], fetch: Callable[[], Awaitable[T]], ttl: float | None = None
    ) -> T:
        """``fetch()``'s answer, reused while younger than ``ttl`` (concurrent callers share it)."""
        now = time.monotonic()
        hit = self._cache.get(key)
        if hit is not None and now - hit[0] < (self.ttl if ttl is None else ttl):
            return hit[1]
        pending = self._inflight.get(key)
        if pending is not None:
            return await asyncio.shield(pending)
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._inflight[key] = future
        try:
            value = await fetch()
        except BaseException as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: no "never retrieved" warning when nobody waits
            raise
        else:
            future.set_result(value)
            self._cache[key] = (time.monotonic(), value)
            self._prune(now)
            return value
        finally:
            self._inflight.pop(key, None)

    def invalidate(self, *names: str) -> None:
        """Forget cached answers of these parts (after a change made from this dashboard)."""
        for key in [k for k in self._cache if k[0] in names]:
            del self._cache[key]

    def _prune(self, now: float) -> None:
        if len(self._cache) > 64:
            for key, (at, _) in list(self._cache.items()):
                if now - at > 60:
                    del self._cache[key]

    async def counts(self) -> dict[str, dict[str, int]]:
        """``{queue: {status: n}}``."""
        return await self.cached(("counts",), self.app.counts)  # type: ignore[arg-type]

    async def processes(self) -> list[ProcessRecord]:
        """Live worker slots."""
        return await self.cached(("processes",), self.app.processes)

    async def stranded(self) -> list[StrandedKind]:
        """Kinds with waiting jobs that no live worker runs (re-read every few seconds)."""
        return await self.cached(("stranded",), self.app.stranded_kinds, STRANDED_TTL_S)

    async def queues(self) -> list[QueueConfig]:
        """Queue configs."""
        return await self.cached(("queues",), self.app.queues)

    async def schedules(self) -> list[Schedule]:
        """Cron schedules."""
        return await self.cached(("schedules",), self.app.schedules)

    async def rate_limits(self) -> list[RateLimit]:
        """Token buckets."""
        return await self.cached(("rate_limits",), self.app.rate_limits)

    async def rate_limit_templates(self) -> tuple[list[RateLimitTemplate], list[RateLimit]]:
        """Rate-limit templates and the live buckets made from them that were used last."""

        async def read() -> tuple[list[RateLimitTemplate], list[RateLimit]]:
            templates = await self.app.rate_limit_templates()
            return templates, (await self.app.busiest_rate_limits(20) if templates else [])

        return await self.cached(("rate_limit_templates",), read)

    async def metric_rows(
        self,
        since: float,
        queue: str | None = None,
        ttl: float | None = None,
        step: int = 1,
        histograms_from: float = -math.inf,
    ) -> list[MetricRow]:
        """Per-(``step``-minute bucket, queue) rows since ``since`` (aligned for sharing).

        Latency histograms only for buckets from ``histograms_from`` on (``math.inf``:
        none): decoding them is most of the cost of a long range, and most charts
        show counts.
        """
        width = step * 60
        start = since // width * width
        split = max(start, histograms_from)
        if math.isfinite(split):
            split = split // width * width

        async def fetch() -> list[MetricRow]:
            until = time.time() + 60
            rows: list[MetricRow] = []
            if split > start:  # counters only, up to the split
                rows = await self.app.metric_rows(
                    queue, start, min(split, until) - 1, step=step, histograms=False
                )
            if split <= until:
                rows += await self.app.metric_rows(queue, split, until, step=step)
            return rows

        return await self.cached(("metrics", start, queue, step, split), fetch, ttl)

    async def resources(self, since: float) -> list[dict[str, Any]]:
        """Per-host resource samples since ``since``."""
        start = int(since // 60) * 60
        return await self.cached(
            ("resources", start), lambda: self.app.resources(since=start, until=time.time() + 60)
        )

    async def db_health(self, since: float) -> list[dict[str, Any]]:
        """Per-host database health samples since ``since``."""
        start = int(since // 60) * 60
        return await self.cached(
            ("db_health", start), lambda: self.app.db_health(since=start, until=time.time() + 60)
        )


_sources: weakref.WeakKeyDictionary[App, SnapshotSource] = weakref.WeakKeyDictionary()


def source_for(app: App) -> SnapshotSource:
    """The one shared `SnapshotSource` of an `App` (sessions of one server share it)."""
    found = _sources.get(app)
    if found is None:
        found = _sources[app] = SnapshotSource(app)
    return found


@dataclass
class Tick:
    """What one tick reads for every page: the header, the Overview's timeline (which
    streams even while hidden) and the counts, processes and queues most pages show.

    A page's own data (schedules, samples, a metrics range) is read by that page's
    `fetch` while its tab is shown, and kept by the page.
    """

    now: float
    counts: dict[str, dict[str, int]] = field(default_factory=dict)
    processes: list[ProcessRecord] = field(default_factory=list)
    queues: list[QueueConfig] = field(default_factory=list)
    #: Metric rows since ``metrics_since`` (the timeline's tail, or its whole window).
    metrics: list[MetricRow] = field(default_factory=list)
    metrics_since: float = 0.0
    #: Kinds with waiting jobs that no live worker runs (the Overview and Queues flag them).
    stranded: list[StrandedKind] = field(default_factory=list)


# -- series -----------------------------------------------------------------------------------


def bucket_starts(since: float, until: float, bucket_s: int) -> list[float]:
    """Bucket start times (epoch seconds) covering [since, until]."""
    first = int(since // bucket_s) * bucket_s
    last = int(until // bucket_s) * bucket_s
    return [float(t) for t in range(first, last + 1, bucket_s)]


def metric_series(
    rows: Iterable[MetricRow],
    since: float,
    until: float,
    bucket_s: int = 60,
    queue: str | None = None,
) -> dict[str, list[float]]:
    """Rows → one series per counter (jobs per minute) and latency percentile (seconds).

    Buckets with no rows are zero (counters) or NaN (latency: the line breaks).
    Histograms are merged before taking percentiles, so the figures are exact
    across queues, hosts and wide buckets. ``t`` is epoch milliseconds (Bokeh's
    datetime unit) of each bucket's start.
    """
    starts = bucket_starts(since, until, bucket_s)
    index = {t: i for i, t in enumerate(starts)}
    n = len(starts)
    totals: dict[str, list[float]] = {c: [0.0] * n for c in METRIC_COUNTERS}
    processing: list[list[dict[int, int]]] = [[] for _ in range(n)]
    e2e: list[list[dict[int, int]]] = [[] for _ in range(n)]
    for row in rows:
        if queue is not None and row.queue != queue:
            continue
        i = index.get(float(int(row.minute * 60 // bucket_s) * bucket_s))
        if i is None:
            continue
        for counter in METRIC_COUNTERS:
            totals[counter][i] += getattr(row, counter)
        processing[i].append(row.processing_hist)
        e2e[i].append(row.e2e_hist)
    per_minute = 60.0 / bucket_s
    out: dict[str, list[float]] = {"t": [t * 1000.0 for t in starts]}
    for counter, values in totals.items():
        out[counter] = [v * per_minute for v in values]
    for prefix, hists in (("processing", processing), ("e2e", e2e)):
        merged = [merge_histograms(h) for h in hists]
        for name in PERCENTILES:
            q = int(name[1:]) / 100
            out[f"{prefix}_{name}"] = [_nan(percentile(m, q)) for m in merged]
    return out


def _nan(value: float | None) -> float:
    return math.nan if value is None else float(value)


def series_equal(a: float, b: float) -> bool:
    """Equality that treats NaN == NaN (so unchanged empty buckets are not re-sent)."""
    return a == b or (math.isnan(a) and math.isnan(b))


def latency_summary(rows: Iterable[MetricRow], queue: str | None = None) -> dict[str, float | None]:
    """Whole-range processing and end-to-end p50/p95/p99 (seconds)."""
    chosen = [r for r in rows if queue is None or r.queue == queue]
    out: dict[str, float | None] = {}
    for prefix, attr in (("processing", "processing_hist"), ("e2e", "e2e_hist")):
        merged = merge_histograms(getattr(r, attr) for r in chosen)
        for name in PERCENTILES:
            out[f"{prefix}_{name}"] = percentile(merged, int(name[1:]) / 100)
    return out


def status_totals(counts: dict[str, dict[str, int]]) -> dict[str, int]:
    """Per-status totals over every queue."""
    out: dict[str, int] = {}
    for per_queue in counts.values():
        for status, n in per_queue.items():
            out[status] = out.get(status, 0) + n
    return out


def sample_series(
    samples: Iterable[dict[str, Any]], keys: Iterable[str]
) -> dict[str, dict[str, list[Any]]]:
    """Per-host series of sample rows: ``{host label: {"t": [ms], key: [...]}}``.

    Hosts are labelled by hostname (plus a short host id when two processes
    share a hostname), so each process gets its own line.
    """
    keys = list(keys)
    rows = sorted(samples, key=lambda s: (s["host_id"], s["minute"]))
    names: dict[str, str] = {}
    by_name: dict[str, set[str]] = {}
    for s in rows:
        by_name.setdefault(str(s.get("hostname") or "host"), set()).add(s["host_id"])
    for hostname, ids in by_name.items():
        for host_id in ids:
            names[host_id] = hostname if len(ids) == 1 else f"{hostname} ({host_id[-6:]})"
    out: dict[str, dict[str, list[Any]]] = {}
    for s in rows:
        series = out.setdefault(names[s["host_id"]], {"t": [], **{k: [] for k in keys}})
        series["t"].append(s["minute"].timestamp() * 1000.0)
        for k in keys:
            value = s.get(k)
            series[k].append(math.nan if value is None else float(value))
    return out


def combined_samples(
    samples: Iterable[dict[str, Any]], sums: Iterable[str], maxes: Iterable[str]
) -> dict[str, list[float]]:
    """All hosts per minute: ``sums`` added up, ``maxes`` the worst host (for latency)."""
    sums, maxes = list(sums), list(maxes)
    minutes: dict[float, dict[str, float]] = {}
    for s in samples:
        cell = minutes.setdefault(s["minute"].timestamp() * 1000.0, {})
        for k in sums:
            if s.get(k) is not None:
                cell[k] = cell.get(k, 0.0) + float(s[k])
        for k in maxes:
            if s.get(k) is not None:
                cell[k] = max(cell.get(k, -math.inf), float(s[k]))
    ts = sorted(minutes)
    out: dict[str, list[float]] = {"t": ts}
    for k in sums + maxes:
        out[k] = [minutes[t].get(k, math.nan) for t in ts]
    return out
