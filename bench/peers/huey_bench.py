"""huey on SQLite: the bench/run.py scenarios it can do, no-op jobs, one process.

    python bench/peers/huey_bench.py --dir /tmp/somewhere --jobs 10000

Uses huey's documented API: `SqliteHuey(filename=...)`, a `@huey.task(context=True)`
task (called to enqueue) and the consumer from `huey.create_consumer()` with default
settings (thread workers, workers=1, 0.1 s initial polling delay), started and stopped
in-process. huey has no bulk enqueue (`Task.map` enqueues one by one), so the bulk
scenario is reported as null. Prints one JSON line.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from common import (
    check_count,
    check_exactly_once,
    emit,
    log,
    parse_args,
    percentile,
)
from huey import SqliteHuey


def make_huey(
    directory: Path, name: str, expected: int
) -> tuple[SqliteHuey, Callable[..., Any], list[str], dict[str, float], threading.Event]:
    """A fresh SQLite file and one no-op task recording which task ids ran (and when)."""
    path = directory / f"{name}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)
    huey = SqliteHuey(name, filename=str(path))
    executed: list[str] = []
    started: dict[str, float] = {}
    lock = threading.Lock()
    all_ran = threading.Event()

    @huey.task(context=True)
    def noop(i: int | None = None, task: Any = None) -> None:
        now = time.perf_counter()
        with lock:
            started.setdefault(task.id, now)
            executed.append(task.id)
            if len(executed) >= expected:
                all_ran.set()

    return huey, noop, executed, started, all_ran


def run_consumer(huey: SqliteHuey) -> Any:
    consumer = huey.create_consumer()  # defaults: 1 thread worker
    consumer.start()
    return consumer


def enqueue_one(directory: Path, n: int) -> float:
    huey, noop, _, _, _ = make_huey(directory, "one", n)
    start = time.perf_counter()
    for i in range(n):
        noop(i)
    elapsed = time.perf_counter() - start
    check_count(huey.pending_count(), n, "huey enqueue one")
    huey.storage.close()
    return n / elapsed


def drain(directory: Path, n: int) -> float:
    huey, noop, executed, _, all_ran = make_huey(directory, "drain", n)
    ids = [noop(i).id for i in range(n)]
    start = time.perf_counter()
    consumer = run_consumer(huey)
    finished = all_ran.wait(600)
    elapsed = time.perf_counter() - start
    time.sleep(0.3)  # a duplicate run would show up here
    consumer.stop(graceful=True)
    if not finished:
        raise SystemExit(f"huey drain: only {len(executed)} of {n} ran in 600 s")
    check_exactly_once(ids, executed, "huey drain")
    check_count(huey.pending_count(), 0, "huey drain (left in queue)")
    huey.storage.close()
    return n / elapsed


def latency(directory: Path, n: int) -> tuple[float, float]:
    huey, noop, executed, started, all_ran = make_huey(directory, "latency", n)
    consumer = run_consumer(huey)
    time.sleep(0.5)
    enqueued: dict[str, float] = {}
    for _ in range(n):
        t0 = time.perf_counter()
        enqueued[noop().id] = t0
        time.sleep(0.005)
    all_ran.wait(60)
    time.sleep(0.3)
    consumer.stop(graceful=True)
    check_exactly_once(enqueued, executed, "huey latency")
    lat = [(started[j] - t0) * 1000 for j, t0 in enqueued.items()]
    huey.storage.close()
    return percentile(lat, 0.5), percentile(lat, 0.99)


def main() -> None:
    args = parse_args(__doc__ or "", needs_dsn=False)
    logging.getLogger("huey").setLevel(logging.WARNING)
    directory = Path(args.dir)
    directory.mkdir(parents=True, exist_ok=True)
    log("huey: enqueue one")
    one = enqueue_one(directory, args.enqueue_one)
    log("huey: drain")
    drained = drain(directory, args.jobs)
    log("huey: latency")
    p50, p99 = latency(directory, args.latency_jobs)
    emit(
        "huey",
        ["huey"],
        {
            "enqueue_one": one,
            "enqueue_bulk": None,
            "drain": drained,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "settings": "SqliteHuey defaults (WAL, SQLite default synchronous), consumer defaults (workers=1, thread)",
        },
    )


if __name__ == "__main__":
    main()
