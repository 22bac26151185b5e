"""Demo jobs for ``forge-nb demo``: a small, realistic workload that exercises every view.

- ``demo.fetch_prices`` fetches numbers and chains a ``demo.summarise`` follow-up;
- ``demo.resize_image`` is a sync (threaded) job, sometimes scheduled for later;
- ``demo.flaky_api`` fails about half its runs with a chained error, so it retries with
  backoff and now and then ends dead;
- ``demo.crunch`` is slow and reports progress;
- ``demo.send_email`` shares a cluster-wide rate limit and throws ``Throttled`` when it is dry;
- ``demo-report`` is a cron schedule firing every 30 seconds.

`produce` keeps a trickle of new jobs coming so the charts move.
"""

from __future__ import annotations

import asyncio
import random
import statistics
import time
from typing import Any

from forge_nb.config import data_dir
from forge_nb.runtime.app import App
from forge_nb.runtime.context import JobCtx
from forge_nb.runtime.outcomes import Throttled
from forge_nb.runtime.refs import EnqueueRequest

SYMBOLS = ("ACME", "GLOBEX", "INITECH", "UMBRELLA", "HOOLI", "STARK", "WAYNE")
IMAGES = ("cat.jpg", "harbour.png", "invoice-0042.pdf", "team-photo.jpg", "chart.svg")
EMAIL_SCOPE = "demo.email"


def demo_url() -> str:
    """``<data dir>/demo.db``: its own file, so the demo never touches your jobs."""
    folder = data_dir()
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{(folder / 'demo.db').resolve()}"


def demo_app(url: str | None = None) -> App:
    """An `App` on ``url`` (default `demo_url`) with the demo jobs registered."""
    app = App(url or demo_url(), heartbeat_interval=2.0)
    register(app)
    return app


def register(app: App) -> None:
    """Register the demo job kinds on ``app``."""

    @app.job(kind="demo.fetch_prices", queue="default", max_attempts=3)
    async def fetch_prices(ctx: JobCtx, symbol: str, days: int = 30) -> dict[str, Any]:
        """Pretend to call a market-data API, then ask for a summary."""
        await asyncio.sleep(random.uniform(0.05, 0.4))
        price = random.uniform(20, 400)
        prices = []
        for _ in range(days):
            price *= random.uniform(0.97, 1.03)
            prices.append(round(price, 2))
        await ctx.enqueue(
            EnqueueRequest(kind="demo.summarise", payload={"symbol": symbol, "prices": prices})
        )
        return {"symbol": symbol, "days": days, "last": prices[-1]}

    @app.job(kind="demo.summarise", queue="default")
    async def summarise(ctx: JobCtx, symbol: str, prices: list[float]) -> dict[str, Any]:
        """Summary statistics of a price series."""
        await asyncio.sleep(random.uniform(0.01, 0.1))
        return {
            "symbol": symbol,
            "mean": round(statistics.fmean(prices), 2),
            "min": min(prices),
            "max": max(prices),
            "change_pct": round((prices[-1] / prices[0] - 1) * 100, 2),
        }

    @app.job(kind="demo.resize_image", queue="images", concurrency=2)
    def resize_image(ctx: JobCtx, path: str, width: int) -> dict[str, Any]:
        """CPU-ish work in a thread (a sync function never blocks the loop)."""
        time.sleep(random.uniform(0.2, 0.9))
        height = int(width * random.choice((0.5625, 0.75, 1.0)))
        return {"path": path, "thumbnail": f"thumbs/{width}x{height}/{path}"}

    @app.job(kind="demo.flaky_api", queue="default", max_attempts=4)
    async def flaky_api(ctx: JobCtx, endpoint: str) -> dict[str, Any]:
        """Fails about half the time; the error chain and traceback show in the inspector."""
        await asyncio.sleep(random.uniform(0.05, 0.3))
        if random.random() < 0.5:
            try:
                raise TimeoutError(f"no answer from {endpoint} within 0.3 s")
            except TimeoutError as exc:
                raise ConnectionError(f"upstream {endpoint} unavailable") from exc
        return {"endpoint": endpoint, "status": 200}

    @app.job(kind="demo.crunch", queue="reports", concurrency=1)
    async def crunch(ctx: JobCtx, rows: int) -> dict[str, Any]:
        """A slow job that reports progress."""
        steps = 10
        for step in range(1, steps + 1):
            if ctx.cancel.is_cancelled():
                break
            await asyncio.sleep(random.uniform(0.3, 0.8))
            await ctx.progress(step / steps, f"{rows * step // steps:,} of {rows:,} rows")
        return {"rows": rows, "checksum": random.getrandbits(32)}

    @app.job(kind="demo.send_email", queue="email")
    async def send_email(ctx: JobCtx, to: str, subject: str) -> dict[str, Any]:
        """Shares a rate limit with every process; throttles (no attempt spent) when dry."""
        if not await ctx.rate_limit.acquire(EMAIL_SCOPE, wait=False):
            raise Throttled(retry_after=2.0)
        await asyncio.sleep(random.uniform(0.05, 0.2))
        return {"to": to, "subject": subject, "message_id": f"<{random.getrandbits(48):x}@demo>"}

    @app.job(kind="demo.report", queue="reports")
    async def report(ctx: JobCtx) -> dict[str, Any]:
        """The cron job: a summary of the queues."""
        counts = await ctx.app.counts()
        return {
            "generated_at": time.time(),
            "dead": {queue: c.get("dead", 0) for queue, c in counts.items()},
        }


