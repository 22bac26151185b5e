"""Database restart: Postgres goes away for 5 s in the middle of a run, then comes back.

Workers say so in one clear log line (naming the URL, never the password),
reconnect and carry on; an enqueue during the outage raises a clear
`StorageError` (or succeeds); afterwards nothing is lost and nothing is stuck
``running``.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest

import forge_nb as fnb

from .conftest import OwnPostgres, Workers, create_database, eventually, hosts_registered, summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(180)]

PASSWORD = "hunter2-s3cret"
OUTAGE_S = 5.0
WORKER_FLAGS = ("--stale-after", "3", "--poll-interval", "0.2", "--shutdown-timeout", "10")


@dataclass
class Outage:
    """What one run with a 5 s outage left behind."""

    safe_url: str
    outage_s: float
    created: list[str]
    errors: list[BaseException]
    counts: dict[str, int]
    done: set[str]
    total: int
    alive: list[bool]
    codes: dict[int, int | None]
    logs: dict[int, str]


@pytest.fixture(scope="module")
def outage(own_pg: OwnPostgres, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Outage]:
    """Run the scenario once; the tests below each check one side of it."""
    spawner = Workers(tmp_path_factory.mktemp("outage"))
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["run"] = asyncio.run(_outage_run(own_pg, spawner))
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="outage scenario")
    thread.start()
    thread.join()
    try:
        if "error" in box:
            raise box["error"]
        yield box["run"]
    finally:
        spawner.kill_all()


async def _outage_run(own_pg: OwnPostgres, workers: Workers) -> Outage:
    url = own_pg.url("restart_run", password=PASSWORD)
    await create_database(own_pg, "restart_run")
    created: list[str] = []
    errors: list[BaseException] = []
    async with fnb.App(url) as app:
        await app.ensure_queue("default", workers=5, backoff_base_seconds=0.05)
        procs = [workers.spawn(url, *WORKER_FLAGS, heartbeat=0.5) for _ in range(2)]
        await eventually(lambda: hosts_registered(app, 2), timeout=30)
        work = app.job(kind="work", max_attempts=25)(lambda ctx, n: None)

        async def produce(seconds: float) -> None:
            """A notebook user enqueueing steadily, outage or not."""
            n = 0
            end = time.monotonic() + seconds
            while time.monotonic() < end:
                n += 1
                try:
                    created.append((await work.enqueue(n)).id)
                except Exception as exc:
                    errors.append(exc)
                await asyncio.sleep(0.02)

        producer = asyncio.create_task(produce(3 + OUTAGE_S + 4))
        await asyncio.sleep(3)
        down_at = time.monotonic()
        await asyncio.to_thread(own_pg.stop)
        await asyncio.sleep(OUTAGE_S)
        await asyncio.to_thread(own_pg.start)
        outage_s = time.monotonic() - down_at
        await producer

        # The same App works again without being reopened.
        created.append((await work.enqueue(-1)).id)
        try:
            await eventually(lambda: _settled(app, len(created)), timeout=60, interval=0.2)
        except AssertionError:  # say what is stuck, and what the workers said
            stuck = [j for j in await app.jobs(limit=1000) if j.status != "done"]
            raise AssertionError(
                f"not settled: {(await app.counts())['default']}; stuck: "
                + "; ".join(
                    f"{j.id} {j.status} by {j.claimed_by} attempts={j.attempts} "
                    f"started={j.started_at} error={j.last_error}"
                    for j in stuck[:10]
                )
                + "".join(f"\n--- worker {p.pid}:\n{workers.log_text(p)[-3000:]}" for p in procs)
            ) from None
        # Past the reaper's window nothing may still be claimed by anyone.
        await asyncio.sleep(3 + 0.5)
        run = Outage(
            safe_url=app.safe_url,
            outage_s=outage_s,
            created=created,
            errors=errors,
            counts={k: int(v) for k, v in (await app.counts())["default"].items()},
            done={j.id for j in await app.jobs(status="done", limit=1000)},
            total=len(await app.jobs(limit=1000)),
            alive=[p.poll() is None for p in procs],
            codes=await workers.stop_all(),
            logs={},
        )
    run.logs = {p.pid: workers.log_text(p) for p in procs}
    summary(
        "postgres stopped mid-run",
        outage_s=round(outage_s, 1),
        enqueued=len(created),
        enqueue_errors=len(errors),
        error_types=sorted({type(e).__name__ for e in errors}),
        unavailable_lines=[log.count("unavailable") for log in run.logs.values()],
    )
    return run


def test_workers_ride_out_the_outage_and_nothing_is_lost(outage: Outage) -> None:
    assert all(outage.alive), "every worker survived the outage"
    assert all(code == 0 for code in outage.codes.values()), outage.codes
    # Every acknowledged enqueue ran to done; nothing is left pending, running or failed.
    assert set(outage.created) <= outage.done
    counts = outage.counts
    assert counts["running"] == counts["pending"] == counts["failed"] == counts["dead"] == 0
    # An enqueue whose reply was lost in the outage may have committed: at most one per error.
    assert len(outage.created) <= outage.total <= len(outage.created) + len(outage.errors)


def test_enqueues_during_the_outage_fail_clearly_without_the_password(outage: Outage) -> None:
    assert outage.errors, "the producer saw the outage"
    for exc in outage.errors:
        assert isinstance(exc, fnb.StorageError), f"{type(exc).__name__}: {exc}"
        assert outage.safe_url in str(exc) and PASSWORD not in str(exc), str(exc)


def test_each_worker_logs_the_outage_once_naming_the_url(outage: Outage) -> None:
    for pid, log in outage.logs.items():
        lines = [line for line in log.splitlines() if "unavailable" in line]
        assert lines, f"worker {pid} said nothing about the outage:\n{log}"
        assert all(outage.safe_url in line for line in lines), lines
        assert len(lines) <= 2, f"worker {pid} repeated itself:\n" + "\n".join(lines)
        assert any("reachable again" in line for line in log.splitlines()), log
        assert PASSWORD not in log


def test_worker_logs_hold_no_tracebacks_during_the_outage(outage: Outage) -> None:
    for pid, log in outage.logs.items():
        noisy = [line for line in log.splitlines() if "Traceback" in line or "asyncpg" in line]
        assert not noisy, f"worker {pid} logged {len(noisy)} driver lines/tracebacks:\n{log}"


async def _settled(app: fnb.App, at_least: int) -> bool:
    counts = (await app.counts())["default"]
    return counts["done"] >= at_least and counts["running"] == counts["pending"] == 0


async def test_a_worker_started_while_postgres_is_down_says_so_and_exits_non_zero(
    own_pg: OwnPostgres, workers: Workers
) -> None:
    url = own_pg.url("down_at_start", password=PASSWORD)
    await create_database(own_pg, "down_at_start")
    await asyncio.to_thread(own_pg.stop)
    try:
        proc = workers.spawn(url)
        code = await asyncio.to_thread(proc.wait, 60)
    finally:
        await asyncio.to_thread(own_pg.start)
    log = workers.log_text(proc)
    assert code != 0
    assert "cannot reach the database" in log and PASSWORD not in log, log
    assert "Traceback" not in log, log
