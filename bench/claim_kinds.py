"""Claims by kind: latency and drain throughput with and without a backlog of foreign kinds.

    python bench/claim_kinds.py                         # both backends, this checkout
    python bench/claim_kinds.py --baseline ../main      # + the normal claim of another checkout,
                                                        #   interleaved run by run (old vs new)
    python bench/claim_kinds.py --backends sqlite --repeat 5 --pg-url postgresql://…

A process claims only the kinds it has handlers for (issue 15). Jobs of other kinds that
wait ahead of the runnable ones (earlier, same priority: first in claim order) must not
slow its claims. Each measurement runs in a fresh process on a fresh database:

- ``claim``: the storage claim alone, batches of 100 (a worker's largest), each batch
  finished as done before the next claim, until the runnable jobs are gone. Per-claim
  latency p50/p99 and jobs claimed per second of claim time.
- ``drain``: an `App` with the handlers (no-op async) and 50 workers drains them: jobs/s.

Scenarios: ``1 kind`` (one kind runnable) and ``3 kinds`` (three kinds interleaved), each
``normal`` or ``foreign``: plus 100,000 pending jobs of a kind nobody runs, ahead of the
runnable ones. ``--baseline DIR`` also runs the ``normal`` scenarios with the code in DIR
(a `git worktree` of the code before this change: its claim takes any kind), alternating
old and new run by run, and prints new/old ratios. Postgres runs on a throwaway server with
fsync on (``--pg-url`` to use another).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
RUNNABLE = 20_000
FOREIGN = 100_000
BATCH = 100
KINDS = {"1 kind": ["noop"], "3 kinds": ["a", "b", "c"]}


# -- one measurement (child process) ---------------------------------------------------------


async def seed(app: Any, kinds: list[str], foreign: int, runnable: int) -> None:
    """``foreign`` jobs of a kind nobody runs first (earlier: ahead in claim order), then
    ``runnable`` jobs cycling through ``kinds``."""
    import forge_nb as fnb

    base = time.time() - 3600
    for offset in range(0, foreign, 10_000):
        await app.enqueue_many(
            [
                fnb.EnqueueRequest(kind="foreign", payload={"i": i}, scheduled_at=base + i * 1e-4)
                for i in range(offset, min(foreign, offset + 10_000))
            ]
        )
    for offset in range(0, runnable, 10_000):
        await app.enqueue_many(
            [
                fnb.EnqueueRequest(
                    kind=kinds[i % len(kinds)], payload={"i": i}, scheduled_at=base + 60 + i * 1e-4
                )
                for i in range(offset, min(runnable, offset + 10_000))
            ]
        )


async def analyze(app: Any) -> None:
    """Fresh planner statistics (what autovacuum does within a minute of a bulk load)."""
    storage = await app.storage()
    raw = getattr(storage, "_storage", storage)
    if storage.backend == "postgres":
        async with raw._pool.acquire() as conn:
            await conn.execute("ANALYZE forge_nb_jobs")


async def measure_claim(url: str, kinds: list[str], foreign: int) -> dict[str, Any]:
    import forge_nb as fnb
    from forge_nb.storage.records import Finish

    app = fnb.App(url)
    try:
        await seed(app, kinds, foreign, RUNNABLE)
        await analyze(app)
        storage = await app.storage()
        by_kind = "kinds" in inspect.signature(storage.claim).parameters
        runnable = [*kinds, "forge_nb.echo"]  # what a worker with these handlers passes
        latencies: list[float] = []
        claimed = 0
        while True:
            start = time.perf_counter()
            if by_kind:
                jobs = await storage.claim("default", "bench", BATCH, time.time(), kinds=runnable)
            else:
                jobs = await storage.claim("default", "bench", BATCH, time.time())
            latencies.append(time.perf_counter() - start)
            if not jobs:
                break
            if any(j.kind == "foreign" for j in jobs):
                raise SystemExit("a foreign job was claimed: this code does not claim by kind")
            claimed += len(jobs)
            finishes = [Finish(j.id, j.attempt, "done", "done", result_json="null") for j in jobs]
            await storage.finish("bench", finishes, time.time())
        if claimed != RUNNABLE:
            raise SystemExit(f"claimed {claimed} jobs, expected {RUNNABLE}")
        counts = (await app.counts())["default"]
        if counts["pending"] != foreign or counts["done"] != RUNNABLE:
            raise SystemExit(f"unexpected counts after the drain: {counts}")
        latencies.pop()  # the final, empty claim
        ordered = sorted(latencies)
        return {
            "claim_p50_ms": statistics.median(ordered) * 1000,
            "claim_p99_ms": ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] * 1000,
            "claimed_per_s": claimed / sum(latencies),
        }
    finally:
        await app.close()


async def measure_drain(url: str, kinds: list[str], foreign: int) -> dict[str, Any]:
    import forge_nb as fnb

    app = fnb.App(url)
    try:
        await seed(app, kinds, foreign, RUNNABLE)
        await analyze(app)
        finished = asyncio.Event()
        count = 0

        async def noop(ctx: fnb.JobCtx, i: int) -> None:
            nonlocal count
            count += 1
            if count == RUNNABLE:
                finished.set()

        for kind in kinds:
            app.job(kind=kind)(noop)
        await app.ensure_queue("default", workers=50)
        start = time.perf_counter()
        handle = await app.start()
        await asyncio.wait_for(finished.wait(), 600)
        await handle.finalizer.drain()
        elapsed = time.perf_counter() - start
        await handle.shutdown(5)
        counts = (await app.counts())["default"]
        if counts["done"] != RUNNABLE or counts["pending"] != foreign or counts["dead"]:
            raise SystemExit(f"unexpected counts after the drain: {counts}")
        return {"drain_per_s": RUNNABLE / elapsed}
    finally:
        await app.close()


def child(args: argparse.Namespace) -> None:
    sys.path.insert(0, args.repo)
    import forge_nb

    assert Path(forge_nb.__file__).resolve().is_relative_to(Path(args.repo).resolve()), (
        f"imported {forge_nb.__file__}, not the code in {args.repo}"
    )
    kinds = KINDS[args.kinds]
    foreign = FOREIGN if args.scenario == "foreign" else 0
    measure = measure_claim if args.measure == "claim" else measure_drain
    print(json.dumps(asyncio.run(measure(args.url, kinds, foreign))))


# -- the driver ----------------------------------------------------------------------------------


class Databases:
    """A fresh database per measurement: a new SQLite file, or a new Postgres database."""

    def __init__(self, tmp: Path, pg_url: str | None) -> None:
        self.tmp = tmp
        self.pg_url = pg_url
        self.created: list[str] = []

    def new(self, backend: str) -> str:
        name = f"bench_{uuid.uuid4().hex[:12]}"
        if backend == "sqlite":
            return f"sqlite:///{self.tmp / name}.db"
        assert self.pg_url is not None
        self._admin(f"CREATE DATABASE {name}")
        self.created.append(name)
        return self.pg_url.rsplit("/", 1)[0] + "/" + name

    def drop(self, url: str) -> None:
        if url.startswith("sqlite"):
            for suffix in ("", "-wal", "-shm"):
                Path(url.removeprefix("sqlite:///") + suffix).unlink(missing_ok=True)
        else:
            self._admin(f"DROP DATABASE IF EXISTS {url.rsplit('/', 1)[1]}")

    def _admin(self, sql: str) -> None:
        import asyncpg

        async def run() -> None:
            conn = await asyncpg.connect(self.pg_url)
            try:
                await conn.execute(sql)
            finally:
                await conn.close()

        asyncio.run(run())


def run_child(repo: str, url: str, measure: str, kinds: str, scenario: str) -> dict[str, Any]:
    cmd = [sys.executable, __file__, "--child", "--repo", repo, "--url", url]
    cmd += ["--measure", measure, "--kinds", kinds, "--scenario", scenario]
    out = subprocess.run(cmd, capture_output=True, text=True, cwd=REPO, env=os.environ.copy())
    if out.returncode != 0:
        raise SystemExit(f"{' '.join(cmd)} failed:\n{out.stderr}")
    return dict(json.loads(out.stdout.strip().splitlines()[-1]))


def median_of(runs: list[dict[str, Any]]) -> dict[str, float]:
    return {key: statistics.median(r[key] for r in runs) for key in runs[0]}


def driver(args: argparse.Namespace) -> None:
    from contextlib import nullcontext

    sys.path.insert(0, str(REPO / "bench"))
    from run import throwaway_postgres

    backends = args.backends.split(",")
    server = throwaway_postgres() if "postgres" in backends and not args.pg_url else nullcontext()
    with server as started, tempfile.TemporaryDirectory(prefix="forge_nb_kinds_") as tmp:
        dbs = Databases(Path(tmp), args.pg_url or started)
        codes = {"new": str(REPO)}
        if args.baseline:
            codes["old"] = str(Path(args.baseline).resolve())
        results: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        cases = [
            (backend, measure, kinds, scenario)
            for backend in backends
            for measure in ("claim", "drain")
            for kinds in KINDS
            for scenario in ("normal", "foreign")
        ]
        for rep in range(args.repeat):
            for backend, measure, kinds, scenario in cases:
                names = [n for n in codes if n == "new" or scenario == "normal"]
                if rep % 2:
                    names.reverse()  # old, new / new, old: drift hits both alike
                for name in names:
                    url = dbs.new(backend)
                    try:
                        found = run_child(codes[name], url, measure, kinds, scenario)
                    finally:
                        dbs.drop(url)
                    key = (backend, measure, kinds, scenario, name)
                    results.setdefault(key, []).append(found)
                    print(f"# rep {rep + 1} {key}: {found}", file=sys.stderr, flush=True)
        report(results, backends, "old" in codes)


def report(
    results: dict[tuple[str, ...], list[dict[str, Any]]], backends: list[str], baseline: bool
) -> None:
    print(f"\nmedians of {len(next(iter(results.values())))} runs; {RUNNABLE:,} runnable jobs")
    print(f"'foreign': plus {FOREIGN:,} pending jobs of a kind nobody runs, ahead of them\n")
    header = "| backend | kinds | claim p50 / p99 ms | claimed/s (claim time) | drain jobs/s |"
    for backend in backends:
        print(header)
        print("|---|---|---|---|---|")
        for kinds in KINDS:
            for scenario in ("normal", "foreign"):
                claim = median_of(results[(backend, "claim", kinds, scenario, "new")])
                drain = median_of(results[(backend, "drain", kinds, scenario, "new")])
                print(
                    f"| {backend} | {kinds}, {scenario} | {claim['claim_p50_ms']:.2f} / "
                    f"{claim['claim_p99_ms']:.2f} | {claim['claimed_per_s']:,.0f} | "
                    f"{drain['drain_per_s']:,.0f} |"
                )
            normal = median_of(results[(backend, "claim", kinds, "normal", "new")])
            foreign = median_of(results[(backend, "claim", kinds, "foreign", "new")])
            dn = median_of(results[(backend, "drain", kinds, "normal", "new")])
            df = median_of(results[(backend, "drain", kinds, "foreign", "new")])
            print(
                f"| {backend} | {kinds}: foreign / normal | "
                f"{foreign['claim_p50_ms'] / normal['claim_p50_ms']:.2f}x p50 | "
                f"{foreign['claimed_per_s'] / normal['claimed_per_s']:.2f}x | "
                f"{df['drain_per_s'] / dn['drain_per_s']:.2f}x |"
            )
        print()
    if not baseline:
        return
    print("old (claims any kind) vs new (claims by kind), normal scenarios, interleaved:\n")
    print("| backend | kinds | claim p50 ms old / new | claimed/s old / new | drain/s old / new |")
    print("|---|---|---|---|---|")
    for backend in backends:
        for kinds in KINDS:
            co = median_of(results[(backend, "claim", kinds, "normal", "old")])
            cn = median_of(results[(backend, "claim", kinds, "normal", "new")])
            do = median_of(results[(backend, "drain", kinds, "normal", "old")])
            dn = median_of(results[(backend, "drain", kinds, "normal", "new")])
            print(
                f"| {backend} | {kinds} | {co['claim_p50_ms']:.2f} / {cn['claim_p50_ms']:.2f} "
                f"({cn['claim_p50_ms'] / co['claim_p50_ms']:.2f}x) | "
                f"{co['claimed_per_s']:,.0f} / {cn['claimed_per_s']:,.0f} "
                f"({cn['claimed_per_s'] / co['claimed_per_s']:.2f}x) | "
                f"{do['drain_per_s']:,.0f} / {dn['drain_per_s']:,.0f} "
                f"({dn['drain_per_s'] / do['drain_per_s']:.2f}x) |"
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backends", default="sqlite,postgres")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--baseline", help="another checkout: its normal claim, interleaved")
    parser.add_argument("--pg-url", help="an existing Postgres (admin DSN: databases are made)")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--repo", default=str(REPO), help=argparse.SUPPRESS)
    parser.add_argument("--url", help=argparse.SUPPRESS)
    parser.add_argument("--measure", choices=["claim", "drain"], help=argparse.SUPPRESS)
    parser.add_argument("--kinds", choices=list(KINDS), help=argparse.SUPPRESS)
    parser.add_argument("--scenario", choices=["normal", "foreign"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    child(args) if args.child else driver(args)


if __name__ == "__main__":
    main()
