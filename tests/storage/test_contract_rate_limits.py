"""Storage contract, run unchanged on SQLite and Postgres: token buckets."""

from __future__ import annotations

import pytest

from forge_nb.errors import UnknownRateLimit
from forge_nb.storage import Storage
from tests.storage.contract_support import (
    NOW,
)

# -- rate limits -----------------------------------------------------------------------------------


async def test_a_bucket_starts_full_and_empties(storage: Storage) -> None:
    bucket = await storage.ensure_rate_limit("api", capacity=3, refill_per_second=0.5, now=NOW)
    assert (bucket.scope, bucket.capacity, bucket.refill_per_second, bucket.tokens) == (
        "api",
        3.0,
        0.5,
        3.0,
    )
    for _ in range(3):
        assert await storage.take_tokens("api", 1, NOW) == 0.0
    assert await storage.take_tokens("api", 1, NOW) == pytest.approx(2.0, rel=0.05)
    assert await storage.take_tokens("api", 2, NOW) == pytest.approx(4.0, rel=0.05)


async def test_a_bucket_refills_over_time_up_to_its_capacity(storage: Storage) -> None:
    await storage.ensure_rate_limit("api", capacity=2, refill_per_second=1, now=NOW)
    assert await storage.take_tokens("api", 2, NOW) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 0.5) == pytest.approx(0.5, rel=0.05)
    assert await storage.take_tokens("api", 1, NOW + 1) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 1) == pytest.approx(1.0, rel=0.05)
    assert await storage.take_tokens("api", 2, NOW + 1000) == 0.0
    assert await storage.take_tokens("api", 1, NOW + 1000) > 0, "never more than capacity"


async def test_drain_holds_the_bucket_empty_until_hold_until(storage: Storage) -> None:
    await storage.ensure_rate_limit("slack", capacity=5, refill_per_second=10, now=NOW)
    await storage.drain_rate_limit("slack", hold_until=NOW + 30, now=NOW)
    wait = await storage.take_tokens("slack", 1, NOW + 1)
    assert 0 < wait <= 30
    assert await storage.take_tokens("slack", 1, NOW + 29.5) > 0
    assert await storage.take_tokens("slack", 1, NOW + 31) == 0.0


async def test_taking_from_an_unknown_scope(storage: Storage) -> None:
    with pytest.raises(UnknownRateLimit, match="nope"):
        await storage.take_tokens("nope", 1, NOW)
    assert issubclass(UnknownRateLimit, ValueError)


async def test_ensure_rate_limit_updates_an_existing_bucket(storage: Storage) -> None:
    await storage.ensure_rate_limit("api", capacity=3, refill_per_second=1, now=NOW)
    await storage.ensure_rate_limit("other", capacity=1, refill_per_second=1, now=NOW)
    updated = await storage.ensure_rate_limit("api", capacity=10, refill_per_second=2, now=NOW + 1)
    assert (updated.capacity, updated.refill_per_second) == (10.0, 2.0)
    buckets = await storage.rate_limits()
    assert [(b.scope, b.capacity, b.refill_per_second) for b in buckets] == [
        ("api", 10.0, 2.0),
        ("other", 1.0, 1.0),
    ]


@pytest.mark.parametrize(("capacity", "refill"), [(0, 1), (-1, 1), (1, -1), (float("nan"), 1)])
async def test_ensure_rate_limit_rejects_bad_numbers(
    storage: Storage, capacity: float, refill: float
) -> None:
    with pytest.raises(ValueError):
        await storage.ensure_rate_limit("api", capacity=capacity, refill_per_second=refill, now=NOW)
    assert await storage.rate_limits() == []
