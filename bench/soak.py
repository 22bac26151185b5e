"""Soak test (not CI): a steady job stream for minutes, watching for slow leaks and stalls.

    python bench/soak.py                          # 600 s on a fresh SQLite file
    python bench/soak.py --duration 120 --rate 300
    python bench/soak.py --backend postgres       # a throwaway server (scripts/postgres.sh)
    python bench/soak.py --db postgresql://…      # an existing database (it gets a 'soak' queue)

What runs: ``--workers`` `forge-nb worker` processes (this file is also their ``--app``
module), a producer in this process enqueueing ``--rate`` jobs/s in batches every 100 ms
(1% fail, 1% are cancelled shortly after enqueue, pending or running), short retention
windows so done/dead rows are swept, and — when ``forge_nb.dashboard`` exists — the
dashboard served by ``forge-nb dashboard`` with a headless Chromium page kept open on it.

Every ``--sample-every`` seconds it prints one row: jobs enqueued/done/dead/backlog, each
worker's RSS, the database size, and how fast the dashboard answers, in separate columns:

- ``ttfb``: time to the first byte of the page HTML, from the browser's navigation timing of
  the reload below (the server builds the session's document before it answers);
- ``reload``: a full page reload in Chromium until ``load`` and the first chart canvas;
- ``data``: the same reload until the Overview also shows its live-process table's rows
  (the page with its data, whichever part the server sends first);
- ``api``: the slowest ``GET /api/counts`` since the last row (probed every 0.5 s from a
  separate process, one keep-alive connection, so the page reloads' server work shows up in
  it and this script's own busy loop does not); ``db``: one ``counts()`` query straight from
  this process (a slow ``api`` splits into database time and time the dashboard made it wait);
- ``tick``: the slowest live-update tick of any dashboard session since the last sample
  (from the dashboard's ``tick took`` debug lines, see `DASHBOARD_BOOT`).

At the end: a summary table (p50/p95/max of each of those), growth verdicts (RSS, DB size
after retention) and the error lines found in the worker and dashboard logs.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import random
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import forge_nb as fnb

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
QUEUE = "soak"
KIND = "soak.work"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
]
#: Log lines that count as errors at the end of the run.
ERROR_MARKERS = ("ERROR", "Traceback", "database is locked", "unavailable", "CRITICAL")
#: Runs ``forge-nb dashboard`` unchanged, with the dashboard's own logger at DEBUG so every
#: session tick logs its duration (the rest of the process stays at INFO).
DASHBOARD_BOOT = (
    "import logging, sys; from forge_nb.cli import main; "
    "logging.getLogger('forge_nb.dashboard').setLevel(logging.DEBUG); sys.exit(main())"
)
TICK_LINE = re.compile(r"tick took ([0-9.]+) s")
#: Seconds between two ``/api/counts`` probes (a page reload's server work shows up in them).
PROBE_EVERY_S = 0.5

# -- the job module the workers load (``--app soak:app``) -------------------------------------

app = fnb.App()


@app.job(kind=KIND, queue=QUEUE, max_attempts=1)
async def work(ctx: fnb.JobCtx, n: int, fail: bool = False, nap: float = 0.0) -> int:
    """A few ms of async work; some fail, some nap long enough to be cancelled while running."""
    await asyncio.sleep(nap or random.random() * 0.01)
    if fail:
        raise RuntimeError(f"soak failure #{n} (planned)")
    return n


# -- helpers ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def child_env() -> dict[str, str]:
    paths = [str(HERE), str(REPO), os.environ.get("PYTHONPATH", "")]
    return {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}


def mb(n: float | None) -> str:
    return "-" if n is None else f"{n / 1e6:.1f}"


def ms(s: float | None) -> str:
    return "-" if s is None else f"{s * 1000:.0f}"


def quantile(values: list[float], q: float) -> float:
    """Nearest-rank quantile (``q`` in 0..1) of a non-empty list."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def spread_ms(values: list[float]) -> dict[str, int | None]:
    """p50/p95/max in ms (None when nothing was measured)."""
    if not values:
        return {"p50": None, "p95": None, "max": None, "n": 0}
    return {
        "p50": round(quantile(values, 0.5) * 1000),
        "p95": round(quantile(values, 0.95) * 1000),
        "max": round(max(values) * 1000),
        "n": len(values),
    }


