"""Claims from several OS processes at once: no job is handed out twice, none is lost.

Each claimer is a separate Python process with its own storage (the same SQLite file, or the
same Postgres database), claiming batches of 1..10 of the kinds it runs (as workers do) and
finishing them until none is left; jobs of a kind none of them runs wait ahead, untouched.
"""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from forge_nb.storage import Storage, open_storage
from forge_nb.storage.records import JobFilter, NewJob

REPO = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000.0
JOBS = 5_000
CLAIMERS = 4
#: Jobs of a kind no claimer runs, ahead of the rest (higher priority): they stay pending.
FOREIGN = 500

CLAIMER = """
import asyncio, json, random, sys
from forge_nb.storage import open_storage
from forge_nb.storage.records import Finish

KINDS = ["other", "work"]

async def main(url, host, seed, now):
    rng = random.Random(seed)
    storage = await open_storage(url)
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        claimed, empty_in_a_row = [], 0
        while empty_in_a_row < 3:
            jobs = await storage.claim("q", host, rng.randint(1, 10), now, kinds=KINDS)
            if not jobs:
                empty_in_a_row += 1
                await asyncio.sleep(0.05)
                continue
            empty_in_a_row = 0
            claimed.extend(j.id for j in jobs)
            finishes = [
                Finish(j.id, j.attempt, "done", "done", result_json=json.dumps(host)) for j in jobs
            ]
            finished = await storage.finish(host, finishes, now)
            assert sorted(finished) == sorted(j.id for j in jobs), (finished, jobs)
        print(json.dumps(claimed), flush=True)
    finally:
        await storage.close()

asyncio.run(main(sys.argv[1], sys.argv[2], int(sys.argv[3]), float(sys.argv[4])))
"""


def start_claimer(url: str, host: str, seed: int) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, "-c", CLAIMER, url, host, str(seed), str(NOW + 1)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_concurrent_claimers_in_separate_processes_never_share_a_job(
    storage: Storage, db_url: str
) -> None:
    foreign = [NewJob(kind="foreign", queue="q", priority=5) for _ in range(FOREIGN)]
    await storage.enqueue(foreign, NOW - 1)
    results = await storage.enqueue(
        [NewJob(kind=("work", "other")[i % 2], queue="q", payload={"i": i}) for i in range(JOBS)],
        NOW,
    )
    all_ids = {r.id for r in results}
    assert len(all_ids) == JOBS

    hosts = [f"claimer-{n}" for n in range(CLAIMERS)]
    procs = [start_claimer(db_url, host, seed) for seed, host in enumerate(hosts)]
    try:
        for proc in procs:  # all connected: release them together
            assert proc.stdout is not None
            assert proc.stdout.readline().strip() == "ready", proc.stderr
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        outputs = [await asyncio.to_thread(proc.communicate, timeout=240) for proc in procs]
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()

    claimed_by: dict[str, list[str]] = {}
    for host, proc, (out, err) in zip(hosts, procs, outputs, strict=True):
        assert proc.returncode == 0, f"{host} failed:\n{err}"
        claimed_by[host] = json.loads(out.strip().splitlines()[-1])

    every_claim = Counter(job_id for ids in claimed_by.values() for job_id in ids)
    twice = [job_id for job_id, n in every_claim.items() if n > 1]
    assert twice == [], f"{len(twice)} jobs were claimed more than once, e.g. {twice[:5]}"
    assert set(every_claim) == all_ids, f"{len(all_ids - set(every_claim))} jobs never claimed"
    assert sum(1 for ids in claimed_by.values() if ids) >= 2, "the claimers did not overlap"

    assert await storage.counts() == {
        "q": {"waiting": 0, "pending": FOREIGN, "running": 0, "failed": 0, "done": JOBS, "dead": 0}
    }
    owner = {job_id: host for host, ids in claimed_by.items() for job_id in ids}
    seen = 0
    cursor = None
    while True:
        page = await storage.list_jobs(JobFilter(queue="q"), limit=1000, cursor=cursor)
        for job in page.jobs:
            if job.kind == "foreign":
                assert (job.status, job.attempts, job.claimed_by) == ("pending", 0, None), job
                continue
            assert (job.status, job.attempts) == ("done", 1), job
            assert job.result == owner[job.id] == job.claimed_by
        seen += len(page.jobs)
        if page.next_cursor is None:
            break
        cursor = page.next_cursor
    assert seen == JOBS + FOREIGN


# -- races between separate connections (one storage each, same database) --------------------------


@pytest.fixture
async def storages(db_url: str) -> AsyncIterator[list[Storage]]:
    """Four storages on the same database: separate connections racing each other."""
    opened: list[Storage] = []
    try:
        for _ in range(4):
            opened.append(await open_storage(db_url))
        yield opened
    finally:
        for storage in opened:
            await storage.close()


async def test_racing_enqueues_of_one_unique_key_create_one_job(storages: list[Storage]) -> None:
    keys = [f"key-{i}" for i in range(50)]

    async def enqueue_all(storage: Storage, order: list[str]) -> dict[str, str]:
        found = {}
        for key in order:
            [result] = await storage.enqueue([NewJob("work", "q", unique_key=key)], NOW)
            found[key] = result.id
        return found

    orders = [keys, keys[::-1], keys[1::2] + keys[::2], keys[::2] + keys[1::2]]
    seen = await asyncio.gather(*(enqueue_all(s, o) for s, o in zip(storages, orders, strict=True)))
    for key in keys:
        assert len({found[key] for found in seen}) == 1, f"{key} got two jobs"
    assert (await storages[0].counts())["q"]["pending"] == len(keys)


async def test_racing_lease_takeovers_elect_one_holder(storages: list[Storage]) -> None:
    assert await storages[0].acquire_lease("cron", "old", ttl=1, now=NOW)
    holders = [f"holder-{i}" for i in range(8)]
    won = await asyncio.gather(
        *(
            storage.acquire_lease("cron", holder, ttl=15, now=NOW + 5)
            for storage, holder in zip(storages * 2, holders, strict=True)
        )
    )
    assert won.count(True) == 1, won
    [lease] = await storages[0].leases()
    assert lease.holder == holders[won.index(True)]


async def test_racing_takers_never_overdraw_a_bucket(storages: list[Storage]) -> None:
    await storages[0].ensure_rate_limit("api", capacity=5, refill_per_second=0.001, now=NOW)
    waits = await asyncio.gather(
        *(storage.take_tokens("api", 1, NOW) for storage in storages * 4)  # 16 takers
    )
    assert sum(1 for w in waits if w == 0.0) == 5
    assert all(w > 0 for w in waits if w != 0.0)
