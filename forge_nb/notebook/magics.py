"""``%load_ext forge_nb``: the ``%fnb`` line magic for the common moves in a notebook.

::

    %fnb                            queues × statuses, as a table
    %fnb widget                     the live controls
    %fnb dashboard [--serve]        Mission Control inline, or served from the kernel (its URL)
    %fnb enqueue KIND '{"n": 3}'    one job (its JobRef renders live)
    %fnb jobs --status dead         a DataFrame of jobs (--queue, --kind, --search, --limit)
    %fnb retry ID | --all-dead      retry one job, or every dead one

Every form takes ``--app NAME`` (a variable of the notebook); without it the magic acts on
the `App` created last in this kernel.

Why a thread: a magic is a plain function call inside a cell that the kernel's loop is
running, so it cannot await the App's own (loop-bound) connections. Reads and changes
go through a short-lived `App` on the same database in a worker thread with its own loop;
the kernel's App sees them through the database as it sees any other process's.
"""

from __future__ import annotations

import argparse
import asyncio
import concurrent.futures
import json
import shlex
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, TypeVar

from forge_nb.runtime.app import App
from forge_nb.runtime.refs import EnqueueRequest, JobRef
from forge_nb.storage.records import STATUSES

T = TypeVar("T")


class MagicError(Exception):
    """A usage error: shown to the user as one line, without a traceback."""


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="%fnb", add_help=False, exit_on_error=False)
    parser.add_argument("--app", default=None)
    parser.add_argument("command", nargs="?", default="status")
    parser.add_argument("args", nargs="*")
    parser.add_argument("--serve", action="store_true")
    parser.add_argument("--port", type=int, default=5006)
    parser.add_argument("--status", default=None, choices=STATUSES)
    parser.add_argument("--queue", default=None)
    parser.add_argument("--kind", default=None)
    parser.add_argument("--search", default=None)
    parser.add_argument("--limit", type=int, default=1000)
    parser.add_argument("--all-dead", action="store_true")
    parser.add_argument("--delay", type=float, default=None)
    return parser


def find_app(namespace: dict[str, Any], name: str | None) -> App:
    """The App called ``name`` in the notebook, else the one created last."""
    if name is not None:
        found = namespace.get(name)
        if not isinstance(found, App):
            raise MagicError(f"--app {name}: no forge-nb App of that name in this notebook")
        return found
    apps = [value for value in namespace.values() if isinstance(value, App)]
    if not apps:
        raise MagicError("no forge-nb App in this notebook yet: run `app = fnb.App()` first")
    return max(apps, key=lambda app: app.host_id)  # ULIDs sort by creation time


def in_thread(url: str, work: Callable[[App], Awaitable[T]]) -> T:
    """Run ``work`` against a short-lived App on ``url`` in a thread with its own loop."""

    async def main() -> T:
        async with App(url) as side:
            return await work(side)

    with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="forge-nb-magic") as pool:
        return pool.submit(asyncio.run, main()).result()


def status_table(counts: Mapping[str, Mapping[Any, int]]) -> Any:
    """Queues × statuses as a DataFrame (with a total column), or a note when empty."""
    import pandas as pd

    frame = pd.DataFrame.from_dict(counts, orient="index", columns=list(STATUSES))
    frame = frame.fillna(0).astype(int)
    frame.index.name = "queue"
    frame["total"] = frame.sum(axis=1)
    return frame.sort_index()


def run_magic(line: str, namespace: dict[str, Any]) -> Any:
    """What ``%fnb line`` returns (the cell shows it)."""
    try:
        args = _parser().parse_args(shlex.split(line))
    except (argparse.ArgumentError, ValueError) as exc:
        raise MagicError(f"{exc}; see %fnb?") from None
    app = find_app(namespace, args.app)
    command = args.command
    if command == "status":
        return status_table(in_thread(app.url, lambda side: side.counts()))
    if command == "widget":
        return app.widget()
    if command == "dashboard":
        if args.serve:
            return app.serve_dashboard(port=args.port)
        return app.dashboard()
    if command == "enqueue":
        return _enqueue(app, args.args, args.delay)
    if command == "jobs":
        return in_thread(
            app.url,
            lambda side: side.jobs_frame(
                status=args.status,
                queue=args.queue,
                kind=args.kind,
                search=args.search,
                limit=args.limit,
            ),
        )
    if command == "retry":
        return _retry(app, args.args, args.all_dead, args.queue, args.kind)
    raise MagicError(f"unknown %fnb command {command!r}; see %fnb?")


def _enqueue(app: App, words: list[str], delay: float | None) -> JobRef:
    if not 1 <= len(words) <= 2:
        raise MagicError('usage: %fnb enqueue KIND [\'{"json": "payload"}\']')
    kind = words[0]
    try:
        payload = json.loads(words[1]) if len(words) == 2 else {}
    except json.JSONDecodeError as exc:
        raise MagicError(f"the payload is not JSON: {exc}") from None
    if not isinstance(payload, dict):
        raise MagicError("the payload must be a JSON object of named arguments")
    request = EnqueueRequest(kind=kind, payload=payload, delay=delay)
    # Checked here against the notebook App's handlers and routed by its router, so the
    # error for arguments that do not fit comes before anything is written.
    job_id = in_thread(app.url, lambda side: _enqueue_as(app, side, request))
    return JobRef(app, job_id, kind)


async def _enqueue_as(app: App, side: App, request: EnqueueRequest) -> str:
    side.handlers = app.handlers
    side.router = app.router
    ref = await side.enqueue(request)
    return ref.id


def _retry(app: App, words: list[str], all_dead: bool, queue: str | None, kind: str | None) -> str:
    if all_dead:
        count = in_thread(app.url, lambda side: side.retry_all(queue=queue, kind=kind))
        return f"retrying {count} dead job{'s' if count != 1 else ''}"
    if len(words) != 1:
        raise MagicError("usage: %fnb retry ID | --all-dead [--queue Q] [--kind K]")
    job = in_thread(app.url, lambda side: side.retry(words[0]))
    return f"job {job.id} ({job.kind}) is {job.status} again"


def load(ipython: Any) -> None:
    """Register ``%fnb`` with ``ipython`` (what ``%load_ext forge_nb`` calls)."""

    def fnb(line: str) -> Any:
        try:
            return run_magic(line, ipython.user_ns)
        except MagicError as exc:
            print(f"%fnb: {exc}")
            return None
        except (LookupError, ValueError, TypeError) as exc:  # the App's own clear errors
            print(f"%fnb: {exc}")
            return None

    fnb.__doc__ = __doc__
    ipython.register_magic_function(fnb, magic_kind="line", magic_name="fnb")
