"""SQLite transactions that never say "database is locked": immediate write
transactions retried with short pauses, and the WAL checkpointer thread."""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

from forge_nb.storage.sqlite_statements import BUSY_TIMEOUT_S

log = logging.getLogger("forge_nb.storage")
T = TypeVar("T")
#: Shortest pause between two WAL checkpoints while writes keep coming.
CHECKPOINT_PAUSE_S = 0.05
#: WAL length (pages) past which the writer waits for a checkpoint that restarts the WAL:
#: a non-stop burst of writes never leaves a gap for a PASSIVE checkpoint to catch up in.
WAL_RESTART_PAGES = 2000


class Busy(Exception):
    """Another process holds the write lock (raised only by the non-waiting attempt)."""


def transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Run ``fn(conn, *args)`` inside BEGIN IMMEDIATE … COMMIT, waiting for the lock."""
    conn.execute(f"PRAGMA busy_timeout = {int(BUSY_TIMEOUT_S * 1000)}")
    try:
        return run_transaction(conn, fn, *args)
    finally:
        conn.execute("PRAGMA busy_timeout = 0")


def try_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    """Like `transaction` but raise `Busy` at once if the write lock is taken."""
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc) or "busy" in str(exc):
            raise Busy from exc
        raise
    return finish_transaction(conn, fn, *args)


def run_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    conn.execute("BEGIN IMMEDIATE")
    return finish_transaction(conn, fn, *args)


def finish_transaction(conn: sqlite3.Connection, fn: Callable[..., T], *args: Any) -> T:
    try:
        result = fn(conn, *args)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
    return result


class Checkpointer:
    """Copies the WAL back into the database file on its own thread and connection.

    SQLite's automatic checkpoint runs inside the commit that fills the WAL, and the writer
    commits on the event loop: every hundred or so commits one stalled the loop (and every
    job in it) for milliseconds of fsync. Here writes only nudge this thread, which runs
    PASSIVE checkpoints (they block neither writers nor readers) at most every
    `CHECKPOINT_PAUSE_S`, even while the loop is busy with a long burst of writes. When a
    burst has left the WAL longer than `restart_pages` it raises `restart_needed`, and
    the writer's next write first awaits a RESTART checkpoint (without blocking the loop).
    """

    def __init__(self, path: Path) -> None:
        self._path = path
        self._nudged = threading.Event()
        self._stopping = False
        self.restart_needed = False
        self.restart_pages = WAL_RESTART_PAGES
        self._thread = threading.Thread(target=self._run, name="forge-nb checkpoint", daemon=True)
        self._thread.start()

    def nudge(self) -> None:
        """Something was written: checkpoint soon."""
        self._nudged.set()

    def restarted(self, finished: bool) -> None:
        """The writer ran the RESTART asked for; if it could not finish, wait for twice the WAL."""
        self.restart_needed = False
        self.restart_pages = WAL_RESTART_PAGES if finished else self.restart_pages * 2

    def stop(self) -> None:
        """End the thread (blocking: call it off the event loop)."""
        self._stopping = True
        self._nudged.set()
        self._thread.join(timeout=BUSY_TIMEOUT_S)

    def _run(self) -> None:
        connect = sqlite3.connect(self._path, timeout=1.0, check_same_thread=False)
        with contextlib.closing(connect) as conn:
            while True:
                self._nudged.wait()
                if self._stopping:
                    return
                self._nudged.clear()
                try:
                    _, wal_pages, _ = conn.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchone()
                    self.restart_needed = wal_pages > self.restart_pages
                except sqlite3.Error as exc:  # busy (another checkpointer), or a closing file
                    log.debug("WAL checkpoint of %s skipped: %s", self._path, exc)
                time.sleep(CHECKPOINT_PAUSE_S)
