"""Queue settings from arbitrary numbers: valid edits are stored, invalid ones change nothing.

`App.set_queue_config` is what the dashboard's live controls and the HTTP API
call. A rejected edit raises ValueError and leaves the stored config exactly
as it was (no partial update). Whatever is stored yields a backoff schedule
of finite delays in [0, max].
"""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import forge_nb as fnb
from forge_nb.runtime.outcomes import backoff_delay, throttle_delay

from .conftest import DB_SETTINGS

pytestmark = pytest.mark.slow

QUEUE = "q"
NUMBERS = (
    st.floats()  # NaN, ±inf, negatives, subnormals, huge
    | st.integers(min_value=-(2**70), max_value=2**70)
    | st.sampled_from([0, 0.0, -0.0, 1e-300, 5e-324, 1e308, 10_000, 10_001, True, False])
)
JUNK = st.sampled_from(["1", "", None, [1], {"a": 1}, b"1", "NaN"])
KNOBS = st.fixed_dictionaries(
    {},
    optional={
        "workers": NUMBERS | JUNK,
        "paused": st.booleans() | NUMBERS | JUNK,
        "backoff_enabled": st.booleans() | NUMBERS | JUNK,
        "backoff_base_seconds": NUMBERS | JUNK,
        "backoff_max_seconds": NUMBERS | JUNK,
        "backoff_jitter": st.booleans() | NUMBERS | JUNK,
        "retain_done_seconds": NUMBERS | JUNK,
        "retain_dead_seconds": NUMBERS | JUNK,
    },
)


def plainly_invalid(knobs: dict[str, Any]) -> str | None:
    """A reason any sane validator must refuse these knobs (None: not obviously bad)."""
    for key, value in knobs.items():
        if key in ("paused", "backoff_enabled", "backoff_jitter"):
            if not isinstance(value, bool):
                return f"{key} is not a bool"
        elif isinstance(value, bool) or not isinstance(value, int | float):
            return f"{key} is not a number"
        elif isinstance(value, int) and value != float(max(-(2**1000), min(value, 2**1000))):
            return f"{key} is an int no float holds exactly"
        elif not math.isfinite(value) or value < 0:
            return f"{key} is not a finite number >= 0"
        elif key == "workers" and (not isinstance(value, int) or value > 10_000):
            return "workers is not an int in 0..10000"
    if knobs.get("backoff_base_seconds") == 0:
        return "backoff base is 0"
    return None


@DB_SETTINGS
@given(knobs=KNOBS)
@example(knobs={"backoff_base_seconds": float("nan")})
@example(knobs={"backoff_max_seconds": float("inf")})
@example(knobs={"backoff_base_seconds": 10.0, "backoff_max_seconds": 1.0})
@example(knobs={"workers": -1})
@example(knobs={"workers": 2**63})
@example(knobs={"backoff_base_seconds": 5e-324, "backoff_max_seconds": 1e308})
@example(knobs={"workers": 3, "backoff_base_seconds": -1.0})
@example(knobs={"backoff_base_seconds": 2**53 + 1})  # a float column would store 2**53
@example(knobs={"retain_dead_seconds": 10**400})
@example(knobs={"workers": -(10**400)})
async def test_set_queue_config_stores_valid_edits_and_rejects_the_rest_whole(
    app: fnb.App, knobs: dict[str, Any]
) -> None:
    await app.ensure_queue(QUEUE)
    before = next(q for q in await app.queues() if q.name == QUEUE)
    reason = plainly_invalid(knobs)
    try:
        returned = await app.set_queue_config(QUEUE, **knobs)
    except ValueError as exc:
        assert str(exc), "a reason is given"
        after = next(q for q in await app.queues() if q.name == QUEUE)
        assert after == before, "a rejected edit changed nothing"
        return
    assert reason is None, f"accepted although {reason}: {knobs}"
    after = next(q for q in await app.queues() if q.name == QUEUE)
    assert after == returned
    for key, value in knobs.items():
        assert getattr(after, key) == value, (key, getattr(after, key), value)
    assert after.backoff_base_seconds > 0
    assert after.backoff_max_seconds >= after.backoff_base_seconds
    for attempt in (1, 2, 10, 64, 1000):
        delay = backoff_delay(after, attempt)
        assert math.isfinite(delay) and 0 <= delay <= after.backoff_max_seconds
        assert math.isfinite(throttle_delay(after, attempt, 1.0))


@DB_SETTINGS
@given(
    base=st.floats(min_value=1e-3, max_value=1e5),
    factor=st.floats(min_value=1.0, max_value=1e3),
    workers=st.integers(0, 10_000),
)
async def test_sane_settings_are_always_accepted(
    app: fnb.App, base: float, factor: float, workers: int
) -> None:
    await app.ensure_queue(QUEUE)
    stored = await app.set_queue_config(
        QUEUE,
        workers=workers,
        backoff_base_seconds=base,
        backoff_max_seconds=base * factor,
        backoff_jitter=False,
    )
    assert (stored.workers, stored.backoff_base_seconds) == (workers, base)
    assert backoff_delay(stored, 1) == base
    assert backoff_delay(stored, 200) == stored.backoff_max_seconds


async def test_an_unknown_queue_is_a_value_error_and_is_not_created(app: fnb.App) -> None:
    with pytest.raises(ValueError, match="unknown queue"):
        await app.set_queue_config("nope", workers=1)
    assert "nope" not in {q.name for q in await app.queues()}
