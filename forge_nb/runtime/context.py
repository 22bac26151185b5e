"""What a handler receives: `JobCtx`, its cancel token and the rate limiter."""

from __future__ import annotations

import asyncio
import math
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.runtime.refs import JobRef
    from forge_nb.runtime.testing import StandaloneJobCtx
    from forge_nb.storage.base import Storage

RATE_LIMIT_MAX_SLEEP_S = 1.0


class CancelToken:
    """Set when the job is cancelled; safe to check from the loop and from threads.

    A plain flag: reading and writing one attribute is atomic under the GIL, and a
    token is made for every run, so it stays as cheap as possible.
    """

    __slots__ = ("_cancelled",)

    def __init__(self) -> None:
        self._cancelled = False

    def is_cancelled(self) -> bool:
        """True once cancellation was requested."""
        return self._cancelled

    def set(self) -> None:
        """Request cancellation."""
        self._cancelled = True

    def __bool__(self) -> bool:
        return self.is_cancelled()


class RateLimiter:
    """Cluster-wide token buckets (``ctx.rate_limit`` / ``app.rate_limit``)."""

    def __init__(self, storage: Storage, cancel: CancelToken | None = None) -> None:
        self._storage = storage
        self._cancel = cancel

    async def acquire(self, scope: str, n: float = 1, wait: bool = True) -> bool:
        """Take ``n`` tokens, waiting (cancellably) until they are there; False if not ``wait``."""
        while True:
            delay = await self._storage.take_tokens(scope, n, time.time())
            if delay <= 0:
                return True
            if not wait:
                return False
            if self._cancel is not None and self._cancel.is_cancelled():
                raise asyncio.CancelledError(f"cancelled while waiting for rate limit {scope!r}")
            await asyncio.sleep(min(delay, RATE_LIMIT_MAX_SLEEP_S))

    async def drain(self, scope: str, retry_after: float) -> None:
        """Empty ``scope`` and hold it empty for ``retry_after`` seconds (an upstream 429)."""
        if not math.isfinite(retry_after) or retry_after < 0:
            raise ValueError(f"retry_after must be a finite number >= 0, got {retry_after!r}")
        now = time.time()
        await self._storage.drain_rate_limit(scope, now + retry_after, now)


def progress_fraction(fraction: float) -> float:
    """A reported progress clamped to [0, 1]; ValueError for what is not a finite number."""
    if not isinstance(fraction, int | float) or not math.isfinite(fraction):
        raise ValueError(f"progress must be a number in [0, 1], got {fraction!r}")
    return min(1.0, max(0.0, float(fraction)))


@dataclass(slots=True)
class JobCtx:
    """The context of one run (pinned attributes).

    Coroutine methods are for async handlers; sync handlers (run in a thread)
    use the ``*_sync`` twins, which hop onto the event loop and wait.
    """

    job_id: str
    kind: str
    queue: str
    attempt: int
    process_id: str
    host_id: str
    cancel: CancelToken
    app: App = field(repr=False)
    loop: asyncio.AbstractEventLoop = field(repr=False)
    _rate_limit: RateLimiter | None = field(default=None, repr=False)
    #: ``{dependency id: its result}`` for a job enqueued with ``depends_on`` (pinned, SPEC
    #: §9.2); read in one query before the run, and only for jobs that have dependencies.
    dependency_results: dict[str, Any] = field(default_factory=dict, repr=False)

    @classmethod
    def for_testing(
        cls,
        app: App | None = None,
        *,
        kind: str = "test",
        queue: str = "default",
        attempt: int = 1,
        job_id: str | None = None,
    ) -> StandaloneJobCtx:
        """A ctx for calling a handler directly, in a cell or a test: ``await score(ctx, 3)``.

        Progress is kept on the ctx (``ctx.progress_updates``), ``ctx.cancel.set()``
        cancels, follow-up jobs go to ``app`` (without one, enqueueing raises), and rate
        limits use ``app``'s buckets (without one, every token is granted).
        """
        from forge_nb.runtime.testing import StandaloneJobCtx

        return StandaloneJobCtx.make(app, kind=kind, queue=queue, attempt=attempt, job_id=job_id)

    @property
    def rate_limit(self) -> RateLimiter:
        """Cluster-wide token buckets: ``await ctx.rate_limit.acquire("slack")``."""
        if self._rate_limit is None:
            storage = self.app._storage
            if storage is None:
                raise RuntimeError("the app is closed")
            self._rate_limit = RateLimiter(storage, self.cancel)
        return self._rate_limit

    async def progress(self, fraction: float, message: str = "") -> None:
        """Report progress in [0, 1]; stored in batches, shown by widgets and the dashboard."""
        self.progress_sync(fraction, message)

    def progress_sync(self, fraction: float, message: str = "") -> None:
        """`progress` for sync handlers (just records it; no waiting)."""
        self.app._record_progress(self.job_id, progress_fraction(fraction), str(message))

    async def enqueue(self, target: Any, *args: Any, **kwargs: Any) -> JobRef:
        """Enqueue a follow-up: an `EnqueueRequest`, a job function, or a kind with kwargs."""
        from forge_nb.runtime.refs import EnqueueRequest

        if isinstance(target, EnqueueRequest):
            return await self.app.enqueue(target)
        if isinstance(target, str):
            return await self.app.enqueue(EnqueueRequest(kind=target, payload=dict(kwargs)))
        return await target.enqueue(*args, **kwargs)

    async def enqueue_many(self, requests: Any) -> list[JobRef]:
        """Enqueue many follow-ups in one transaction."""
        return await self.app.enqueue_many(list(requests))

    def enqueue_sync(self, target: Any, *args: Any, **kwargs: Any) -> JobRef:
        """`enqueue` from a sync handler's thread."""
        coro = self.enqueue(target, *args, **kwargs)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def enqueue_many_sync(self, requests: Any) -> list[JobRef]:
        """`enqueue_many` from a sync handler's thread."""
        coro = self.enqueue_many(requests)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()

    def acquire_sync(self, scope: str, n: float = 1, wait: bool = True) -> bool:
        """``rate_limit.acquire`` from a sync handler's thread."""
        coro = self.rate_limit.acquire(scope, n, wait)
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result()