@dataclass
class Sample:
    t: float
    enqueued: int
    done: int
    dead: int
    backlog: int
    rss: list[int]
    db_bytes: int | None
    ttfb_s: float | None
    page_s: float | None
    data_s: float | None
    api_s: float | None
    db_counts_s: float
    tick_s: float | None


@dataclass
class Run:
    args: argparse.Namespace
    url: str
    work_dir: Path
    workers: list[subprocess.Popen[bytes]] = field(default_factory=list)
    dashboard: subprocess.Popen[bytes] | None = None
    dash_url: str | None = None
    samples: list[Sample] = field(default_factory=list)
    enqueued: int = 0
    cancel_requests: int = 0
    producer_errors: list[str] = field(default_factory=list)
    browser_errors: list[str] = field(default_factory=list)
    #: Every dashboard tick duration read from its log so far, and how far the log was read.
    ticks: list[float] = field(default_factory=list)
    log_offset: int = 0
    #: Every ``/api/counts`` probe's seconds, how many a row has shown, failed probes.
    probes: list[float] = field(default_factory=list)
    probes_seen: int = 0
    probe_offset: int = 0
    probe_errors: int = 0
    prober: subprocess.Popen[bytes] | None = None
    finished_total: int = 0
    started_at: float = field(default_factory=time.time)


# -- database size ---------------------------------------------------------------------------


async def db_size(url: str) -> int | None:
    """SQLite: the file plus its WAL; Postgres: pg_database_size."""
    if url.startswith("sqlite"):
        path = Path(url.split("sqlite:///", 1)[1])
        return sum(p.stat().st_size for p in (path, Path(f"{path}-wal")) if p.exists())
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT pg_database_size(current_database())"))
    finally:
        await conn.close()


# -- processes -------------------------------------------------------------------------------


def start_worker(run: Run, index: int) -> subprocess.Popen[bytes]:
    log = open(run.work_dir / f"worker-{index}.log", "wb")  # noqa: SIM115 (the child keeps it)
    cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", run.url, "--app", "soak:app"]
    cmd += ["--queues", QUEUE, "--heartbeat-interval", "1"]
    return subprocess.Popen(cmd, env=child_env(), stdout=log, stderr=subprocess.STDOUT)


def dashboard_available() -> bool:
    try:
        import forge_nb.dashboard  # noqa: F401
    except ImportError:
        return False
    return True


def start_dashboard(run: Run, port: int) -> subprocess.Popen[bytes]:
    """``forge-nb dashboard`` if the CLI has it, else the same server built by this script."""
    has_cli = (
        subprocess.run(
            [sys.executable, "-m", "forge_nb.cli", "dashboard", "--help"],
            env=child_env(),
            capture_output=True,
            check=False,
        ).returncode
        == 0
    )
    if has_cli:
        cmd = [sys.executable, "-c", DASHBOARD_BOOT, "dashboard", "--db", run.url]
        cmd += ["--port", str(port)]
    else:
        cmd = [sys.executable, __file__, "--serve-dashboard", run.url, str(port)]
    log = open(run.work_dir / "dashboard.log", "wb")  # noqa: SIM115
    return subprocess.Popen(cmd, env=child_env(), stdout=log, stderr=subprocess.STDOUT)


async def serve_dashboard(url: str, port: int) -> None:
    """Fallback server: `forge_nb.dashboard.build_server` on this loop until SIGTERM."""
    import logging

    from forge_nb.dashboard import build_server

    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    logging.getLogger("forge_nb.dashboard").setLevel(logging.DEBUG)
    async with fnb.App(url) as dash_app:
        server = build_server(dash_app, port=port)
        server.start()
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await stop.wait()
        server.stop()


async def wait_http(url: str, timeout: float) -> None:
    import httpx

    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient() as client:
        while True:
            try:
                if (await client.get(url, timeout=5)).status_code < 500:
                    return
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                raise RuntimeError(f"{url} did not come up within {timeout} s")
            await asyncio.sleep(0.3)


# -- the run ---------------------------------------------------------------------------------


