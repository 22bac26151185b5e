"""A pooled Postgres connection kept acquired for one-at-a-time enqueues.

asyncpg's ``pool.acquire()`` / release cost about as much client CPU as the enqueue's
own statement (the release runs as a shielded task: one more loop turn), and an awaited
one-job enqueue is all round trip. The lane keeps one pool connection out of the pool and
lends it to one caller at a time; a caller that finds it busy uses the pool as before, so
concurrent enqueues never queue behind each other. On any error the connection goes back
to the pool (which rolls back, or replaces a broken one) and the next caller acquires anew.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from typing import Any

#: Statements after which the kept connection is handed back to the pool and taken again,
#: so the pool's own hygiene (``max_queries``, expiry) still reaches it.
RENEW_AFTER = 10_000


class Lane:
    """One pool connection lent to one caller at a time (others use the pool)."""

    def __init__(self) -> None:
        self._conn: Any = None
        self._pool: Any = None
        self._busy = False
        self._uses = 0
        self._closing = False

    @contextlib.asynccontextmanager
    async def connection(self, pool: Any) -> AsyncIterator[Any]:
        """The kept connection when free (acquired on first use), else a pooled one."""
        if self._busy or self._closing:
            async with pool.acquire() as conn:
                yield conn
            return
        self._busy = True
        try:
            if self._conn is None or self._pool is not pool:
                await self._drop()
                self._conn, self._pool, self._uses = await pool.acquire(), pool, 0
            try:
                yield self._conn
            except BaseException:
                await self._drop()  # the pool rolls back or replaces it
                raise
            self._uses += 1
            if self._uses >= RENEW_AFTER or self._closing:
                await self._drop()
        finally:
            self._busy = False

    async def _drop(self) -> None:
        conn, pool, self._conn, self._pool = self._conn, self._pool, None, None
        if conn is not None:
            with contextlib.suppress(Exception):
                await pool.release(conn)

    async def close(self) -> None:
        """Give the connection back (before the pool closes: it waits for every one); a
        caller using it now gives it back when done."""
        self._closing = True
        if not self._busy:
            await self._drop()

    def reopen(self) -> None:
        """Keep a connection again (the storage opened a new pool)."""
        self._closing = False
