"""Two processes finishing batches that share concurrency keys never deadlock on the keys'
rows (Postgres: a finish locks its batch's keys in key order first).

Each process claims batches of keyed jobs spread over many keys and finishes them with its
keys in the opposite order of the other's (one ascending, one descending): without the
ordered lock, each finish statement took the key rows in its own row order and Postgres
broke the resulting deadlocks after its deadlock_timeout (one batch failed and retried).
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import cast

import pytest

from forge_nb.storage import open_storage
from forge_nb.storage.records import NewJob

REPO = Path(__file__).resolve().parents[2]
NOW = 1_700_000_000.0
KEYS = 50
PER_KEY = 60

FINISHER = """
import asyncio, json, sys
from forge_nb.storage import open_storage
from forge_nb.storage.records import Finish

async def main(url, host, descending):
    storage = await open_storage(url)
    deadlocks = finished = 0
    try:
        print("ready", flush=True)
        sys.stdin.readline()
        while True:
            jobs = await storage.claim("q", host, 200, 1_700_000_001.0)
            if not jobs:
                break
            jobs.sort(key=lambda j: j.payload["k"], reverse=descending)
            finishes = [Finish(j.id, j.attempt, "done", "done", result_json="1") for j in jobs]
            while True:
                try:
                    finished += len(await storage.finish(host, finishes, 1_700_000_001.0))
                    break
                except Exception as exc:
                    if "deadlock" not in str(exc).lower():
                        raise
                    deadlocks += 1
        print(json.dumps({"deadlocks": deadlocks, "finished": finished}), flush=True)
    finally:
        await storage.close()

asyncio.run(main(sys.argv[1], sys.argv[2], sys.argv[3] == "1"))
"""


def keyed_jobs(keys: int, per_key: int, key_limit: int, expiring: bool = False) -> list[NewJob]:
    """``per_key`` jobs of each of ``keys`` keys, the keys interleaved; ``expiring``: the
    n-th job of each key expires ``1 + n`` s after enqueue."""
    return [
        NewJob(
            kind="w",
            queue="q",
            payload={"k": f"{k:02d}"},
            concurrency_key=f"{k:02d}",
            key_limit=key_limit,
            expires_in=float(1 + n) if expiring else None,
        )
        for n in range(per_key)
        for k in range(keys)
    ]


def ready_finisher(pg_url: str, host: str, descending: bool) -> subprocess.Popen[str]:
    """A FINISHER process, connected and waiting for `go`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", FINISHER, pg_url, host, "1" if descending else "0"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
    return proc


def go(proc: subprocess.Popen[str]) -> None:
    assert proc.stdin is not None
    proc.stdin.write("go\n")
    proc.stdin.flush()


def report_of(proc: subprocess.Popen[str]) -> dict[str, int]:
    """The finisher's last line: how many it finished and how many deadlocks it met."""
    out, err = proc.communicate(timeout=240)
    assert proc.returncode == 0, err
    return cast("dict[str, int]", json.loads(out.strip().splitlines()[-1]))


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_processes_finishing_shared_keys_in_opposite_orders_never_deadlock(
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    try:
        await storage.enqueue(keyed_jobs(KEYS, PER_KEY, key_limit=1000), NOW)
        procs = [ready_finisher(pg_url, f"h{i}", descending=i == 1) for i in range(2)]
        for proc in procs:  # both start together
            go(proc)
        reports = [report_of(proc) for proc in procs]
        assert sum(r["finished"] for r in reports) == KEYS * PER_KEY
        assert [r["deadlocks"] for r in reports] == [0, 0], reports
        counts = (await storage.counts())["q"]
        assert counts["done"] == KEYS * PER_KEY
    finally:
        await storage.close()


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_expiring_a_keys_jobs_while_a_process_finishes_that_key_never_deadlocks(
    pg_url: str,
) -> None:
    """expire_jobs ends admitted jobs of keys while a finish of the same keys hands their
    places to held jobs: it locks the keys first, in key order, as finish does (without that,
    Postgres broke a deadlock here; delete_many takes the keys the same way)."""
    keys, per_key, rounds = 40, 40, 8
    storage = await open_storage(pg_url)
    try:
        finished = ended = 0
        seen: list[tuple[int, int]] = []
        for _ in range(rounds):  # the race is not hit every time: a few rounds
            # each key's jobs expire in their queue order: its first one before the finisher's
            # claims (their clock is NOW + 1), so only the expiry ends those
            await storage.enqueue(keyed_jobs(keys, per_key, key_limit=2, expiring=True), NOW)
            finisher = ready_finisher(pg_url, "h0", descending=False)
            go(finisher)
            expired = deadlocks = 0
            at = NOW
            while finisher.poll() is None or at < NOW + per_key + 1:
                at += 0.5  # back to back, a clock creeping on: a key's next jobs, now and then
                try:
                    expired += await storage.expire_jobs(at, limit=keys)
                except Exception as exc:
                    if "deadlock" not in str(exc).lower():
                        raise
                    deadlocks += 1
            report = report_of(finisher)
            finished += report["finished"]
            seen.append((report["deadlocks"], deadlocks))
            ended += expired
        counts = (await storage.counts())["q"]
        assert (counts["done"], counts["dead"]) == (finished, ended)
        assert finished + ended == rounds * keys * per_key, (finished, ended, counts)
        assert seen == [(0, 0)] * rounds, "deadlocks (finisher, expiry) per round"
    finally:
        await storage.close()