async def produce(run: Run, producer_app: fnb.App, until: float) -> None:
    """``rate`` jobs/s in batches every 100 ms; 1% fail, 1% get cancelled ~0.3 s later."""
    per_tick = run.args.rate / 10
    carry = 0.0
    n = 0
    next_tick = time.monotonic()
    pending_cancels: set[asyncio.Task[Any]] = set()
    while time.monotonic() < until:
        carry += per_tick
        size, carry = int(carry), carry - int(carry)
        requests: list[fnb.EnqueueRequest] = []
        to_cancel: list[int] = []
        for _ in range(size):
            n += 1
            roll = random.random() * 100
            if roll < run.args.fail_pct:
                payload: dict[str, Any] = {"n": n, "fail": True}
            elif roll < run.args.fail_pct + run.args.cancel_pct:
                payload = {"n": n, "nap": 2.0}
                to_cancel.append(len(requests))
            else:
                payload = {"n": n}
            requests.append(fnb.EnqueueRequest(kind=KIND, payload=payload, queue=QUEUE))
        if requests:
            try:
                refs = await producer_app.enqueue_many(requests)
                run.enqueued += len(refs)
                for i in to_cancel:
                    task = asyncio.create_task(cancel_later(run, producer_app, refs[i].id))
                    pending_cancels.add(task)
                    task.add_done_callback(pending_cancels.discard)
            except Exception as exc:
                run.producer_errors.append(f"{type(exc).__name__}: {exc}")
        next_tick += 0.1
        await asyncio.sleep(max(0.0, next_tick - time.monotonic()))
    await asyncio.gather(*pending_cancels, return_exceptions=True)


async def cancel_later(run: Run, producer_app: fnb.App, job_id: str) -> None:
    await asyncio.sleep(random.uniform(0.05, 0.6))  # some still pending, some running
    try:
        await producer_app.cancel(job_id)
        run.cancel_requests += 1
    except Exception as exc:
        run.producer_errors.append(f"cancel {type(exc).__name__}: {exc}")


async def sample_loop(
    run: Run, producer_app: fnb.App, page: Any, started: float, until: float
) -> None:
    import psutil

    header = (
        f"{'t':>5} {'enq':>8} {'done':>8} {'dead':>6} {'backlog':>7} "
        f"{'worker RSS MB':>20} {'db MB':>7} {'ttfb ms':>7} {'reload ms':>9} {'data ms':>7} "
        f"{'api ms':>6} "
        f"{'db ms':>5} {'tick ms':>7}"
    )
    print(header, flush=True)
    while True:
        now = time.monotonic()
        enqueued = run.enqueued
        t0 = time.monotonic()
        counts = (await producer_app.counts()).get(QUEUE, {})
        db_counts_s = time.monotonic() - t0
        rss = []
        for proc in run.workers:
            try:
                rss.append(psutil.Process(proc.pid).memory_info().rss)
            except psutil.Error:
                rss.append(0)
        ttfb_s, page_s, data_s = await time_reload(run, page)
        api_s = new_probes_max(run)  # after the reload: its row shows what it cost
        tick_s = new_ticks_max(run)
        sample = Sample(
            t=now - started,
            enqueued=enqueued,
            done=counts.get("done", 0),
            dead=counts.get("dead", 0),
            backlog=counts.get("pending", 0) + counts.get("running", 0) + counts.get("failed", 0),
            rss=rss,
            db_bytes=await db_size(run.url),
            ttfb_s=ttfb_s,
            page_s=page_s,
            data_s=data_s,
            api_s=api_s,
            db_counts_s=db_counts_s,
            tick_s=tick_s,
        )
        run.samples.append(sample)
        print(
            f"{sample.t:5.0f} {sample.enqueued:8d} {sample.done:8d} {sample.dead:6d} "
            f"{sample.backlog:7d} {'/'.join(mb(r) for r in rss):>20} {mb(sample.db_bytes):>7} "
            f"{ms(ttfb_s):>7} {ms(page_s):>9} {ms(data_s):>7} {ms(api_s):>6} {ms(db_counts_s):>5} "
            f"{ms(tick_s):>7}",
            flush=True,
        )
        if time.monotonic() >= until:
            return
        await asyncio.sleep(max(0.0, run.args.sample_every - (time.monotonic() - now)))


