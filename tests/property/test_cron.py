"""Cron expressions: every well-formed one is accepted, garbage is a ValueError, nothing else.

`check_cron` is what `App.ensure_schedule` calls; a schedule with a rejected
expression is never stored, and an accepted one gets a next fire time.
"""

from __future__ import annotations

import time

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import forge_nb as fnb
from forge_nb.runtime.cron import check_cron, next_fire

from .conftest import DB_SETTINGS, PURE_SETTINGS

pytestmark = pytest.mark.slow

#: (low, high) of each field: seconds, minutes, hours, day of month, month, day of week.
RANGES = {
    "second": (0, 59),
    "minute": (0, 59),
    "hour": (0, 23),
    "day": (1, 28),  # 29-31 may never fire in some months: kept for the garbage side
    "month": (1, 12),
    "weekday": (0, 6),
}


@st.composite
def cron_field(draw: st.DrawFn, name: str) -> str:
    """One valid field: ``*``, ``*/n``, ``a``, ``a-b``, ``a-b/n`` or a list of those."""
    low, high = RANGES[name]

    def item() -> str:
        shape = draw(st.sampled_from(["star", "step", "value", "range", "range_step"]))
        if shape == "star":
            return "*"
        if shape == "step":
            return f"*/{draw(st.integers(1, high - low + 1))}"
        a = draw(st.integers(low, high))
        if shape == "value":
            return str(a)
        b = draw(st.integers(a, high))
        if shape == "range":
            return f"{a}-{b}"
        return f"{a}-{b}/{draw(st.integers(1, high - low + 1))}"

    return ",".join(item() for _ in range(draw(st.integers(1, 3))))


@st.composite
def valid_cron(draw: st.DrawFn) -> str:
    names = ["minute", "hour", "day", "month", "weekday"]
    if draw(st.booleans()):
        names = ["second", *names]
    sep = draw(st.sampled_from([" ", "  ", "\t"]))
    return sep.join(draw(cron_field(name)) for name in names)


CRON_TOKENS = st.sampled_from(
    ["*", "*/0", "*/-1", "61", "-1", "24", "32", "13", "0", "7", "8", "1-", "-5", "5-1",
     "L", "W", "#", "5#6", "?", "@hourly", "JAN", "MON", "foo", "1,,2", "/", "%", "'", ";",
     "\x00", "９", "1e3", "1.5", "", "𝟙"]
)  # fmt: skip
GARBAGE = (
    st.text(max_size=40)
    | st.lists(CRON_TOKENS, min_size=0, max_size=8).map(" ".join)
    | st.lists(st.text(max_size=4), min_size=5, max_size=6).map(" ".join)
)


@PURE_SETTINGS
@given(expression=valid_cron())
@example(expression="* * * * *")
@example(expression="*/15 0-23/2 1,15 * 1-5")
@example(expression="0 0 0 1 1 *")
def test_well_formed_expressions_are_accepted(expression: str) -> None:
    normal = check_cron(expression)
    assert normal == " ".join(expression.split())
    assert next_fire(normal, "UTC", time.time()) > time.time()


@PURE_SETTINGS
@given(expression=GARBAGE)
@example(expression="")
@example(expression="* * * *")
@example(expression="* * * * * * *")
@example(expression="61 * * * *")
@example(expression="*/0 * * * *")
@example(expression="0 0 31 2 *")
@example(expression="'; DROP TABLE forge_nb_schedules; --")
@example(expression="\x00 * * * *")
def test_anything_else_is_a_value_error_never_another_exception(expression: str) -> None:
    try:
        normal = check_cron(expression)
    except ValueError as exc:
        assert "cron" in str(exc)
        return
    # Accepted garbage must at least be usable: it has a next fire time.
    assert next_fire(normal, "UTC", time.time()) > time.time() - 1


@PURE_SETTINGS
@given(value=st.one_of(st.none(), st.integers(), st.floats(), st.binary(), st.lists(st.text())))
def test_non_strings_are_a_value_error(value: object) -> None:
    with pytest.raises(ValueError, match="cron"):
        check_cron(value)  # type: ignore[arg-type]


@DB_SETTINGS
@given(expression=valid_cron() | GARBAGE)
@example(expression="0 0 31 2 *")
async def test_ensure_schedule_stores_valid_schedules_only(app: fnb.App, expression: str) -> None:
    before = {s.name: s for s in await app.schedules()}
    try:
        check_cron(expression)
        valid = True
    except ValueError:
        valid = False
    name = f"s{len(before)}"
    if valid:
        stored = await app.ensure_schedule(name, expression, "probe")
        assert stored.next_fire_at is not None and stored.next_fire_at > time.time() - 1
        assert name in {s.name for s in await app.schedules()}
    else:
        with pytest.raises(ValueError, match="cron"):
            await app.ensure_schedule(name, expression, "probe")
        assert {s.name: s for s in await app.schedules()} == before