async def prepare(app: App) -> None:
    """Queues with quick backoff (so retries are visible), the email rate limit, the cron."""
    await app.ensure_queue("default", workers=4, backoff_base_seconds=1.0, backoff_max_seconds=15.0)
    await app.ensure_queue("images", workers=2)
    await app.ensure_queue("reports", workers=1)
    await app.ensure_queue("email", workers=2, backoff_base_seconds=1.0, backoff_max_seconds=10.0)
    await app.ensure_rate_limit(EMAIL_SCOPE, capacity=3, refill_per_second=0.5)
    await app.ensure_schedule("demo-report", "*/30 * * * * *", "demo.report", queue="reports")


def next_request(rng: random.Random) -> EnqueueRequest:
    """One random demo job."""
    roll = rng.random()
    if roll < 0.35:
        return EnqueueRequest(
            kind="demo.fetch_prices",
            payload={"symbol": rng.choice(SYMBOLS), "days": rng.randint(5, 60)},
        )
    if roll < 0.55:
        delay = rng.uniform(30, 180) if rng.random() < 0.25 else None
        return EnqueueRequest(
            kind="demo.resize_image",
            payload={"path": rng.choice(IMAGES), "width": rng.choice((160, 320, 640))},
            delay=delay,
        )
    if roll < 0.75:
        return EnqueueRequest(
            kind="demo.flaky_api",
            payload={"endpoint": rng.choice(("/v1/orders", "/v1/users", "/v2/invoices"))},
        )
    if roll < 0.95:
        return EnqueueRequest(
            kind="demo.send_email",
            payload={
                "to": f"user{rng.randint(1, 999)}@example.org",
                "subject": rng.choice(("Welcome!", "Your invoice", "Password reset")),
            },
        )
    return EnqueueRequest(kind="demo.crunch", payload={"rows": rng.choice((10_000, 250_000))})


async def produce(app: App, rate: float = 2.0, seed: int | None = None) -> None:
    """Enqueue about ``rate`` jobs per second until cancelled."""
    rng = random.Random(seed)
    interval = 1.0 / max(rate, 0.01)
    while True:
        await app.enqueue(next_request(rng))
        await asyncio.sleep(rng.uniform(0.5, 1.5) * interval)
