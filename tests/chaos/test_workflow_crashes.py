"""A fan-out/fan-in through worker crashes: 2,000 jobs and the one that waits for all of
them, 3 worker processes on Postgres, one ``kill -9``-ed every second.

The fan-in is promoted by the transaction that finishes its last dependency, whichever
process that is; a worker dying mid-run only loses an attempt. At the end the fan-in has
run to completion exactly once, with every dependency's result.
"""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import pytest

import forge_nb as fnb

from .conftest import Workers, eventually, hosts_registered, runs, summary

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

FAN_OUT = 2000
KILL_EVERY_S = 1.0
WORKER_FLAGS = ("--stale-after", "2", "--poll-interval", "0.2", "--shutdown-timeout", "10")


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_kill_9_a_worker_every_second_during_a_fan_out_and_fan_in(
    db_url: str, workers: Workers, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        # Two slots per process: 2,000 naps of 15 ms on average then take at least 5 s on
        # the 6 slots, so the run lasts several kill intervals however fast the machine is
        # (with 10 slots per process it once drained in 2 s, before the third kill).
        await app.ensure_queue(
            "default", workers=2, backoff_base_seconds=0.05, backoff_max_seconds=0.2
        )
        stable = [workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5) for _ in range(2)]
        victim = workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5)
        await eventually(lambda: hosts_registered(app, 3), timeout=30)

        work = app.job(kind="work", max_attempts=25)(lambda ctx, n: None)  # kind only
        fan_in = app.job(kind="fan_in", max_attempts=25)(lambda ctx: None)
        parts = await work.enqueue_many([(n,) for n in range(FAN_OUT)])
        total = await fan_in.options(depends_on=parts).enqueue()
        kills = 0
        deadline = time.monotonic() + 180
        started = time.monotonic()
        while (await app.job(total.id)).status not in ("done", "dead"):  # type: ignore[union-attr]
            assert time.monotonic() < deadline, f"stalled: {await app.counts()}"
            assert all(p.poll() is None for p in stable), "a worker we did not kill died"
            await asyncio.sleep(KILL_EVERY_S)
            victim.send_signal(signal.SIGKILL)
            await asyncio.to_thread(victim.wait)
            kills += 1
            victim = workers.spawn(db_url, *WORKER_FLAGS, heartbeat=0.5)
        drained_s = time.monotonic() - started
        record = await app.job(total.id)
        await eventually(lambda: hosts_registered(app, 3), timeout=30)
        await workers.stop_all()
        counts = (await app.counts())["default"]

    assert record is not None and record.status == "done", record
    assert record.result == {"results": FAN_OUT, "sum": sum(range(FAN_OUT))}
    assert counts["done"] == FAN_OUT + 1 and counts["waiting"] == 0
    fan_in_runs = [r for r in runs(tmp_path, "fan_in") if r[0] == total.id]
    assert [attempt for _, attempt, _ in fan_in_runs][-1] == record.attempts
    assert len(fan_in_runs) == record.attempts, "one run per attempt, none before promotion"
    summary(
        "fan-out/fan-in, kill -9 every 1 s (postgres)",
        fan_out=FAN_OUT,
        kills=kills,
        drained_s=round(drained_s, 1),
        fan_in_attempts=record.attempts,
    )
    assert kills >= 3, "the run was too short to kill anything"
