"""Where an awaited one-job Postgres enqueue's time goes, interleaved so drift spreads evenly.

    python bench/enqueue_parts.py                               # starts a Postgres (fsync on)
    python bench/enqueue_parts.py --pg-url postgresql://...     # needs CREATEDB
    python bench/enqueue_parts.py --peers /tmp/peers            # with pgqueuer from that venv
    python bench/enqueue_parts.py --peers /tmp/peers --batch 10000 --chunk 1 --rounds 9

Each variant enqueues one job at a time, awaited, in chunks taken in turn (--chunk jobs,
--rounds times), each into its own database; printed: jobs/s, wall and client CPU per job
(process_time: this process, kernel included), and the server's statement time per job
(pg_stat_statements when the server preloads it; bench/compare.py's server does not).
- ``statement``: forge-nb's one-job INSERT alone (prepared, one connection, no NOTIFY)
- ``storage``: `PostgresStorage.enqueue` (kept connection, NOTIFY when due)
- ``app``: `App.enqueue` (building and checking the job, the ref)
- ``pgqueuer``: `Queries.enqueue` on one asyncpg connection (with --peers)
With --batch N, each call enqueues N jobs instead (``app``: `App.enqueue_many`,
``pgqueuer``: `Queries.enqueue` with lists), and --chunk counts calls.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import asyncpg

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "bench"))

from run import throwaway_postgres  # noqa: E402

import forge_nb as fnb  # noqa: E402
from forge_nb.storage.postgres import NOTIFY_CHANNEL  # noqa: E402
from forge_nb.storage.postgres_statements import Q  # noqa: E402
from forge_nb.storage.records import NewJob  # noqa: E402

Variant = tuple[Callable[[], Awaitable[None]], Callable[[], Awaitable[None]]]


async def fresh_database(admin: str, name: str) -> str:
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute(f"DROP DATABASE IF EXISTS {name} WITH (FORCE)")
        await conn.execute(f"CREATE DATABASE {name}")
    finally:
        await conn.close()
    return admin.rsplit("/", 1)[0] + f"/{name}"


async def statement(admin: str) -> Variant:
    url = await fresh_database(admin, "parts_statement")
    app = fnb.App(url)
    await app.storage()  # migrate
    await app.close()
    conn = await asyncpg.connect(url)
    prepared = await conn.prepare(Q["insert_job"])

    async def one() -> None:
        now = time.time()
        row = ("noop", "default", '{"i": 0}', 0, now, 3, now, int(now // 60), None)
        await prepared.fetchval(*row, False, NOTIFY_CHANNEL, [])

    return one, conn.close


async def storage(admin: str) -> Variant:
    app = fnb.App(await fresh_database(admin, "parts_storage"))
    store = await app.storage()

    async def one() -> None:
        await store.enqueue([NewJob(kind="noop", queue="default", payload={"i": 0})], time.time())

    return one, app.close


async def app(admin: str, batch: int = 1) -> Variant:
    application = fnb.App(await fresh_database(admin, "parts_app"))
    await application.storage()
    request = fnb.EnqueueRequest(kind="noop", payload={"i": 0})
    requests = [fnb.EnqueueRequest(kind="noop", payload={"i": i}) for i in range(batch)]

    async def one() -> None:
        await application.enqueue(request)

    async def many() -> None:
        await application.enqueue_many(requests)

    return (one if batch == 1 else many), application.close


async def pgqueuer(admin: str, batch: int = 1) -> Variant:
    from pgqueuer import AsyncpgDriver, Queries

    conn = await asyncpg.connect(await fresh_database(admin, "parts_pgqueuer"))
    queries = Queries(AsyncpgDriver(conn))
    await queries.install()

    async def one() -> None:
        await queries.enqueue("noop", b"0")

    async def many() -> None:
        payloads = [str(i).encode() for i in range(batch)]
        await queries.enqueue(["noop"] * batch, payloads, [0] * batch)

    return (one if batch == 1 else many), conn.close


async def server_ms(admin: str) -> dict[str, float] | None:
    """Statement time per database (ms), or None without pg_stat_statements."""
    conn = await asyncpg.connect(admin)
    try:
        await conn.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
        found = await conn.fetch(
            "SELECT d.datname, sum(s.total_exec_time) FROM pg_stat_statements s "
            "JOIN pg_database d ON d.oid = s.dbid GROUP BY 1"
        )
        return {r[0]: float(r[1]) for r in found}
    except asyncpg.PostgresError:
        return None
    finally:
        await conn.close()


async def reset_statements(admin: str) -> None:
    conn = await asyncpg.connect(admin)
    try:
        with contextlib.suppress(asyncpg.PostgresError):
            await conn.execute("SELECT pg_stat_statements_reset()")
    finally:
        await conn.close()


async def measure(admin: str, args: argparse.Namespace) -> None:
    makers: dict[str, Callable[[str], Awaitable[Variant]]] = {
        "statement": statement,
        "storage": storage,
        "app": app,
    }
    if args.batch > 1:
        makers = {"app": lambda admin: app(admin, args.batch)}
    if args.peers:
        sys.path.append(str(next(Path(args.peers).glob("lib/python3*/site-packages"))))
        makers = {"pgqueuer": lambda admin: pgqueuer(admin, args.batch), **makers}
    variants = {name: await make(admin) for name, make in makers.items()}
    totals: dict[str, list[float]] = {name: [0.0, 0.0] for name in variants}
    for one, _ in variants.values():  # warm: statements prepared, queue rows made
        for _ in range(50 if args.batch == 1 else 1):
            await one()
    await reset_statements(admin)
    for _ in range(args.rounds):
        for name, (one, _) in variants.items():
            wall, cpu = time.perf_counter(), time.process_time()
            for _ in range(args.chunk):
                await one()
            totals[name][0] += time.perf_counter() - wall
            totals[name][1] += time.process_time() - cpu
    server = await server_ms(admin)
    n = args.chunk * args.rounds * args.batch
    for name, (wall, cpu) in totals.items():
        line = f"{name:10s} {n / wall:8,.0f}/s  wall {wall / n * 1e6:6.0f} µs  "
        line += f"client CPU {cpu / n * 1e6:5.0f} µs"
        if server is not None:
            line += f"  server statements {server.get(f'parts_{name}', 0) / n * 1e3:5.0f} µs"
        print(line)
    for _, close in variants.values():
        await close()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--pg-url", help="admin DSN of an existing Postgres (CREATEDB)")
    parser.add_argument("--peers", help="a venv with pgqueuer (bench/compare.py --venv)")
    parser.add_argument("--chunk", type=int, default=200)
    parser.add_argument("--rounds", type=int, default=15)
    parser.add_argument("--batch", type=int, default=1, help="jobs per call (1: enqueue one)")
    args = parser.parse_args()
    with contextlib.ExitStack() as stack:
        admin: Any = args.pg_url or stack.enter_context(throwaway_postgres())
        asyncio.run(measure(admin, args))


if __name__ == "__main__":
    main()
