"""A `JobCtx` outside any worker, so a handler can be called directly in a cell or a test.

``JobCtx.for_testing()`` builds one. It behaves like a worker's ctx where that makes
sense without a worker: progress is kept on the ctx for the caller to check, the cancel
token is a real one (set it to see the handler stop), follow-up jobs are enqueued into
the App it was given (or refused with a message saying so), and rate limits use that
App's buckets (or grant every token when there is no App).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar, cast

from forge_nb.runtime.context import CancelToken, JobCtx, RateLimiter, progress_fraction
from forge_nb.runtime.ids import new_ulid

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.runtime.refs import JobRef
    from forge_nb.storage.base import Storage

T = TypeVar("T")

NO_APP = (
    "this JobCtx.for_testing() has no App to enqueue into: "
    "pass one, JobCtx.for_testing(app), to enqueue follow-up jobs for real"
)


@dataclass(slots=True)
class StandaloneJobCtx(JobCtx):
    """What ``JobCtx.for_testing`` returns: a `JobCtx` that records instead of reporting."""

    #: Every ``progress`` call, in order: (fraction clamped to [0, 1], message).
    progress_updates: list[tuple[float, str]] = field(default_factory=list)

    @classmethod
    def make(
        cls,
        app: App | None,
        *,
        kind: str,
        queue: str,
        attempt: int,
        job_id: str | None,
    ) -> StandaloneJobCtx:
        """A fresh ctx; bound to the running loop if there is one (for the ``*_sync`` twins)."""
        try:
            loop: asyncio.AbstractEventLoop | None = asyncio.get_running_loop()
        except RuntimeError:
            loop = None
        return cls(
            job_id=job_id or f"test-{new_ulid()}",
            kind=kind,
            queue=queue,
            attempt=attempt,
            process_id="test",
            host_id="test",
            cancel=CancelToken(),
            app=cast("App", app),
            loop=cast(asyncio.AbstractEventLoop, loop),
        )

    @property
    def last_progress(self) -> tuple[float, str] | None:
        """The latest ``progress`` call's (fraction, message), if any."""
        return self.progress_updates[-1] if self.progress_updates else None

    def progress_sync(self, fraction: float, message: str = "") -> None:
        """Record progress on the ctx (checked and clamped as a worker would)."""
        self.progress_updates.append((progress_fraction(fraction), str(message)))

    @property
    def rate_limit(self) -> RateLimiter:
        """The App's cluster-wide buckets, or a limiter that grants every token."""
        if self._rate_limit is None:
            app: App | None = self.app
            if app is None:
                self._rate_limit = UnlimitedRateLimiter()
            else:
                self._rate_limit = AppRateLimiter(app, self.cancel)
        return self._rate_limit

    async def enqueue(self, target: Any, *args: Any, **kwargs: Any) -> JobRef:
        """Enqueue a follow-up into the App given to ``for_testing`` (RuntimeError without)."""
        if self.app is None:
            raise RuntimeError(NO_APP)
        return await JobCtx.enqueue(self, target, *args, **kwargs)

    async def enqueue_many(self, requests: Any) -> list[JobRef]:
        """`enqueue` for many (RuntimeError without an App)."""
        if self.app is None:
            raise RuntimeError(NO_APP)
        return await JobCtx.enqueue_many(self, requests)

    def enqueue_sync(self, target: Any, *args: Any, **kwargs: Any) -> JobRef:
        """`enqueue` from a sync handler running in a thread."""
        return self._from_thread(self.enqueue(target, *args, **kwargs))

    def enqueue_many_sync(self, requests: Any) -> list[JobRef]:
        """`enqueue_many` from a sync handler running in a thread."""
        return self._from_thread(self.enqueue_many(requests))

    def acquire_sync(self, scope: str, n: float = 1, wait: bool = True) -> bool:
        """``rate_limit.acquire`` from a sync handler running in a thread."""
        return self._from_thread(self.rate_limit.acquire(scope, n, wait))

    def _from_thread(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the ctx's loop and wait, refusing where waiting would deadlock."""
        loop: asyncio.AbstractEventLoop | None = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            raise RuntimeError(
                "the *_sync methods need the event loop this ctx was made on: "
                "make it with JobCtx.for_testing() inside a running loop (a notebook cell)"
            )
        if getattr(loop, "_thread_id", None) == threading.get_ident():
            coro.close()
            raise RuntimeError(
                "a sync handler called on the loop's own thread would wait on itself: "
                "run it the way a worker does, await asyncio.to_thread(handler, ctx, ...)"
            )
        return asyncio.run_coroutine_threadsafe(coro, loop).result()


class UnlimitedRateLimiter(RateLimiter):
    """Grants every token at once and remembers drains: rate limits without a database."""

    def __init__(self) -> None:
        super().__init__(cast("Storage", None))
        #: scope → the ``retry_after`` of its last drain.
        self.drained: dict[str, float] = {}

    async def acquire(self, scope: str, n: float = 1, wait: bool = True) -> bool:
        """Always True (there is no shared budget to wait for)."""
        return True

    async def drain(self, scope: str, retry_after: float) -> None:
        """Record the drain (checked like a real one)."""
        if not retry_after >= 0 or retry_after == float("inf"):
            raise ValueError(f"retry_after must be a finite number >= 0, got {retry_after!r}")
        self.drained[scope] = float(retry_after)


class AppRateLimiter(RateLimiter):
    """The App's real buckets; the App's database is opened on first use."""

    def __init__(self, app: App, cancel: CancelToken) -> None:
        super().__init__(cast("Storage", None), cancel)
        self._app = app

    async def acquire(self, scope: str, n: float = 1, wait: bool = True) -> bool:
        """Take tokens from the App's bucket (see `RateLimiter.acquire`)."""
        self._storage = await self._app.storage()
        return await super().acquire(scope, n, wait)

    async def drain(self, scope: str, retry_after: float) -> None:
        """Empty the App's bucket (see `RateLimiter.drain`)."""
        self._storage = await self._app.storage()
        await super().drain(scope, retry_after)
