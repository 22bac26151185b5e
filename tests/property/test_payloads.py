"""Payloads: whatever JSON a user enqueues comes back exactly; anything else is a clear error.

Valid payloads (deep nesting, any Unicode, big and small numbers) round-trip
through the database unchanged; NaN/Infinity, non-JSON objects, lone
surrogates, payloads over `MAX_PAYLOAD_BYTES` and nesting too deep to encode
raise `PayloadError` (a ValueError) and store nothing.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import forge_nb as fnb
from forge_nb.storage.validation import MAX_PAYLOAD_BYTES

from .conftest import DB_SETTINGS, job_count

pytestmark = pytest.mark.slow

KIND = "probe"
#: Any Unicode scalar value (no lone surrogates: those are not valid text).
TEXT = st.text(st.characters(exclude_categories=["Cs"]), max_size=40)
SCALARS = (
    st.none()
    | st.booleans()
    | st.integers(min_value=-(2**63), max_value=2**63 - 1)
    | st.floats(allow_nan=False, allow_infinity=False)
    | TEXT
)
JSON_VALUES = st.recursive(
    SCALARS,
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(TEXT, inner, max_size=5),
    max_leaves=30,
)
PAYLOADS = st.dictionaries(TEXT, JSON_VALUES, max_size=6)


def nested(depth: int, leaf: Any = "bottom") -> dict[str, Any]:
    """``{"x": [[...[leaf]...]]}`` with ``depth`` lists."""
    value: Any = leaf
    for _ in range(depth):
        value = [value]
    return {"x": value}


def encoded_size(payload: dict[str, Any]) -> int:
    return len(json.dumps(payload, separators=(",", ":"), ensure_ascii=False).encode("utf-8"))


async def enqueue(app: fnb.App, payload: Any) -> fnb.JobRef:
    return await app.enqueue(fnb.EnqueueRequest(kind=KIND, payload=payload))


def same(a: Any, b: Any) -> bool:
    """Equal with types kept (1 is not 1.0 is not True) and -0.0 kept."""
    if isinstance(a, float) and isinstance(b, float):
        return a == b and math.copysign(1, a) == math.copysign(1, b)
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b)


@DB_SETTINGS
@given(payload=PAYLOADS)
@example(
    payload={"": None, "nul\x00key": "nul\x00value", "emoji": "🦄\u200d🌈", "rtl": "\u202eabc"}
)
@example(
    payload={"big": 2**63 - 1, "small": -(2**63), "tiny": 5e-324, "huge": 1.7976931348623157e308}
)
@example(payload={"neg_zero": -0.0, "float_int": 1.0, "sql": "'; DROP TABLE forge_nb_jobs; --"})
async def test_valid_payloads_round_trip_exactly(app: fnb.App, payload: dict[str, Any]) -> None:
    ref = await enqueue(app, payload)
    job = await app.job(ref.id)
    assert job is not None and same(job.payload, payload), (job and job.payload, payload)
    await app.delete(ref.id)


@DB_SETTINGS
@given(depth=st.integers(min_value=1, max_value=3000), leaf=st.sampled_from(["]", "[", "x", 1]))
@example(depth=98, leaf="[[[")  # brackets in strings do not count
@example(depth=99, leaf="]")  # the deepest accepted: 99 lists in the payload object
@example(depth=100, leaf="x")  # the shallowest refused
@example(depth=900, leaf="x")
@example(depth=1200, leaf="x")
async def test_deep_nesting_round_trips_up_to_the_cap_and_is_refused_beyond(
    request: pytest.FixtureRequest, app: fnb.App, depth: int, leaf: Any
) -> None:
    """The payload object plus ``depth`` lists: accepted exactly up to `MAX_JSON_DEPTH`."""
    from forge_nb.storage.validation import MAX_JSON_DEPTH

    before = await job_count(app)
    try:
        ref = await enqueue(app, nested(depth, leaf))
    except fnb.PayloadError as exc:
        assert depth + 1 > MAX_JSON_DEPTH
        assert "payload" in str(exc) and f"more than {MAX_JSON_DEPTH} levels" in str(exc)
        assert await job_count(app) == before
        return
    assert depth + 1 <= MAX_JSON_DEPTH
    job = await app.job(ref.id)
    assert job is not None and job.payload == nested(depth, leaf)
    await app.delete(ref.id)


BAD_LEAVES = st.sampled_from(
    [
        float("nan"),
        float("inf"),
        float("-inf"),
        object(),
        {1, 2},
        b"bytes",
        "lone \ud800 surrogate",
        "\udfff",
    ]
)


@DB_SETTINGS
@given(payload=PAYLOADS, bad=BAD_LEAVES, where=st.sampled_from(["top", "list", "dict"]))
async def test_non_json_values_anywhere_are_refused_and_nothing_is_stored(
    app: fnb.App, payload: dict[str, Any], bad: Any, where: str
) -> None:
    spoiled = dict(payload)
    spoiled["bad"] = {"top": bad, "list": [1, [bad]], "dict": {"k": {"k": bad}}}[where]
    before = await job_count(app)
    with pytest.raises(fnb.PayloadError, match="payload"):
        await enqueue(app, spoiled)
    # A batch with one bad job stores none of the good ones either.
    with pytest.raises(fnb.PayloadError, match="payload"):
        await app.enqueue_many(
            [fnb.EnqueueRequest(kind=KIND, payload=payload), fnb.EnqueueRequest(KIND, spoiled)]
        )
    assert await job_count(app) == before


@DB_SETTINGS
@given(
    char=st.sampled_from(["x", "é", "€", "🦄"]),
    slack=st.integers(min_value=-8, max_value=8),
)
@example(char="x", slack=0)
async def test_the_size_limit_is_exact_in_utf8_bytes(app: fnb.App, char: str, slack: int) -> None:
    width = len(char.encode("utf-8"))
    overhead = encoded_size({"blob": ""})
    payload = {"blob": char * ((MAX_PAYLOAD_BYTES - overhead) // width + slack)}
    size = encoded_size(payload)
    before = await job_count(app)
    if size <= MAX_PAYLOAD_BYTES:
        ref = await enqueue(app, payload)
        job = await app.job(ref.id)
        assert job is not None and job.payload == payload
        await app.delete(ref.id)
    else:
        with pytest.raises(fnb.PayloadError, match=str(MAX_PAYLOAD_BYTES)):
            await enqueue(app, payload)
        assert await job_count(app) == before


async def test_a_10_mb_string_is_refused_with_the_limit_in_the_message(app: fnb.App) -> None:
    before = await job_count(app)
    for payload in ({"blob": "x" * 10_000_000}, {"blob": ["é" * 1_000_000] * 5}):
        with pytest.raises(fnb.PayloadError, match=f"limit is {MAX_PAYLOAD_BYTES} bytes"):
            await enqueue(app, payload)
    assert await job_count(app) == before
