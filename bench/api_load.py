"""HTTP API under load (not CI): 200 requests/s from a local generator while workers drain.

    python bench/api_load.py                        # 60 s at 200 req/s on a fresh SQLite file
    python bench/api_load.py --rate 300 --duration 30 --backend postgres
    python bench/api_load.py --server dashboard     # the API as `forge-nb dashboard` serves it

The API runs in its own process (``forge_nb.api.api_application`` on Tornado, or
``forge-nb dashboard``), bound to 127.0.0.1 only. ``--workers`` `forge-nb worker`
processes drain a ``--backlog`` of jobs enqueued up front (jobs from bench/soak.py).
The generator is open-loop: request *i* is sent at *i/rate* seconds whatever the
previous answers did (at most ``--max-in-flight`` outstanding), the count is bounded
(rate x duration) and so is the time. It mixes reads (counts, job lists and filters,
one job with its history, queues, processes, metrics, schedules) with enqueues and
cancels, and reports per-route p50/p99 and status codes. Exit status 1 if any
request got a 5xx or no answer.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from soak import KIND, QUEUE, REPO, child_env, free_port, start_postgres, wait_http

import forge_nb as fnb


@dataclass
class Load:
    rate: float
    duration: float
    base: str
    job_ids: list[str]
    latencies: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    statuses: dict[str, Counter[int]] = field(default_factory=lambda: defaultdict(Counter))
    failures: list[str] = field(default_factory=list)
    late_starts: int = 0
    enqueued_ids: list[str] = field(default_factory=list)


#: (weight, route name) — the name is what the report groups by.
MIX = [
    (20, "GET /api/counts"),
    (15, "GET /api/jobs?limit=50"),
    (8, "GET /api/jobs?status=done"),
    (4, "GET /api/jobs?search="),
    (15, "GET /api/jobs/{id}"),
    (5, "GET /api/queues"),
    (5, "GET /api/processes"),
    (5, "GET /api/metrics"),
    (2, "GET /api/schedules"),
    (15, "POST /api/jobs"),
    (6, "POST /api/jobs/{id}/cancel"),
]


async def one_request(load: Load, client: Any, route: str) -> None:
    """Send one request of ``route``; record its latency and status."""
    job_id = random.choice(load.enqueued_ids or load.job_ids)
    method, path = route.split(" ", 1)
    body: Any = None
    if route == "GET /api/jobs?search=":
        path = f"/api/jobs?search={random.choice(['1', '%', '_', 'n', 'fail'])}&limit=20"
    elif route == "GET /api/jobs?status=done":
        path = "/api/jobs?status=done&limit=20"
    elif "{id}" in path:
        path = path.replace("{id}", job_id)
    elif route == "POST /api/jobs":
        body = {"kind": KIND, "queue": QUEUE, "payload": {"n": random.randrange(10**6)}}
    started = time.monotonic()
    try:
        reply = await client.fetch(
            load.base + path,
            method=method,
            body=None if method == "GET" else json.dumps(body or {}),
            headers={"Content-Type": "application/json"},
            request_timeout=30,
            raise_error=False,
        )
    except Exception as exc:
        load.failures.append(f"{route}: {type(exc).__name__}: {exc}")
        return
    load.latencies[route].append(time.monotonic() - started)
    if reply.code == 599:  # tornado: no HTTP answer (connection refused, reset, timeout)
        load.failures.append(f"{route}: no answer: {reply.error}")
        return
    load.statuses[route][reply.code] += 1
    if reply.code >= 500:
        load.failures.append(f"{route} -> {reply.code}: {reply.body[:200]!r}")
    elif route == "POST /api/jobs" and reply.code == 201:
        load.enqueued_ids.append(str(json.loads(reply.body)["id"]))


async def generate(load: Load, max_in_flight: int) -> float:
    """Open-loop load: request i at i/rate seconds; returns the wall time it took.

    Tornado's client, not httpx: on this 2-core box httpx's async client tops out near
    100 requests/s by itself, which would measure the generator rather than the API.
    """
    import tornado.httpclient

    routes = [name for weight, name in MIX for _ in range(weight)]
    total = int(load.rate * load.duration)
    slots = asyncio.Semaphore(max_in_flight)
    tasks: set[asyncio.Task[None]] = set()
    client = tornado.httpclient.AsyncHTTPClient(force_instance=True, max_clients=max_in_flight)
    try:
        started = time.monotonic()
        for i in range(total):
            due = started + i / load.rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            elif delay < -0.05:
                load.late_starts += 1
            await slots.acquire()

            async def run(route: str) -> None:
                try:
                    await one_request(load, client, route)
                finally:
                    slots.release()

            task = asyncio.create_task(run(random.choice(routes)))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=60)
        return time.monotonic() - started
    finally:
        client.close()


# -- the server process -----------------------------------------------------------------------


async def serve_api(url: str, port: int) -> None:
    """Only the HTTP API on Tornado, bound to loopback, until SIGTERM."""
    import tornado.httpserver

    from forge_nb.api import api_application

    async with fnb.App(url) as app:
        server = tornado.httpserver.HTTPServer(api_application(app))
        server.listen(port, address="127.0.0.1")
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()


def start_server(
    args: argparse.Namespace, url: str, port: int, log: Path
) -> subprocess.Popen[bytes]:
    if args.server == "dashboard":
        cmd = [sys.executable, "-m", "forge_nb.cli", "dashboard", "--db", url, "--port", str(port)]
    else:
        cmd = [sys.executable, __file__, "--serve", url, str(port)]
    return subprocess.Popen(cmd, env=child_env(), stdout=log.open("wb"), stderr=subprocess.STDOUT)


def start_workers(n: int, url: str, work_dir: Path) -> list[subprocess.Popen[bytes]]:
    procs = []
    for i in range(n):
        cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url, "--app", "soak:app"]
        cmd += ["--queues", QUEUE, "--heartbeat-interval", "1"]
        log = (work_dir / f"worker-{i}.log").open("wb")
        procs.append(subprocess.Popen(cmd, env=child_env(), stdout=log, stderr=subprocess.STDOUT))
    return procs


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def report(load: Load, wall_s: float, drained: int, codes: dict[str, int | None]) -> dict[str, Any]:
    every = [v for vs in load.latencies.values() for v in vs]
    fivexx = sum(n for c in load.statuses.values() for s, n in c.items() if s >= 500)
    print(f"\n{'route':32} {'n':>6} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}  statuses")
    for route in sorted(load.latencies):
        values = load.latencies[route]
        statuses = ", ".join(f"{s}x{n}" for s, n in sorted(load.statuses[route].items()))
        print(
            f"{route:32} {len(values):6d} {percentile(values, 0.5) * 1000:8.1f} "
            f"{percentile(values, 0.99) * 1000:8.1f} {max(values) * 1000:8.1f}  {statuses}"
        )
    out = {
        "requests": len(every),
        "target_rate": load.rate,
        "achieved_rate": round(len(every) / wall_s, 1) if wall_s else None,
        "p50_ms": round(statistics.median(every) * 1000, 1) if every else None,
        "p99_ms": round(percentile(every, 0.99) * 1000, 1) if every else None,
        "max_ms": round(max(every) * 1000, 1) if every else None,
        "5xx": fivexx,
        "no_answer": sum(1 for f in load.failures if "no answer" in f or "Error" in f),
        "late_starts": load.late_starts,
        "jobs_drained_during_load": drained,
        "exit_codes": codes,
    }
    print("\n== api load summary ==")
    for key, value in out.items():
        print(f"{key:<26} {value}")
    for line in load.failures[:10]:
        print("failure: " + line)
    return out


async def main_async(args: argparse.Namespace, url: str, work_dir: Path) -> dict[str, Any]:
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    procs: dict[str, subprocess.Popen[bytes]] = {}
    async with fnb.App(url) as app:
        await app.ensure_queue(QUEUE, workers=args.slots)
        refs = await app.enqueue_many(
            [
                fnb.EnqueueRequest(kind=KIND, queue=QUEUE, payload={"n": n})
                for n in range(args.backlog)
            ]
        )
        procs["server"] = start_server(args, url, port, work_dir / "server.log")
        await wait_http(base + "/api/counts", timeout=90)
        for i, proc in enumerate(start_workers(args.workers, url, work_dir)):
            procs[f"worker-{i}"] = proc
        finished_before = await finished(app)
        load = Load(args.rate, args.duration, base, [r.id for r in refs])
        print(
            f"api load: {int(args.rate * args.duration)} requests at {args.rate:.0f}/s on {base} "
            f"({args.server}), {args.workers} workers draining {args.backlog} jobs; "
            f"logs in {work_dir}",
            flush=True,
        )
        wall_s = await generate(load, args.max_in_flight)
        drained = await finished(app) - finished_before
    codes: dict[str, int | None] = {}
    for proc in procs.values():
        proc.send_signal(signal.SIGTERM)
    for name, proc in procs.items():
        try:
            codes[name] = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = None
    return report(load, wall_s, drained, codes)


async def finished(app: fnb.App) -> int:
    counts = (await app.counts()).get(QUEUE, {})
    return counts.get("done", 0) + counts.get("dead", 0)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rate", type=float, default=200.0, help="requests per second")
    parser.add_argument("--duration", type=float, default=60.0, help="seconds of load")
    parser.add_argument("--max-in-flight", type=int, default=64)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--slots", type=int, default=10)
    parser.add_argument("--backlog", type=int, default=20_000, help="jobs enqueued up front")
    parser.add_argument("--server", choices=["api", "dashboard"], default="api")
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument("--serve", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.serve:
        asyncio.run(serve_api(args.serve[0], int(args.serve[1])))
        return 0
    work_dir = Path(tempfile.mkdtemp(prefix="forge_nb_api_load_"))
    pg_dir = None
    if args.db:
        url = args.db
    elif args.backend == "postgres":
        url, pg_dir = start_postgres(work_dir)
    else:
        url = f"sqlite:///{work_dir}/api_load.db"
    try:
        summary = asyncio.run(main_async(args, url, work_dir))
    finally:
        if pg_dir is not None:
            subprocess.run(
                ["bash", str(REPO / "scripts" / "postgres.sh"), "stop", str(pg_dir)],
                capture_output=True,
                check=False,
            )
            shutil.rmtree(pg_dir, ignore_errors=True)
    if args.json:
        Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
    return 1 if summary["5xx"] or summary["no_answer"] else 0


if __name__ == "__main__":
    sys.exit(main())