def probe_forever(base_url: str, out_path: str) -> None:
    """``GET /api/counts`` every `PROBE_EVERY_S` (one at a time), one line of seconds per answer.

    Runs in its own process (``--probe``): timed in this script's own busy loop (the
    producer, Playwright), a probe would also count the time this script took to notice
    the answer.
    """
    import http.client
    from urllib.parse import urlsplit

    parts = urlsplit(base_url)
    path = (parts.path.rstrip("/") or "") + "/api/counts"
    conn: http.client.HTTPConnection | None = None
    with open(out_path, "a", buffering=1) as out:
        while True:
            t0 = time.perf_counter()
            try:
                if conn is None:
                    conn = http.client.HTTPConnection(parts.hostname or "", parts.port, timeout=30)
                conn.request("GET", path)
                reply = conn.getresponse()
                reply.read()
                ok = reply.status == 200
            except (OSError, http.client.HTTPException):
                ok = False
                if conn is not None:
                    conn.close()
                conn = None
            took = time.perf_counter() - t0
            out.write(f"{took:.6f}\n" if ok else "error\n")
            time.sleep(max(0.0, PROBE_EVERY_S - (time.perf_counter() - t0)))


def start_probe(run: Run) -> subprocess.Popen[bytes] | None:
    """The ``/api/counts`` prober, in its own process (see `probe_forever`)."""
    if run.dash_url is None:
        return None
    cmd = [sys.executable, __file__, "--probe", run.dash_url, str(run.work_dir / "probes.txt")]
    return subprocess.Popen(cmd, env=child_env())


def read_probes(run: Run) -> None:
    """Collect the probe lines written since the last call."""
    path = run.work_dir / "probes.txt"
    if not path.exists():
        return
    with path.open("rb") as fh:
        fh.seek(run.probe_offset)
        chunk = fh.read()
    end = chunk.rfind(b"\n") + 1
    run.probe_offset += end
    for line in chunk[:end].decode().split():
        if line == "error":
            run.probe_errors += 1
        else:
            run.probes.append(float(line))


def new_probes_max(run: Run) -> float | None:
    """The slowest ``/api/counts`` probe since the last call."""
    read_probes(run)
    fresh = run.probes[run.probes_seen :]
    run.probes_seen = len(run.probes)
    return max(fresh) if fresh else None


#: The reload's navigation timing: request sent → first byte of the page HTML (ms).
TTFB_JS = """() => {
  const nav = performance.getEntriesByType("navigation")[0];
  return nav ? nav.responseStart - nav.requestStart : null;
}"""


async def time_reload(run: Run, page: Any) -> tuple[float | None, float | None, float | None]:
    """(HTML time to first byte, full reload until load + first canvas, until the
    live-process table has rows too), in seconds."""
    if page is None:
        return None, None, None
    t0 = time.monotonic()
    try:
        await page.reload(wait_until="load", timeout=60_000)
        await page.locator("canvas").first.wait_for(timeout=60_000)
        page_s = time.monotonic() - t0
        await page.locator(".fnb-process-strip .tabulator-row").first.wait_for(timeout=60_000)
        data_s = time.monotonic() - t0
        ttfb_ms = await page.evaluate(TTFB_JS)
    except Exception as exc:
        run.browser_errors.append(f"reload: {type(exc).__name__}: {exc}")
        return None, None, None
    return (None if ttfb_ms is None else ttfb_ms / 1000), page_s, data_s


def new_ticks_max(run: Run) -> float | None:
    """The slowest dashboard tick logged since the last call (all of them kept in the run)."""
    path = run.work_dir / "dashboard.log"
    if run.dashboard is None or not path.exists():
        return None
    with path.open("rb") as log:
        log.seek(run.log_offset)
        chunk = log.read()
    end = chunk.rfind(b"\n") + 1  # a half-written last line is read next time
    run.log_offset += end
    found = [float(m) for m in TICK_LINE.findall(chunk[:end].decode(errors="replace"))]
    run.ticks.extend(found)
    return max(found) if found else None


async def open_browser(run: Run) -> tuple[Any, Any, Any]:
    from playwright.async_api import async_playwright

    pw = await async_playwright().start()
    browser = await pw.chromium.launch(executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS)
    page = await browser.new_page(viewport={"width": 1400, "height": 900})

    def on_console(message: Any) -> None:
        if message.type == "error":
            run.browser_errors.append(f"console: {message.text}")

    page.on("pageerror", lambda e: run.browser_errors.append(f"pageerror: {e}"))
    page.on("console", on_console)
    await page.goto(run.dash_url or "", wait_until="load", timeout=120_000)
    await page.locator("canvas").first.wait_for(timeout=120_000)
    return pw, browser, page


