"""Resource and database-health sampling, aggregated per minute in memory.

`instrument` wraps a storage so every call's latency lands in a read or write
histogram; `Sampler.rows` turns that and psutil's readings into one sample per
kind per minute, written by the runtime's tick. Same shape on every backend.
"""

from __future__ import annotations

import functools
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

from forge_nb.runtime.metrics import bucket_of, percentile
from forge_nb.storage.base import Storage

#: Storage calls that only read; every other coroutine method counts as a write.
READ_OPS = frozenset(
    {
        "get_job",
        "list_jobs",
        "job_events",
        "counts",
        "queues",
        "processes",
        "schedules",
        "leases",
        "rate_limits",
        "read_metrics",
        "sum_metrics",
        "sum_histograms",
        "read_rollups",
        "rollup_marks",
        "read_samples",
        "cancel_requests",
        "schema_version",
    }
)
NOT_MEASURED = frozenset({"open", "close", "migrate", "pool_capacity"})


class DbProbe:
    """Latency histograms and in-flight counts of storage calls."""

    def __init__(self) -> None:
        self.read: dict[int, int] = {}
        self.write: dict[int, int] = {}
        self.ops = 0
        self.in_flight = 0
        self.peak_in_flight = 0
        self._minute = -1

    def record(self, op: str, seconds: float) -> None:
        """One finished call."""
        hist = self.read if op in READ_OPS else self.write
        bucket = bucket_of(seconds)
        hist[bucket] = hist.get(bucket, 0) + 1
        self.ops += 1

    def take(self, capacity: int, now: float) -> dict[str, Any]:
        """This minute's figures so far (ms percentiles, ops, peak pool use)."""
        ms = 1000.0
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self.read, self.write, self.ops = {}, {}, 0
            self.peak_in_flight = self.in_flight

        def pct(hist: dict[int, int], q: float) -> float | None:
            value = percentile(hist, q)
            return None if value is None else round(value * ms, 3)

        sample = {
            "read_p50_ms": pct(self.read, 0.5),
            "read_p95_ms": pct(self.read, 0.95),
            "read_p99_ms": pct(self.read, 0.99),
            "write_p50_ms": pct(self.write, 0.5),
            "write_p95_ms": pct(self.write, 0.95),
            "write_p99_ms": pct(self.write, 0.99),
            "ops": self.ops,
            "pool_size": capacity,
            "pool_in_use": min(self.peak_in_flight, capacity),
            "pool_waiting": max(0, self.peak_in_flight - capacity),
        }
        return sample


def instrument(storage: Storage, probe: DbProbe) -> Storage:
    """A view of ``storage`` whose coroutine calls are timed into ``probe``."""
    return cast(Storage, _Instrumented(storage, probe))


class _Instrumented:
    def __init__(self, storage: Storage, probe: DbProbe) -> None:
        self._storage = storage
        self._probe = probe

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._storage, name)
        if name in NOT_MEASURED or name.startswith("_") or not callable(attr):
            return attr
        wrapped = _timed(attr, name, self._probe)
        setattr(self, name, wrapped)  # cache: __getattr__ runs once per method
        return wrapped


def _timed(method: Callable[..., Any], name: str, probe: DbProbe) -> Callable[..., Any]:
    @functools.wraps(method)
    async def call(*args: Any, **kwargs: Any) -> Any:
        probe.in_flight += 1
        probe.peak_in_flight = max(probe.peak_in_flight, probe.in_flight)
        start = time.perf_counter()
        try:
            return await method(*args, **kwargs)
        finally:
            probe.in_flight -= 1
            probe.record(name, time.perf_counter() - start)

    return call


class ResourceSampler:
    """This process's CPU, memory, disk I/O and the free space where data lives."""

    def __init__(self, data_path: Path | None) -> None:
        import psutil  # on use: keeps `import forge_nb` fast

        self._psutil = psutil
        self._process = psutil.Process()
        self._process.cpu_percent(None)  # prime: the next call measures since now
        self._data_path = data_path
        self._io_start = self._io()
        self._minute = -1

    def _io(self) -> tuple[int, int]:
        try:
            io = self._process.io_counters()
        except (self._psutil.Error, AttributeError, NotImplementedError):
            return (0, 0)
        return (int(io.read_bytes), int(io.write_bytes))

    def take(self, now: float) -> dict[str, Any]:
        """CPU % since the last call, RSS, bytes read/written this minute, disk free."""
        read, write = self._io()
        minute = int(now // 60)
        if minute != self._minute:
            self._minute = minute
            self._io_start = (read, write)
        start_read, start_write = self._io_start
        disk_free = None
        path = self._data_path if self._data_path and self._data_path.exists() else Path.cwd()
        try:
            disk_free = self._psutil.disk_usage(str(path)).free
        except OSError:
            pass
        return {
            "cpu_percent": self._process.cpu_percent(None),
            "rss_bytes": self._process.memory_info().rss,
            "read_bytes": max(0, read - start_read),
            "write_bytes": max(0, write - start_write),
            "disk_free_bytes": disk_free,
        }
