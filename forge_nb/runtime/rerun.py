"""Safe re-runs: a new App on a database replaces this process's previous App on it.

Re-running the ``app = fnb.App()`` cell used to leave the first App running, with its
own workers and the old handlers: jobs ran under mixed versions and ``app.processes()``
showed two hosts. Now an App made in ``__main__`` (a notebook cell or a script; or any
App made with ``replace=True``) takes over from the last such App on the same database.
The constructor is sync and may run while the loop is busy with the cell, so the take-over
has two halves: the old App stops claiming at once, and its graceful shutdown (running
jobs get `REPLACE_GRACE_S` to finish, then go back to pending without spending an
attempt) runs as a task on its loop. The new App's ``start()`` waits for that task, so
one App's workers run at a time.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import sys
import weakref
from typing import TYPE_CHECKING

from forge_nb.config import parse_url

if TYPE_CHECKING:
    from forge_nb.runtime.app import App

#: Seconds the replaced App's running jobs get to finish before they are given back.
REPLACE_GRACE_S = 5.0

#: The latest replacing App per database (weak: an App nobody holds may go).
_latest: dict[str, weakref.ref[App]] = {}

#: What a take-over hands the new App to wait for (a task, or a future from another loop).
Closing = asyncio.Future[None] | concurrent.futures.Future[None]


def database_key(url: str) -> str:
    """One key per database: a SQLite file by its resolved path, Postgres by its URL."""
    parsed = parse_url(url)
    if parsed.path is not None:
        return f"sqlite:{parsed.path.expanduser().resolve()}"
    return parsed.url


def called_from_main(depth: int) -> bool:
    """Whether the code ``depth`` frames up runs in ``__main__`` (a notebook cell, a script)."""
    try:
        frame = sys._getframe(depth + 1)
    except ValueError:
        return False
    return frame.f_globals.get("__name__") == "__main__"


def take_over(app: App) -> Closing | None:
    """Make ``app`` the latest on its database; retire the previous one, if any.

    Returns what to wait for before ``app`` starts workers (None: nothing).
    """
    key = database_key(app.url)
    found = _latest.get(key)
    previous = found() if found is not None else None
    _latest[key] = weakref.ref(app)
    if previous is None or previous is app:
        return None
    return previous._retire(app)


async def wait_for(closing: Closing) -> None:
    """Wait until a retired App has closed (its errors were logged where it closed)."""
    if isinstance(closing, concurrent.futures.Future):
        await asyncio.wrap_future(closing)
    else:
        await asyncio.shield(closing)


def notice(safe_url: str, running: int, given_back: int) -> str:
    """The one line printed when a replaced App has closed."""
    if running == 0:
        return f"forge-nb: closed the previous App on {safe_url} (no running jobs)"
    finished = running - given_back
    jobs = "job" if running == 1 else "jobs"
    return (
        f"forge-nb: closed the previous App on {safe_url} "
        f"({running} running {jobs}: {given_back} given back to pending, {finished} finished)"
    )
