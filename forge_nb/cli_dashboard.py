"""``forge-nb dashboard`` and ``forge-nb demo``: Mission Control served on the CLI's loop.

Both run everything in one process on one asyncio loop: the Panel/Bokeh
server, the `App` and (for the demo) its workers and a producer. SIGINT and
SIGTERM stop the server, shut the workers down gracefully and exit 0.
Panel is imported only when one of these commands runs.
"""

from __future__ import annotations

import argparse
import asyncio
import errno
import logging
import signal
import sys
from typing import Any

from forge_nb.errors import ForgeError
from forge_nb.runtime.app import App

log = logging.getLogger("forge_nb.dashboard")

DEFAULT_PORT = 5006


def add_dashboard_commands(subparsers: Any) -> None:
    """Add ``dashboard`` and ``demo`` to the ``forge-nb`` subcommands."""
    dash = subparsers.add_parser(
        "dashboard", help="serve Mission Control (dashboard + HTTP API) until SIGINT/SIGTERM"
    )
    dash.add_argument(
        "--db", help="database URL (default: $FORGE_NB_DATABASE_URL or ./.forge_nb/forge_nb.db)"
    )
    dash.add_argument("--port", type=int, default=DEFAULT_PORT)
    dash.add_argument(
        "--address",
        default="127.0.0.1",
        help="address to bind (default 127.0.0.1; others need --basic-auth)",
    )
    dash.add_argument(
        "--prefix",
        default="",
        metavar="/PATH/",
        help="serve everything (pages, static files, websocket, /api/) under this URL path, "
        "for a reverse proxy that passes the full path",
    )
    dash.add_argument(
        "--unix-socket",
        metavar="PATH",
        help="listen on this Unix socket (mode 0600) instead of --address/--port; only this "
        "user's processes (a proxy in front) can connect",
    )
    dash.add_argument("--read-only", action="store_true", help="hide every mutation")
    dash.add_argument(
        "--basic-auth",
        metavar="USER:PASSWORD|FILE",
        help="require this login (dashboard) / HTTP Basic credentials (API); a JSON file of "
        "{user: password} keeps it out of `ps`, as does $FORGE_NB_BASIC_AUTH",
    )
    dash.add_argument(
        "--insecure-no-auth",
        action="store_true",
        help="allow a non-loopback --address without --basic-auth",
    )
    dash.add_argument(
        "--allow-websocket-origin",
        action="append",
        default=[],
        metavar="HOST:PORT",
        help="extra browser origin (e.g. a reverse proxy's host); repeatable",
    )
    dash.add_argument(
        "--allow-host",
        action="append",
        default=[],
        metavar="HOST",
        help="extra Host header name the server answers to ('*': any); repeatable. "
        "Loopback names and the bound address are always allowed",
    )
    dash.add_argument(
        "--max-body-size",
        type=int,
        default=None,
        metavar="BYTES",
        help="largest request body accepted (default 10 MiB); larger ones get 413",
    )
    dash.add_argument(
        "--frame-ancestors",
        action="append",
        default=[],
        metavar="SOURCE",
        help="a page origin allowed to frame the dashboard besides its own; repeatable",
    )
    dash.set_defaults(run=run_dashboard)

    demo = subparsers.add_parser(
        "demo", help="embedded SQLite + demo jobs flowing + Mission Control, in one process"
    )
    demo.add_argument("--db", help="database URL (default: <data dir>/demo.db)")
    demo.add_argument("--port", type=int, default=DEFAULT_PORT)
    demo.add_argument(
        "--rate",
        type=float,
        default=2.0,
        help="jobs per second the demo producer enqueues (default 2)",
    )
    demo.set_defaults(run=run_demo)


def _url(address: str, port: int, prefix: str = "") -> str:
    host = "127.0.0.1" if address in ("0.0.0.0", "", "::") else address
    if ":" in host:
        host = f"[{host}]"
    return f"http://{host}:{port}{prefix}/"


async def _wait_for_signal() -> None:
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def _start(app: App, args: argparse.Namespace, **options: Any) -> Any:
    """Build and start the server, turning a busy port into a clear message."""
    from forge_nb.dashboard.server import build_server

    try:
        server = build_server(app, port=args.port, **options)
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            if options.get("unix_socket"):
                raise SystemExit(
                    f"forge-nb: {options['unix_socket']} is in use by a running server"
                ) from None
            raise SystemExit(f"forge-nb: port {args.port} is already in use; pass --port") from None
        raise
    server.start()
    _settle_heap()
    _expect_closed_websockets(asyncio.get_running_loop())
    return server


