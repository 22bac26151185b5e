"""pgqueuer on Postgres: the same four scenarios as bench/run.py, no-op jobs, one process.

    python bench/peers/pgqueuer_bench.py --dsn postgresql://.../empty_db --jobs 10000

Uses pgqueuer's documented API: Queries over an asyncpg connection (AsyncpgDriver),
`Queries.enqueue` with scalars (one at a time) and with lists (bulk), QueueManager with
an entrypoint, `run(mode=drain)` for the drain and a continuous `run()` for latency.
Library defaults otherwise (batch_size=10, durable tables, unlimited concurrency).
Prints one JSON line.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta

import asyncpg
from common import (
    batches,
    check_count,
    check_exactly_once,
    emit,
    log,
    parse_args,
    percentile,
)
from pgqueuer import AsyncpgDriver, Job, Queries, QueueManager
from pgqueuer.types import QueueExecutionMode

ENTRYPOINT = "noop"


CONNECTIONS: dict[int, asyncpg.Connection] = {}  # id(Queries) -> its connection, to close it


async def connect(dsn: str) -> Queries:
    """Queries over one asyncpg connection, as in pgqueuer's quickstart."""
    conn = await asyncpg.connect(dsn)
    queries = Queries(AsyncpgDriver(conn))
    CONNECTIONS[id(queries)] = conn
    return queries


async def close(queries: Queries) -> None:
    await CONNECTIONS.pop(id(queries)).close()


async def reset(queries: Queries) -> None:
    """Empty queue, log and statistics so each scenario starts from an empty schema."""
    await queries.clear_queue()
    await queries.clear_queue_log()
    await queries.clear_statistics_log()


async def stored(queries: Queries) -> int:
    return sum(s.count for s in await queries.queue_size())


async def enqueue_one(dsn: str, n: int) -> float:
    queries = await connect(dsn)
    try:
        await reset(queries)
        start = time.perf_counter()
        for i in range(n):
            await queries.enqueue(ENTRYPOINT, str(i).encode())
        elapsed = time.perf_counter() - start
        check_count(await stored(queries), n, "pgqueuer enqueue one")
        return n / elapsed
    finally:
        await close(queries)


async def enqueue_bulk(dsn: str, n: int) -> float:
    queries = await connect(dsn)
    try:
        await reset(queries)
        start = time.perf_counter()
        for chunk in batches(n):
            await queries.enqueue(
                [ENTRYPOINT] * len(chunk), [str(i).encode() for i in chunk], [0] * len(chunk)
            )
        elapsed = time.perf_counter() - start
        check_count(await stored(queries), n, "pgqueuer enqueue bulk")
        return n / elapsed
    finally:
        await close(queries)


async def drain(dsn: str, n: int) -> float:
    producer = await connect(dsn)
    worker = await connect(dsn)
    try:
        await reset(producer)
        ids = []
        for chunk in batches(n):
            ids += await producer.enqueue(
                [ENTRYPOINT] * len(chunk), [str(i).encode() for i in chunk], [0] * len(chunk)
            )
        executed: list[int] = []
        qm = QueueManager(worker)

        @qm.entrypoint(ENTRYPOINT)
        async def noop(job: Job) -> None:
            executed.append(job.id)

        start = time.perf_counter()
        await qm.run(mode=QueueExecutionMode.drain)  # returns once empty and logged
        elapsed = time.perf_counter() - start
        check_exactly_once(ids, executed, "pgqueuer drain")
        check_count(await stored(producer), 0, "pgqueuer drain (left in queue)")
        statuses = dict(await producer.job_status(ids))
        done = sum(1 for s in statuses.values() if s == "successful")
        check_count(done, n, "pgqueuer drain (logged successful)")
        return n / elapsed
    finally:
        await close(producer)
        await close(worker)


async def latency(dsn: str, n: int) -> tuple[float, float]:
    producer = await connect(dsn)
    worker = await connect(dsn)
    try:
        await reset(producer)
        started: dict[int, list[float]] = {}
        qm = QueueManager(worker)

        @qm.entrypoint(ENTRYPOINT)
        async def stamp(job: Job) -> None:
            started.setdefault(job.id, []).append(time.perf_counter())

        runner = asyncio.create_task(qm.run(dequeue_timeout=timedelta(seconds=1)))
        await asyncio.sleep(0.5)  # listener up before the first enqueue
        enqueued: dict[int, float] = {}
        for _ in range(n):
            t0 = time.perf_counter()
            (job_id,) = await producer.enqueue(ENTRYPOINT, None)
            enqueued[job_id] = t0
            await asyncio.sleep(0.005)
        deadline = time.monotonic() + 60
        while len(started) < n and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # a duplicate run would show up here
        qm.shutdown.set()
        await asyncio.wait_for(runner, 30)
        check_exactly_once(enqueued, [j for j, runs in started.items() for _ in runs], "latency")
        lat = [(started[j][0] - t0) * 1000 for j, t0 in enqueued.items()]
        return percentile(lat, 0.5), percentile(lat, 0.99)
    finally:
        await close(producer)
        await close(worker)


async def main() -> None:
    args = parse_args(__doc__ or "", needs_dsn=True)
    setup = await connect(args.dsn)
    try:
        await setup.install()
    finally:
        await close(setup)
    log("pgqueuer: enqueue one")
    one = await enqueue_one(args.dsn, args.enqueue_one)
    log("pgqueuer: enqueue bulk")
    bulk = await enqueue_bulk(args.dsn, args.jobs)
    log("pgqueuer: drain")
    drained = await drain(args.dsn, args.jobs)
    log("pgqueuer: latency")
    p50, p99 = await latency(args.dsn, args.latency_jobs)
    emit(
        "pgqueuer",
        ["pgqueuer", "asyncpg"],
        {
            "enqueue_one": one,
            "enqueue_bulk": bulk,
            "drain": drained,
            "latency_p50_ms": p50,
            "latency_p99_ms": p99,
            "settings": "AsyncpgDriver (one connection), batch_size=10, unlimited concurrency",
        },
    )


if __name__ == "__main__":
    asyncio.run(main())
