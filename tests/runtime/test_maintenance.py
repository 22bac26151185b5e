"""The leader runs its maintenance tasks: each on its interval, a crashing one apart."""

from __future__ import annotations

import logging
import time

import pytest

import forge_nb as fnb
from forge_nb.runtime.maintenance import MaintenanceTask, default_tasks
from forge_nb.storage.base import Storage

from .test_app import FAST, eventually


class Counting(MaintenanceTask):
    name = "counting"
    interval_s = 0.2

    def __init__(self) -> None:
        self.runs: list[float] = []

    async def run(self, storage: Storage, now: float) -> float | None:
        self.runs.append(now)
        await storage.counts()  # a real read through the leader's storage
        return None


class Crashing(MaintenanceTask):
    name = "crashing"
    interval_s = 0.2

    async def run(self, storage: Storage, now: float) -> float | None:
        raise ZeroDivisionError("a bug in a task")


def test_the_default_tasks_are_the_leaders_whole_housekeeping() -> None:
    names = [task.name for task in default_tasks()]
    assert names == [
        "cron",
        "dependency cascade",
        "job expiry",
        "retention",
        "metrics purge",
        "metrics roll-up",
        "count folding",
        "rate-limit sweep",
    ]


async def test_a_task_runs_on_its_interval_and_a_crashing_one_stops_nothing(
    db_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="forge_nb.leader")
    counting = Counting()
    async with fnb.App(db_url, lease_ttl=1.5, **FAST) as app:
        handle = await app.start()
        leader = handle.leader  # type: ignore[attr-defined]
        leader.tasks = [Crashing(), counting, *leader.tasks]
        leader._due = [0.0] * len(leader.tasks)

        async def ran_five_times() -> bool:
            return len(counting.runs) >= 5

        await eventually(ran_five_times, timeout=20)
        gaps = [b - a for a, b in zip(counting.runs, counting.runs[1:], strict=False)]
        assert min(gaps) >= 0.19  # not more often than its interval
        assert any("'crashing' crashed" in r.getMessage() for r in caplog.records)

        # Cron still fires (it runs after the crashing task in the same steps).
        fired: list[float] = []

        @app.job(kind="tick")
        async def tick(ctx: fnb.JobCtx) -> None:
            fired.append(time.time())

        await app.ensure_schedule("every-second", "* * * * * *", kind="tick")

        async def cron_fired() -> bool:
            return bool(fired)

        await eventually(cron_fired, timeout=20)
