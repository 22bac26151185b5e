"""forge-nb against pgqueuer, procrastinate and huey: same scenarios, same machine, same run.

    python bench/compare.py                      # --jobs 10000 --repeat 1, a few minutes
    python bench/compare.py --jobs 20000 --repeat 3
    python bench/compare.py --venv /tmp/peers    # create once, reuse on later runs
    python bench/compare.py --pg-url postgresql://user@host/postgres   # needs CREATEDB

The peers are installed with pip into a separate venv (a throwaway one under a temp dir
unless --venv is given) and run there as subprocesses: bench/peers/<peer>_bench.py, one
JSON line each. pgqueuer and procrastinate each get a fresh database on one throwaway
Postgres (fsync on, scripts/postgres.sh); huey uses SqliteHuey on a temp file. forge-nb
runs the functions of bench/run.py in this process, its Postgres in its own database.

Scenarios, all no-op jobs in one process, each checking every job ran (or was stored)
exactly once:
- enqueue one at a time, awaited (--enqueue-one jobs), jobs/s
- enqueue bulk, batches of 10,000 (--jobs), jobs/s
- drain: --jobs pending jobs claimed, run and finalized by one worker process, jobs/s
- enqueue→start latency p50/p99 (--latency-jobs jobs, 5 ms apart, worker in the same process)
Every row is run --repeat times, interleaved, and the table shows medians.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib.util
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from contextlib import AbstractContextManager, nullcontext
from functools import partial
from pathlib import Path
from types import ModuleType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parent.parent
PEERS = REPO / "bench" / "peers"
PEER_PACKAGES = ["pgqueuer", "asyncpg", "procrastinate", "psycopg[binary]", "huey"]
PEER_TIMEOUT = 1800.0  # seconds for one peer script (all its scenarios)
BATCH = 10_000

ROWS = [
    ("forge-nb SQLite", "forge_nb_sqlite"),
    ("forge-nb Postgres", "forge_nb_postgres"),
    ("pgqueuer (Postgres)", "pgqueuer"),
    ("procrastinate (Postgres)", "procrastinate"),
    ("huey (SQLite)", "huey"),
]
FORGE_NB = {"forge_nb_sqlite", "forge_nb_postgres"}
# (result key, column title, higher is better)
COLUMNS = [
    ("enqueue_one", "enqueue one at a time", True),
    ("enqueue_bulk", "enqueue bulk", True),
    ("drain", "drain", True),
    ("latency_p50_ms", "latency p50", False),
    ("latency_p99_ms", "latency p99", False),
]
Result = dict[str, Any]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def load_forge_nb_bench() -> ModuleType:
    """bench/run.py is a script, not a package: load it by path to reuse its scenarios."""
    spec = importlib.util.spec_from_file_location("forge_nb_bench_run", REPO / "bench/run.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def ensure_peer_venv(path: Path) -> Path:
    """Create (if missing) a venv at path and pip install the peers into it; returns python."""
    python = path / "bin" / "python"
    if not python.exists():
        log(f"creating peer venv at {path}")
        subprocess.run([sys.executable, "-m", "venv", str(path)], check=True)
    log(f"pip install {' '.join(PEER_PACKAGES)}")
    subprocess.run(
        [
            str(python),
            "-m",
            "pip",
            "install",
            "--quiet",
            "--disable-pip-version-check",
            *PEER_PACKAGES,
        ],
        check=True,
    )
    return python


def with_database(dsn: str, name: str) -> str:
    parts = urlsplit(dsn)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_dsn: str, name: str) -> str:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return with_database(admin_dsn, name)


async def drop_databases(admin_dsn: str, names: list[str]) -> None:
    import asyncpg

    conn = await asyncpg.connect(admin_dsn)
    try:
        for name in names:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


async def run_peer(
    python: Path, script: str, target: list[str], args: argparse.Namespace
) -> Result:
    """One peer script in the peer venv; its stderr (progress, errors) passes through."""
    proc = await asyncio.create_subprocess_exec(
        str(python),
        str(PEERS / script),
        *target,
        "--jobs",
        str(args.jobs),
        "--enqueue-one",
        str(args.enqueue_one),
        "--latency-jobs",
        str(args.latency_jobs),
        "--workers",
        str(args.workers),
        stdout=asyncio.subprocess.PIPE,
        cwd=str(PEERS),
    )
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), PEER_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{script} did not finish in {PEER_TIMEOUT:.0f} s") from None
    if proc.returncode != 0:
        raise RuntimeError(f"{script} exited with {proc.returncode} (its stderr is above)")
    lines = [line for line in out.decode().splitlines() if line.startswith("{")]
    if not lines:
        raise RuntimeError(f"{script} printed no JSON result")
    return json.loads(lines[-1])


async def run_forge_nb(
    run: ModuleType, url_for: Callable[[str], str], args: argparse.Namespace
) -> Result:
    """forge-nb's own scenarios from bench/run.py, with the sizes the peers get."""
    result: Result = {}
    log("  enqueue one")
    result["enqueue_one"] = await run.bench_enqueue_one(url_for("one"), args.enqueue_one)
    log("  enqueue bulk")
    result["enqueue_bulk"] = await run.bench_enqueue_many(
        url_for("many"), args.jobs, batch=min(BATCH, args.jobs)
    )
    log("  drain")
    result["drain"] = await run.bench_drain(url_for("drain"), args.jobs, args.workers)
    log("  latency")
    p50, p99 = await run.bench_latency(url_for("latency"), args.latency_jobs)
    result["latency_p50_ms"], result["latency_p99_ms"] = p50, p99
    result["settings"] = f"{args.workers} queue workers, bench/run.py defaults" + (
        " (WAL, synchronous=NORMAL)" if url_for("probe").startswith("sqlite") else ""
    )
    return result


