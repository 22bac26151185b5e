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
        self._prepared: dict[str, Any] = {}  # statements prepared on the kept connection

    @contextlib.asynccontextmanager
    async def connection(self, pool: Any) -> AsyncIterator[Any]:
        """The kept connection when free (acquired on first use), else a pooled one."""
        if self._busy or self._closing:
            async with pool.acquire() as conn:
                yield conn
            return
        self._busy = True
        try:
            await self._take(pool)
            try:
                yield self._conn
            except BaseException:
                await self._drop()  # the pool rolls back or replaces it
                raise
            await self._used()
        finally:
            self._busy = False

    async def fetchval(self, pool: Any, sql: str, *args: Any) -> Any:
        """One statement's first value: on the kept connection when free, as a statement
        prepared there once (asyncpg's by-text cache lookup and the context managers cost a
        fifth of an enqueue's client CPU), else on a pooled connection."""
        if self._busy or self._closing:
            async with pool.acquire() as conn:
                return await conn.fetchval(sql, *args)
        self._busy = True
        try:
            await self._take(pool)
            try:
                statement = self._prepared.get(sql)
                if statement is None:
                    statement = self._prepared[sql] = await self._conn.prepare(sql)
                value = await statement.fetchval(*args)
            except BaseException:
                await self._drop()  # the pool rolls back or replaces it
                raise
            await self._used()
            return value
        finally:
            self._busy = False

    async def _take(self, pool: Any) -> None:
        """Keep a connection of ``pool`` (acquired now when none is kept, or another pool's)."""
        if self._conn is None or self._pool is not pool:
            await self._drop()
            self._conn, self._pool, self._uses = await pool.acquire(), pool, 0

    async def _used(self) -> None:
        """One more statement on the kept connection: hand it back when due for renewal or
        when the lane is closing."""
        self._uses += 1
        if self._uses >= RENEW_AFTER or self._closing:
            await self._drop()

    async def _drop(self) -> None:
        self._prepared = {}
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
