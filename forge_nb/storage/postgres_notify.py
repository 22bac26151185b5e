"""LISTEN/NOTIFY between Postgres processes: enqueues wake other processes' workers."""

from __future__ import annotations

import asyncio
import logging
import math
from collections.abc import Awaitable, Callable

log = logging.getLogger("forge_nb.storage")
#: Least time between two NOTIFYs from one process; enqueues in between share the next one.
NOTIFY_GAP_S = 0.002
#: How long past its gap a deferred NOTIFY waits for an enqueue that is due to carry it in
#: its own statement (`Notifier.take_inline`): a steady stream sends none of its own.
NOTIFY_GRACE_S = 0.002
CONNECT_TIMEOUT_S = 10.0


class Notifier:
    """Sends NOTIFYs for committed enqueues: at once, then at most one per `NOTIFY_GAP_S`.

    NOTIFY inside the enqueue's transaction would take Postgres's global notification
    lock at commit, making concurrent enqueues commit one by one. Here only these small
    statements queue: names that arrive while one is in flight, or within `NOTIFY_GAP_S`
    of the last, go out together when the gap is over. A NOTIFY per enqueue was a third
    of the CPU an awaited one-job enqueue cost (client and server); the first enqueue
    after a quiet spell still wakes other processes at once, from inside its own statement
    (`take_inline`). A lost notification costs latency only: workers also poll.
    """

    def __init__(self, send: Callable[[list[str]], Awaitable[None]]) -> None:
        self._send = send
        self._pending: set[str] = set()
        self._task: asyncio.Task[None] | None = None
        self._last_sent = -math.inf  # loop time

    def send(self, queues: set[str]) -> None:
        """Notify these queues soon (at once when none went out in the last gap)."""
        self._pending |= queues
        if self._task is None or self._task.done():
            self._task = asyncio.get_running_loop().create_task(self._run())

    def take_inline(self, queues: set[str]) -> list[str]:
        """The queues an enqueue about to run should NOTIFY inside its own statement (at its
        commit, saving a round trip): its own and those waiting for the gap, when no NOTIFY
        went out within the gap; else ``[]`` (then `send` its queues once committed).

        NOTIFY at commit takes Postgres's notification lock, so such commits serialise; the
        gap keeps that to one commit per `NOTIFY_GAP_S` per process, as the separate
        statements were. If the enqueue fails, `send` what this returned.
        """
        now = asyncio.get_running_loop().time()
        if now < self._last_sent + NOTIFY_GAP_S:
            return []
        self._last_sent = now
        taken, self._pending = sorted(self._pending | queues), set()
        return taken

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while self._pending:
            wait = self._last_sent + NOTIFY_GAP_S - loop.time()
            if wait > 0:
                await asyncio.sleep(wait + NOTIFY_GRACE_S)
                continue  # an enqueue may have taken them (or sent) meanwhile: look again
            queues, self._pending = sorted(self._pending), set()
            self._last_sent = loop.time()
            try:
                await self._send(queues)
            except Exception as exc:  # the database may be down: workers poll anyway
                log.debug("could not notify %s: %s", queues, exc)
                return

    async def flush(self) -> None:
        """Wait for notifications still being sent (before the pool closes)."""
        if self._task is not None and not self._task.done():
            await asyncio.wait([self._task], timeout=CONNECT_TIMEOUT_S)
