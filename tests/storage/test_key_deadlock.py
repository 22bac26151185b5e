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


@pytest.mark.slow
@pytest.mark.timeout(300)
async def test_two_processes_finishing_shared_keys_in_opposite_orders_never_deadlock(
    pg_url: str,
) -> None:
    storage = await open_storage(pg_url)
    try:
        jobs = [
            NewJob(
                kind="w",
                queue="q",
                payload={"k": f"{k:02d}"},
                concurrency_key=f"{k:02d}",
                key_limit=1000,
            )
            for _ in range(PER_KEY)
            for k in range(KEYS)
        ]
        await storage.enqueue(jobs, NOW)
        procs = [
            subprocess.Popen(
                [sys.executable, "-c", FINISHER, pg_url, f"h{i}", str(i)],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                text=True,
                cwd=REPO,
            )
            for i in range(2)
        ]
        for proc in procs:
            assert proc.stdout is not None and proc.stdout.readline().strip() == "ready"
        for proc in procs:  # both start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        reports = []
        for proc in procs:
            out, err = proc.communicate(timeout=240)
            assert proc.returncode == 0, err
            reports.append(json.loads(out.strip().splitlines()[-1]))
        assert sum(r["finished"] for r in reports) == KEYS * PER_KEY
        assert [r["deadlocks"] for r in reports] == [0, 0], reports
        counts = (await storage.counts())["q"]
        assert counts["done"] == KEYS * PER_KEY
    finally:
        await storage.close()
