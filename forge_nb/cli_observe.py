"""``forge-nb logs ID [--follow]``: what a job printed and logged, per attempt."""

from __future__ import annotations

import argparse
import asyncio
from typing import Any

from forge_nb.runtime.app import App
from forge_nb.storage.records import JobLog

#: Seconds between reads while following (the worker stores logs every 0.5 s).
FOLLOW_POLL_S = 0.5


def add_observe_commands(sub: Any, with_db: Any) -> None:
    """Register ``logs`` on the ``forge-nb`` parser."""
    logs = with_db(sub.add_parser("logs", help="print a job's captured output"))
    logs.add_argument("id")
    logs.add_argument(
        "--follow", "-f", action="store_true", help="keep printing new lines until the job ends"
    )
    logs.set_defaults(run=run_logs)


def _new_lines(log: JobLog, printed: int) -> list[str]:
    """The lines of ``log`` written after the first ``printed`` (those still kept)."""
    kept = log.text.split("\n") if log.text else []
    if log.dropped:
        kept = kept[1:]  # the truncation marker
    fresh = log.lines - printed
    return kept[-fresh:] if fresh > 0 else []


async def run_logs(args: argparse.Namespace) -> int:
    """Print the logs; with ``--follow``, go on until the job is done or dead."""
    async with App(args.db, replace=False, queues=[]) as app:
        if await app.job(args.id) is None:
            raise LookupError(f"unknown job id {args.id!r}")
        printed: dict[int, int] = {}
        while True:
            job = await app.job(args.id)
            # An ended run's last lines were stored with its outcome: this read has them all.
            ended = job is None or job.status in ("done", "dead")
            for log in await app.job_logs(args.id):
                if log.attempt not in printed:
                    print(f"--- attempt {log.attempt} ---", flush=True)
                    if log.dropped:
                        print(log.text.split("\n", 1)[0], flush=True)
                for line in _new_lines(log, printed.get(log.attempt, 0)):
                    print(line, flush=True)
                printed[log.attempt] = log.lines
            if not args.follow or ended:
                return 0
            await asyncio.sleep(FOLLOW_POLL_S)