async def attempt(key: str, make: Callable[[], Awaitable[Result]]) -> Result:
    """Run one row once; a failure is recorded, never fatal, so the other rows still run."""
    log(f"{key}:")
    started = time.perf_counter()
    try:
        result = await make()
    except (Exception, SystemExit) as exc:
        log(f"{key} FAILED: {exc}")
        return {"error": str(exc) or type(exc).__name__}
    log(f"{key}: done in {time.perf_counter() - started:.0f} s")
    return result


def median_row(runs: list[Result]) -> Result:
    ok = [r for r in runs if "error" not in r]
    row: Result = {"runs": len(runs), "failed": len(runs) - len(ok)}
    if not ok:
        row["error"] = runs[-1]["error"] if runs else "not run"
        return row
    for key, _, _ in COLUMNS:
        values = [r[key] for r in ok if r.get(key) is not None]
        row[key] = statistics.median(values) if values else None
    row["versions"] = ok[-1].get("versions", {})
    row["settings"] = ok[-1].get("settings", "")
    return row


def fmt(key: str, value: float | None) -> str:
    if value is None:
        return "—"
    if key.endswith("_ms"):
        return f"{value:,.1f} ms"
    return f"{value:,.0f}/s"


#: Each forge-nb backend is measured against the peers on the same database.
PEERS_OF = {"forge_nb_sqlite": ("huey",), "forge_nb_postgres": ("pgqueuer", "procrastinate")}


def ratio_cell(rows: dict[str, Result], key: str, higher_better: bool) -> str:
    """forge-nb (each backend) divided by the best peer on its database in this column."""
    parts = []
    for label, row_key in (("SQLite", "forge_nb_sqlite"), ("PG", "forge_nb_postgres")):
        if row_key not in rows:
            continue
        peers = [
            rows[p][key] for p in PEERS_OF[row_key] if p in rows and rows[p].get(key) is not None
        ]
        mine = rows[row_key].get(key)
        if not peers or mine is None:
            parts.append(f"{label} —")
            continue
        best = max(peers) if higher_better else min(peers)
        parts.append(f"{label} {mine / best:.2f}×" if best else f"{label} —")
    return " · ".join(parts) or "—"


def table(rows: dict[str, Result]) -> str:
    lines = [
        "| | " + " | ".join(title for _, title, _ in COLUMNS) + " |",
        "|---|" + "---|" * len(COLUMNS),
    ]
    for label, key in ROWS:
        if key not in rows:  # left out with --only
            continue
        row = rows[key]
        if "error" in row:
            cells = ["failed"] * len(COLUMNS)
        else:
            cells = [fmt(col, row.get(col)) for col, _, _ in COLUMNS]
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    lines.append(
        "| **forge-nb / best peer on its database** | "
        + " | ".join(ratio_cell(rows, col, hi) for col, _, hi in COLUMNS)
        + " |"
    )
    return "\n".join(lines)


