"""``forge-nb`` command line: worker, migrate, enqueue, jobs, retry, cancel.

The CLI is the one place that owns an event loop (``asyncio.run``); the library
itself always runs on the caller's loop.
"""

from __future__ import annotations

import argparse
import asyncio
import importlib
import json
import logging
import os
import signal
import sys
import threading
from collections.abc import Sequence
from typing import Any

from forge_nb.errors import ForgeError
from forge_nb.runtime.app import App
from forge_nb.runtime.refs import EnqueueRequest
from forge_nb.storage import open_storage
from forge_nb.storage.records import STATUSES
from forge_nb.storage.schema import latest_version

LOG_FORMAT = "%(asctime)s %(levelname)-7s %(name)s[%(process)d]: %(message)s"
log = logging.getLogger("forge_nb.cli")


def load_app(spec: str | None, db: str | None) -> App:
    """Import ``module:attr`` (an `App`, or a callable returning one); else a bare App."""
    if spec is None:
        return App(db)
    module_name, _, attr = spec.partition(":")
    if not module_name or not attr:
        raise SystemExit(f"--app must look like module:attr, got {spec!r}")
    if os.getcwd() not in sys.path:
        sys.path.insert(0, os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise SystemExit(f"cannot import {module_name!r} for --app: {exc}") from None
    app = getattr(module, attr, None)
    if app is not None and not isinstance(app, App) and callable(app):
        app = app()
    if not isinstance(app, App):
        raise SystemExit(f"--app {spec!r} is not a forge_nb.App (got {type(app).__name__})")
    if db:
        app.configure(url=db)
    return app


async def run_worker(args: argparse.Namespace) -> int:
    """Run workers until SIGTERM/SIGINT, then shut down gracefully."""
    app = load_app(args.app, args.db)
    app.configure(
        queues=args.queues.split(",") if args.queues else None,
        heartbeat_interval=args.heartbeat_interval,
        stale_after=args.stale_after,
        poll_interval=args.poll_interval,
        lease_ttl=args.lease_ttl,
        shipped_code=args.shipped_code,
    )
    if args.metrics_port is not None:
        from forge_nb.runtime.prometheus import WorkerMetrics

        app.prometheus = WorkerMetrics()
        app.prometheus.serve(args.metrics_port, args.metrics_address)
        log.info("Prometheus metrics on :%d/metrics", args.metrics_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    if not app.handlers.user_kinds() and not app.run_shipped_code:
        warn_no_user_kinds(app)
    handle = await app.start()
    log.info("ready: %d job kind(s) registered", len(app.handlers))
    await stop.wait()
    log.info("signal received: shutting down (up to %s s)", args.shutdown_timeout)
    await handle.shutdown(args.shutdown_timeout)
    await app.close()
    return 0


def warn_no_user_kinds(app: App) -> None:
    """Say loudly that a worker without user handlers will run next to nothing.

    It claims only the kinds it runs, so it leaves every other job pending (no harm done),
    but a worker started without ``--app`` is almost always a mistake.
    """
    log.warning(
        "this worker on %s has no job kinds of its own: it will claim nothing but "
        "forge-nb's built-ins (%s); jobs of every other kind stay pending for a worker "
        "that runs them. To run your jobs, start it with your App: "
        "forge-nb worker --app module:attr (or --shipped-code for code shipped from a "
        "notebook)",
        app.safe_url,
        ", ".join(app.handlers.kinds()) or "none",
    )


async def run_migrate(args: argparse.Namespace) -> int:
    """Open (and so migrate) the database, report the schema version."""
    storage = await open_storage(args.db)
    try:
        version = await storage.schema_version()
        known = latest_version(storage.backend)
        print(f"{storage.safe_url}: schema version {version} (this forge-nb knows {known})")
    finally:
        await storage.close()
    return 0


async def run_enqueue(args: argparse.Namespace) -> int:
    """Enqueue one job and print its id."""
    try:
        payload = json.loads(args.payload)
    except json.JSONDecodeError as exc:
        raise SystemExit(f"--payload is not valid JSON: {exc}") from None
    async with App(args.db) as app:
        ref = await app.enqueue(
            EnqueueRequest(
                kind=args.kind,
                payload=payload,
                queue=args.queue,
                priority=args.priority,
                delay=args.delay,
                unique_key=args.unique_key,
            )
        )
    print(ref.id if ref.outcome == "created" else f"{ref.id} (duplicate)")
    return 0


async def run_jobs(args: argparse.Namespace) -> int:
    """List jobs, newest first."""
    async with App(args.db) as app:
        jobs = await app.jobs(
            status=args.status,
            queue=args.queue,
            kind=args.kind,
            search=args.search,
            limit=args.limit,
        )
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs], indent=2))
        return 0
    print(f"{'ID':>8}  {'STATUS':8} {'QUEUE':12} {'KIND':24} {'ATT':>3}  ERROR")
    for j in jobs:
        error = (j.last_error or "").splitlines()[0][:60] if j.last_error else ""
        print(
            f"{j.id:>8}  {j.status:8} {j.queue[:12]:12} {j.kind[:24]:24} {j.attempts:>3}  {error}"
        )
    return 0