async def soak(run: Run) -> None:
    args = run.args
    async with fnb.App(run.url) as producer_app:
        await producer_app.ensure_queue(
            QUEUE,
            workers=args.slots,
            retain_done_seconds=args.retention,
            retain_dead_seconds=args.retention,
        )
        run.workers = [start_worker(run, i) for i in range(args.workers)]
        pw = browser = page = None
        if not args.no_dashboard and dashboard_available():
            port = free_port()
            run.dash_url = f"http://127.0.0.1:{port}/"
            run.dashboard = start_dashboard(run, port)
            await wait_http(run.dash_url, timeout=90)
            pw, browser, page = await open_browser(run)
        elif not args.no_dashboard:
            print("forge_nb.dashboard is not importable: running without the dashboard")
        started = time.monotonic()
        until = started + args.duration
        print(
            f"soak: {args.duration:.0f} s at {args.rate:.0f} jobs/s on {producer_app.safe_url}, "
            f"{args.workers} workers x {args.slots} slots, retention {args.retention:.0f} s, "
            f"dashboard {run.dash_url or 'off'}; logs in {run.work_dir}",
            flush=True,
        )
        run.prober = start_probe(run)
        try:
            await asyncio.gather(
                produce(run, producer_app, until),
                sample_loop(run, producer_app, page, started, until),
            )
        finally:
            if run.prober is not None:
                run.prober.terminate()
                run.prober.wait(10)
            read_probes(run)
            if browser is not None:
                await browser.close()
            if pw is not None:
                await pw.stop()
            # Let the workers catch up a little so the backlog figure means something.
            await asyncio.sleep(2)
            # Rows are swept by retention: count finished jobs from the per-minute metrics.
            points = await producer_app.metrics(queue=QUEUE, since=run.started_at - 60)
            run.finished_total = sum(p["completed"] + p["dead"] for p in points)


def stop_children(run: Run) -> dict[str, int | None]:
    codes: dict[str, int | None] = {}
    procs = [(f"worker-{i}", p) for i, p in enumerate(run.workers)]
    if run.dashboard is not None:
        procs.append(("dashboard", run.dashboard))
    for _, proc in procs:
        if proc.poll() is None:
            proc.send_signal(signal.SIGTERM)
    for name, proc in procs:
        try:
            codes[name] = proc.wait(timeout=40)
        except subprocess.TimeoutExpired:
            proc.kill()
            codes[name] = None
    return codes


def log_errors(run: Run) -> dict[str, list[str]]:
    found: dict[str, list[str]] = {}
    for path in sorted(run.work_dir.glob("*.log")):
        lines = path.read_text(errors="replace").splitlines()
        bad = [line for line in lines if any(m in line for m in ERROR_MARKERS)]
        if bad:
            found[path.name] = bad
    return found