def footnotes(rows: dict[str, Result], args: argparse.Namespace) -> str:
    versions: dict[str, str] = {}
    for row in rows.values():
        versions.update(row.get("versions", {}))
    import forge_nb

    notes = [
        f"Medians of {args.repeat} run(s); {args.enqueue_one:,} jobs enqueued one at a time, "
        f"{args.jobs:,} for bulk (batches of {min(BATCH, args.jobs):,}) and drain, "
        f"{args.latency_jobs} for latency (enqueue→handler start, worker in the same process).",
        "Ratio: forge-nb on SQLite against huey, on Postgres against the best of pgqueuer and "
        "procrastinate; throughput columns >1× means forge-nb is faster than that peer; "
        "latency columns <1× means forge-nb starts jobs sooner. — = the peer has no such "
        "operation (huey has no bulk enqueue).",
        ", ".join(
            [f"forge-nb {forge_nb.__version__}"] + [f"{k} {v}" for k, v in sorted(versions.items())]
        ),
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python "
        f"{platform.python_version()}, Postgres fsync on.",
    ]
    for label, key in ROWS:
        row = rows.get(key, {})
        if row.get("settings"):
            notes.append(f"{label}: {row['settings']}")
        if row.get("error"):
            notes.append(f"{label}: FAILED — {row['error']}")
        elif row.get("failed"):
            notes.append(f"{label}: {row['failed']} of {row['runs']} runs failed")
    return "\n".join(f"- {n}" for n in notes)


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs for bulk and drain")
    parser.add_argument("--repeat", type=int, default=1, help="runs per row (median shown)")
    parser.add_argument("--enqueue-one", type=int, default=3_000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument(
        "--workers", type=int, default=50, help="forge-nb queue workers, procrastinate concurrency"
    )
    parser.add_argument("--venv", type=Path, help="peer venv to create or reuse")
    parser.add_argument("--pg-url", help="admin DSN of an existing Postgres (needs CREATEDB)")
    parser.add_argument(
        "--only", help="comma-separated subset of: " + ",".join(key for _, key in ROWS)
    )
    args = parser.parse_args()
    sizes = (args.jobs, args.repeat, args.enqueue_one, args.latency_jobs, args.workers)
    if min(sizes) < 1:
        parser.error("sizes, --repeat and --workers must be positive")
    if args.jobs > BATCH and args.jobs % BATCH:
        parser.error(f"--jobs above {BATCH:,} must be a multiple of {BATCH:,} (bulk batches)")
    args.enqueue_one = min(args.enqueue_one, args.jobs)
    known = {key for _, key in ROWS}
    args.only = set(args.only.split(",")) if args.only else known
    if args.only - known:
        parser.error(f"unknown rows: {', '.join(sorted(args.only - known))}")
    return args


async def one_round(
    r: int,
    run: ModuleType,
    python: Path | None,
    admin_dsn: str,
    tmp: Path,
    runs: dict[str, list[Result]],
    created: list[str],
    args: argparse.Namespace,
) -> None:
    """Every selected row once; rows interleave so machine noise spreads over all of them."""
    if "forge_nb_sqlite" in runs:
        folder = tmp / f"forge_nb_{r}"
        folder.mkdir()
        runs["forge_nb_sqlite"].append(
            await attempt(
                "forge-nb SQLite",
                lambda: run_forge_nb(run, lambda name: run.new_sqlite_url(folder, name), args),
            )
        )
    if "huey" in runs:
        assert python
        target = ["--dir", str(tmp / f"huey_{r}")]
        runs["huey"].append(
            await attempt("huey", lambda: run_peer(python, "huey_bench.py", target, args))
        )
    if "forge_nb_postgres" in runs:
        created.append(f"forge_nb_cmp_{r}")
        dsn = await create_database(admin_dsn, created[-1])
        runs["forge_nb_postgres"].append(
            await attempt("forge-nb Postgres", lambda: run_forge_nb(run, lambda _: dsn, args))
        )
    for peer in ("pgqueuer", "procrastinate"):
        if peer in runs:
            assert python
            created.append(f"{peer}_cmp_{r}")
            target = ["--dsn", await create_database(admin_dsn, created[-1])]
            runs[peer].append(
                await attempt(peer, partial(run_peer, python, f"{peer}_bench.py", target, args))
            )


async def main() -> None:
    args = parse_args()
    run = load_forge_nb_bench()
    tmp = Path(tempfile.mkdtemp(prefix="forge_nb_compare_"))
    pg: AbstractContextManager[str]
    if not args.only & {"forge_nb_postgres", "pgqueuer", "procrastinate"}:
        pg = nullcontext("")
    elif args.pg_url:
        pg = nullcontext(args.pg_url)
    else:
        pg = run.throwaway_postgres()
    runs: dict[str, list[Result]] = {key: [] for _, key in ROWS if key in args.only}
    created: list[str] = []
    wall = time.perf_counter()
    try:
        python = ensure_peer_venv(args.venv or tmp / "peers-venv") if args.only - FORGE_NB else None
        with pg as admin_dsn:
            try:
                for r in range(1, args.repeat + 1):
                    log(f"=== run {r} of {args.repeat} ===")
                    await one_round(r, run, python, admin_dsn, tmp, runs, created, args)
            finally:
                if created and args.pg_url:  # a throwaway server goes away whole
                    await drop_databases(admin_dsn, created)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    rows = {key: median_row(results) for key, results in runs.items()}
    print()
    print(table(rows))
    print()
    print(footnotes(rows, args))
    print(f"\ntotal wall time {time.perf_counter() - wall:.0f} s")
    out = REPO / "bench" / "results"
    out.mkdir(exist_ok=True)
    path = out / f"compare-{int(time.time())}.json"
    sizes = {
        k: getattr(args, k) for k in ("jobs", "repeat", "enqueue_one", "latency_jobs", "workers")
    }
    path.write_text(json.dumps({"args": sizes, "runs": runs, "medians": rows}, indent=2))
    log(f"raw results: {path}")


if __name__ == "__main__":
    asyncio.run(main())