async def run_retry(args: argparse.Namespace) -> int:
    """Retry one job, or every dead job."""
    async with App(args.db) as app:
        if args.all_dead:
            n = await app.retry_all("dead", queue=args.queue)
            print(f"retried {n} dead job(s)")
        elif args.id:
            job = await app.retry(args.id)
            print(f"job {job.id} is {job.status} again")
        else:
            raise SystemExit("give a job ID or --all-dead")
    return 0


async def run_cancel(args: argparse.Namespace) -> int:
    """Cancel one job."""
    async with App(args.db) as app:
        status = await app.cancel(args.id)
    if status is None:
        raise SystemExit(f"unknown job id {args.id!r}")
    print(f"job {args.id}: {status}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser (one subcommand per verb)."""
    parser = argparse.ArgumentParser(prog="forge-nb", description=__doc__.splitlines()[0])
    parser.add_argument("--log-level", default=os.environ.get("FORGE_NB_LOG_LEVEL", "INFO"))
    sub = parser.add_subparsers(dest="command", required=True)

    def with_db(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
        p.add_argument(
            "--db", help="database URL (default: $FORGE_NB_DATABASE_URL or ./.forge_nb/forge_nb.db)"
        )
        return p

    worker = with_db(sub.add_parser("worker", help="run workers until SIGTERM/SIGINT"))
    worker.add_argument("--app", help="module:attr of your forge_nb.App (its jobs)")
    worker.add_argument(
        "--shipped-code",
        action="store_true",
        help="also run the job code shipped to the database by App(ship_code=True) "
        "(signed with FORGE_NB_CODE_KEY, which this worker needs too); --app handlers win",
    )
    worker.add_argument("--queues", help="comma-separated queues to work (default: all)")
    worker.add_argument("--heartbeat-interval", type=float, default=None)
    worker.add_argument("--stale-after", type=float, default=None)
    worker.add_argument("--shutdown-timeout", type=float, default=30.0)
    worker.add_argument("--poll-interval", type=float, default=None)
    worker.add_argument("--lease-ttl", type=float, default=None, help="leader lease (s)")
    worker.add_argument(
        "--metrics-port", type=int, default=None, help="serve Prometheus metrics on this port"
    )
    worker.add_argument("--metrics-address", default="0.0.0.0", help="with --metrics-port")
    worker.set_defaults(run=run_worker)

    migrate = with_db(sub.add_parser("migrate", help="apply database migrations"))
    migrate.set_defaults(run=run_migrate)

    enqueue = with_db(sub.add_parser("enqueue", help="enqueue one job"))
    enqueue.add_argument("kind")
    enqueue.add_argument("--payload", default="{}", help="JSON object of named arguments")
    enqueue.add_argument("--queue")
    enqueue.add_argument("--priority", type=int)
    enqueue.add_argument("--delay", type=float)
    enqueue.add_argument("--unique-key")
    enqueue.set_defaults(run=run_enqueue)

    jobs = with_db(sub.add_parser("jobs", help="list jobs"))
    jobs.add_argument("--status", choices=list(STATUSES))
    jobs.add_argument("--queue")
    jobs.add_argument("--kind")
    jobs.add_argument("--search")
    jobs.add_argument("--limit", type=int, default=50)
    jobs.add_argument("--json", action="store_true")
    jobs.set_defaults(run=run_jobs)

    retry = with_db(sub.add_parser("retry", help="retry a job, or all dead jobs"))
    retry.add_argument("id", nargs="?")
    retry.add_argument("--all-dead", action="store_true")
    retry.add_argument("--queue")
    retry.set_defaults(run=run_retry)

    cancel = with_db(sub.add_parser("cancel", help="cancel a job"))
    cancel.add_argument("id")
    cancel.set_defaults(run=run_cancel)

    from forge_nb.cli_observe import add_observe_commands

    add_observe_commands(sub, with_db)
    from forge_nb.cli_dashboard import add_dashboard_commands  # Panel loads only when run

    add_dashboard_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``forge-nb`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(), format=LOG_FORMAT, stream=sys.stderr)
    try:
        result: Any = asyncio.run(args.run(args))
    except (ForgeError, ValueError, LookupError, TypeError) as exc:
        print(f"forge-nb: error: {exc}", file=sys.stderr)
        return 1
    code = int(result or 0)
    if args.command == "worker" and _stuck_threads():
        # A sync handler past its timeout still runs in a thread Python would wait for at
        # exit. Its job is already back in the queue: leave without waiting.
        log.warning("abandoning %d handler thread(s) still running", len(_stuck_threads()))
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)
    return code


def _stuck_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("forge-nb-job") and t.is_alive()]


if __name__ == "__main__":
    sys.exit(main())