def growth(values: list[float]) -> str:
    """Change from the first third of the run (after warm-up) to the end."""
    if len(values) < 3:
        return "n/a (too few samples)"
    start = values[len(values) // 3]
    end = values[-1]
    if not start:
        return "n/a"
    return f"{start / 1e6:.1f} -> {end / 1e6:.1f} MB ({(end - start) / start * 100:+.1f}%)"


def report(run: Run, codes: dict[str, int | None], wall_s: float) -> dict[str, Any]:
    samples = run.samples
    new_ticks_max(run)  # the ticks logged after the last sample
    pages = [s.page_s for s in samples if s.page_s is not None]
    with_data = [s.data_s for s in samples if s.data_s is not None]
    ttfbs = [s.ttfb_s for s in samples if s.ttfb_s is not None]
    rss_total = [float(sum(s.rss)) for s in samples]
    dbs = [float(s.db_bytes) for s in samples if s.db_bytes is not None]
    errors = log_errors(run)
    out = {
        "backend": run.url.split(":", 1)[0],
        "duration_s": run.args.duration,
        "target_rate": run.args.rate,
        "enqueued": run.enqueued,
        "achieved_enqueue_rate": round(run.enqueued / max(1e-9, run.args.duration), 1),
        "finished_per_metrics": run.finished_total,
        "backlog_at_end": samples[-1].backlog if samples else None,
        "cancel_requests": run.cancel_requests,
        "producer_errors": len(run.producer_errors),
        "worker_rss_growth": growth(rss_total),
        "db_size_growth": growth(dbs),
        "db_size_max_mb": round(max(dbs) / 1e6, 1) if dbs else None,
        "page_html_ttfb_ms": spread_ms(ttfbs),
        "page_full_reload_ms": spread_ms(pages),
        "page_with_data_ms": spread_ms(with_data),
        "api_counts_ms": spread_ms(run.probes),
        "api_counts_errors": run.probe_errors,
        "db_counts_ms": spread_ms([s.db_counts_s for s in samples]),
        "dashboard_tick_ms": spread_ms(run.ticks),
        "browser_errors": len(run.browser_errors),
        "log_error_lines": {name: len(lines) for name, lines in errors.items()},
        "exit_codes": codes,
        "wall_s": round(wall_s, 1),
    }
    print("\n== soak summary ==")
    width = max(len(k) for k in out)
    for key, value in out.items():
        print(f"{key:<{width}}  {value}")
    for name, lines in errors.items():
        print(f"\n-- {name}: {len(lines)} error line(s), first ones:")
        for line in lines[:5]:
            print("   " + line[:300])
    for line in run.producer_errors[:5]:
        print("producer error: " + line[:300])
    for line in run.browser_errors[:5]:
        print("browser error: " + line[:300])
    return out


def start_postgres(work_dir: Path) -> tuple[str, Path]:
    pg_dir = Path(tempfile.mkdtemp(prefix="forge_nb_soak_pg_"))
    started = subprocess.run(
        ["bash", str(REPO / "scripts" / "postgres.sh"), "start", str(pg_dir)],
        capture_output=True,
        text=True,
        check=True,
    )
    return started.stdout.strip().splitlines()[-1], pg_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=600.0, help="seconds (default 600)")
    parser.add_argument("--rate", type=float, default=500.0, help="jobs per second (default 500)")
    parser.add_argument("--fail-pct", type=float, default=1.0)
    parser.add_argument("--cancel-pct", type=float, default=1.0)
    parser.add_argument("--workers", type=int, default=3, help="worker processes")
    parser.add_argument("--slots", type=int, default=20, help="concurrent jobs per worker")
    parser.add_argument("--retention", type=float, default=60.0, help="done/dead window (s)")
    parser.add_argument("--sample-every", type=float, default=15.0)
    parser.add_argument("--db", help="database URL (default: a fresh SQLite file)")
    parser.add_argument("--backend", choices=["sqlite", "postgres"], default="sqlite")
    parser.add_argument("--no-dashboard", action="store_true")
    parser.add_argument("--json", help="also write the summary to this file")
    parser.add_argument(
        "--serve-dashboard", nargs=2, metavar=("URL", "PORT"), help=argparse.SUPPRESS
    )
    parser.add_argument("--probe", nargs=2, metavar=("URL", "FILE"), help=argparse.SUPPRESS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.probe:
        signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
        probe_forever(*args.probe)
        return 0
    if args.serve_dashboard:
        asyncio.run(serve_dashboard(args.serve_dashboard[0], int(args.serve_dashboard[1])))
        return 0
    work_dir = Path(tempfile.mkdtemp(prefix="forge_nb_soak_"))
    pg_dir = None
    if args.db:
        url = args.db
    elif args.backend == "postgres":
        url, pg_dir = start_postgres(work_dir)
    else:
        url = f"sqlite:///{work_dir}/soak.db"
    run = Run(args, url, work_dir)
    started = time.monotonic()
    codes: dict[str, int | None] = {}
    try:
        asyncio.run(soak(run))
    except KeyboardInterrupt:
        print("interrupted")
    finally:
        codes = stop_children(run)
        summary = report(run, codes, time.monotonic() - started)
        if args.json:
            Path(args.json).write_text(json.dumps(summary, indent=2, default=str))
        if pg_dir is not None:
            subprocess.run(
                ["bash", str(REPO / "scripts" / "postgres.sh"), "stop", str(pg_dir)],
                capture_output=True,
                check=False,
            )
            shutil.rmtree(pg_dir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