def _expect_closed_websockets(loop: asyncio.AbstractEventLoop) -> None:
    """Writes to a websocket the browser closed (a reload) are expected, not errors.

    Panel queues a session's websocket writes as tasks; when the browser reloads while
    some are queued, the session is destroyed before Panel awaits them and asyncio
    logs each one's ``WebSocketClosedError`` as "Task exception was never retrieved"
    (Panel logs the same case as a warning when it gets to await them). Those go to
    the debug log; every other loop error is reported as before.
    """
    from tornado.websocket import WebSocketClosedError

    previous = loop.get_exception_handler()

    def handler(loop: asyncio.AbstractEventLoop, context: dict[str, Any]) -> None:
        task = context.get("future")
        coro = task.get_coro() if isinstance(task, asyncio.Task) else None
        if isinstance(context.get("exception"), WebSocketClosedError) and "write_message" in (
            getattr(coro, "__qualname__", "") or ""
        ):
            log.debug("websocket write after the browser left: %s", context.get("message"))
            return
        if previous is not None:
            previous(loop, context)
        else:
            loop.default_exception_handler(context)

    loop.set_exception_handler(handler)


def _settle_heap() -> None:
    """Make the server's steady state cheaper for a long-running dashboard process.

    - Everything alive now (Panel, Bokeh, pandas: hundreds of thousands of objects,
      none of them garbage later) moves to the collector's permanent generation, so
      the full collection Panel runs after each closed session, and the interpreter's
      own ones, stop walking it (each such walk blocks the event loop).
    - Bokeh's document validation (warnings about layout hints, only logged) is
      skipped for every page build unless ``BOKEH_VALIDATE_DOC`` asks for it.
    """
    import gc
    import os

    from bokeh.settings import settings

    if "BOKEH_VALIDATE_DOC" not in os.environ:
        settings.perform_document_validation.set_value(False)
    gc.collect()
    gc.freeze()


def _stop(server: Any) -> None:
    server.stop()
    try:
        server.unlisten()
    except Exception:  # already closed: nothing left to release
        pass


async def run_dashboard(args: argparse.Namespace) -> int:
    """Serve the dashboard for ``--db`` until a signal arrives."""
    # Refuse an exposed, unauthenticated server before touching the database.
    import os

    from forge_nb.dashboard.server import (
        ENV_BASIC_AUTH,
        check_binding,
        normalize_prefix,
        parse_basic_auth,
    )

    basic_auth = args.basic_auth or os.environ.get(ENV_BASIC_AUTH) or None
    if args.unix_socket is None:
        check_binding(args.address, parse_basic_auth(basic_auth), args.insecure_no_auth)
    prefix = normalize_prefix(args.prefix)
    app = App(args.db)
    await app.storage()  # an unreachable database fails here, with its (masked) URL
    try:
        server = _start(
            app,
            args,
            address=args.address,
            read_only=args.read_only,
            basic_auth=basic_auth,
            insecure_no_auth=args.insecure_no_auth,
            allow_websocket_origin=args.allow_websocket_origin,
            allow_host=args.allow_host,
            max_body_bytes=args.max_body_size,
            frame_ancestors=args.frame_ancestors,
            prefix=prefix,
            unix_socket=args.unix_socket,
            api_thread=True,  # API answers never wait behind a page build
        )
        mode = " (read-only)" if args.read_only else ""
        print(f"forge-nb dashboard{mode}: {app.safe_url}", flush=True)
        where = (
            f"unix socket {args.unix_socket}, path {prefix}/"
            if args.unix_socket
            else _url(args.address, args.port, prefix)
        )
        print(f"Mission Control at {where}  (Ctrl-C to stop)", flush=True)
        await _wait_for_signal()
        print("stopping…", file=sys.stderr, flush=True)
        _stop(server)
    finally:
        await app.close()
    return 0


async def run_demo(args: argparse.Namespace) -> int:
    """Demo jobs, workers, a producer and the dashboard in this one process."""
    from forge_nb import demo

    app = demo.demo_app(args.db)
    await demo.prepare(app)
    handle = await app.start()
    producer = asyncio.get_running_loop().create_task(
        demo.produce(app, rate=args.rate), name="forge-nb-demo-producer"
    )
    try:
        server = _start(app, args, address="127.0.0.1")
        print(f"forge-nb demo: jobs flowing in {app.safe_url}", flush=True)
        print(f"Mission Control at {_url('127.0.0.1', args.port)}  (Ctrl-C to stop)", flush=True)
        await _wait_for_signal()
        print("stopping: finishing running jobs…", file=sys.stderr, flush=True)
        _stop(server)
    finally:
        producer.cancel()
        await asyncio.gather(producer, return_exceptions=True)
        await handle.shutdown(5.0)
        await app.close()
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m forge_nb.cli_dashboard dashboard|demo …``: ``forge-nb dashboard|demo``."""

    parser = argparse.ArgumentParser(prog="forge-nb", description=__doc__.splitlines()[0])
    add_dashboard_commands(parser.add_subparsers(dest="command", required=True))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr)
    try:
        return int(asyncio.run(args.run(args)) or 0)
    except (ForgeError, ValueError, LookupError, TypeError) as exc:
        print(f"forge-nb: error: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
