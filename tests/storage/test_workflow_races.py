"""Two processes finish a dependent's last two dependencies at the same moment (Postgres).

Each dependency's trigger takes one off the dependent's count under its row lock, and the
second re-reads what the first committed, so the dependent becomes pending exactly once:
never stuck waiting, never counted below zero.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time

import pytest

from forge_nb.storage import Storage, open_storage
from forge_nb.storage.records import NewJob

ROUNDS = 40
DEPENDENTS_PER_ROUND = 5

FINISHER = """
import asyncio, json, sys, time
from forge_nb.storage import open_storage
from forge_nb.storage.records import Finish

async def main(url, host, jobs, start, step):
    storage = await open_storage(url)
    try:
        for i, (job_id, attempt) in enumerate(jobs):
            await asyncio.sleep(max(0.0, start + i * step - time.time()))
            done = Finish(job_id, attempt, "done", "done", result_json=json.dumps(job_id))
            assert await storage.finish(host, [done], time.time()) == [job_id]
    finally:
        await storage.close()

url, host, jobs, start, step = sys.argv[1:]
asyncio.run(main(url, host, json.loads(jobs), float(start), float(step)))
"""


@pytest.mark.parametrize("db_url", ["postgres"], indirect=True)
async def test_the_last_two_dependencies_finishing_together_promote_once(
    db_url: str, storage: Storage
) -> None:
    now = time.time()
    left = await storage.enqueue([NewJob("k", "a")] * ROUNDS, now)
    right = await storage.enqueue([NewJob("k", "b")] * ROUNDS, now)
    dependents = []
    for a, b in zip(left, right, strict=True):
        wanted = NewJob("k", "d", depends_on=[a.id, b.id])
        dependents.append(await storage.enqueue([wanted] * DEPENDENTS_PER_ROUND, now))
    claimed = {
        "ha": await storage.claim("a", "ha", ROUNDS, now),
        "hb": await storage.claim("b", "hb", ROUNDS, now),
    }
    start = time.time() + 2.0  # both processes connected and waiting by then
    procs = [
        subprocess.Popen(
            [
                sys.executable,
                "-c",
                FINISHER,
                db_url,
                host,
                json.dumps([(j.id, j.attempt) for j in sorted(jobs, key=lambda j: int(j.id))]),
                str(start),
                "0.05",
            ],
            stderr=subprocess.PIPE,
        )
        for host, jobs in claimed.items()
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err.decode()

    states = []
    for batch in dependents:
        for r in batch:
            job = await storage.get_job(r.id)
            assert job is not None, r.id
            states.append((job.status, job.waiting_on))
    assert len(states) == ROUNDS * DEPENDENTS_PER_ROUND
    assert set(states) == {("pending", 0)}
    counts = (await storage.counts())["d"]
    assert (counts["waiting"], counts["pending"]) == (0, ROUNDS * DEPENDENTS_PER_ROUND)
    sample = dependents[0][0].id
    assert await storage.dependency_results(sample) == {
        left[0].id: left[0].id,
        right[0].id: right[0].id,
    }
    again = await open_storage(db_url)  # a second look through a fresh connection
    try:
        assert len(await again.claim("d", "hc", 1000, time.time())) == ROUNDS * DEPENDENTS_PER_ROUND
    finally:
        await again.close()
