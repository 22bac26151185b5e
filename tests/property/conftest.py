"""Property-based tests (hypothesis) on both backends.

Hypothesis runs many examples inside one test call, so each test opens one
`App` on one fresh database (the ``db_url`` fixture) and every example reuses
it; examples only compare counts before and after, or clean up what they add.
Examples stay modest so the whole folder runs in well under a minute.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from hypothesis import HealthCheck, settings

import forge_nb as fnb

#: Settings for tests that touch the database: one database per test, shared by the examples
#: on purpose; no deadline (a Postgres round trip varies).
DB_SETTINGS = settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
#: Pure functions: more examples, still fast.
PURE_SETTINGS = settings(max_examples=300, deadline=None)


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    """An App on a fresh database (no workers: these tests check what gets stored)."""
    application = fnb.App(db_url)
    await application.storage()
    try:
        yield application
    finally:
        await application.close(timeout=2)


def known_bug(request: pytest.FixtureRequest, reason: str, backend: str | None = None) -> None:
    """Mark this run a strict xfail: a runtime bug reported to the lead (on one backend or all).

    Strict, so the test fails again (XPASS) the moment the runtime is fixed: then delete the call.
    """
    if backend is None or request.node.callspec.params.get("db_url") == backend:
        request.applymarker(pytest.mark.xfail(strict=True, reason=reason))


async def job_count(app: fnb.App) -> int:
    """Every job in the database, whatever its status."""
    return sum(sum(by_status.values()) for by_status in (await app.counts()).values())
