"""Errors say what happened: the stored error names each exception's type, and a job
argument JSON cannot hold is either a number in disguise (numpy) or refused with a hint."""

from __future__ import annotations

import datetime
import subprocess
import sys
from collections.abc import AsyncIterator

import numpy as np
import pandas as pd
import pytest

import forge_nb as fnb
from forge_nb.runtime.outcomes import error_chain
from forge_nb.storage.validation import encode_payload

FAST = {"heartbeat_interval": 0.2, "poll_interval": 0.1, "tick_interval": 0.1}


@pytest.fixture
async def app(db_url: str) -> AsyncIterator[fnb.App]:
    application = fnb.App(db_url, **FAST)
    try:
        yield application
    finally:
        await application.close(timeout=2)


async def dead_job(app: fnb.App, fn: fnb.JobFunction, *args: object) -> fnb.JobRecord:
    ref = await fn.enqueue(*args)
    with pytest.raises(fnb.JobDead) as info:
        await ref.wait(15)
    job: fnb.JobRecord = info.value.job
    return job


async def test_the_stored_error_names_each_exception_type(app: fnb.App) -> None:
    @app.job(kind="lookup", max_attempts=1)
    def lookup(ctx: fnb.JobCtx) -> int:
        frame = pd.DataFrame({"present": [1, 2]})
        return int(frame["missing"].sum())  # pandas raises KeyError('missing')

    @app.job(kind="ratio", max_attempts=1)
    async def ratio(ctx: fnb.JobCtx, n: int) -> float:
        return n / 0

    @app.job(kind="load", max_attempts=1)
    async def load(ctx: fnb.JobCtx) -> None:
        try:
            {}["config"]
        except KeyError as exc:
            raise RuntimeError("could not load settings") from exc

    await app.start()
    job = await dead_job(app, lookup)
    assert job.last_error == "KeyError: 'missing'"
    assert "Traceback (most recent call last)" in job.last_traceback
    assert "KeyError: 'missing'" in job.last_traceback
    assert (await dead_job(app, ratio, 3)).last_error == "ZeroDivisionError: division by zero"
    chained = await dead_job(app, load)
    assert chained.last_error == "RuntimeError: could not load settings: KeyError: 'config'"


def test_error_chain_links() -> None:
    assert error_chain(KeyError("missing")) == "KeyError: 'missing'"
    assert error_chain(ValueError()) == "ValueError"
    assert error_chain(fnb.Dead("bad input")) == "bad input"  # the user's own reason
    try:
        try:
            raise TimeoutError
        except TimeoutError as exc:
            raise TimeoutError("timed out after 2 s") from exc
    except TimeoutError as top:
        assert error_chain(top) == "TimeoutError: timed out after 2 s"

    class Unprintable(Exception):
        def __str__(self) -> str:
            raise RuntimeError("no")

    assert error_chain(Unprintable()) == "Unprintable: <unprintable message>"


async def test_numpy_scalars_are_stored_as_python_numbers(app: fnb.App) -> None:
    seen: list[tuple[object, ...]] = []

    @app.job(kind="score")
    async def score(ctx: fnb.JobCtx, n: int, x: float, flag: bool, zero_d: int) -> float:
        seen.append((n, x, flag, zero_d))
        return x * n

    frame = pd.DataFrame({"n": [1, 2, 3]})
    ref = await score.enqueue(frame["n"].max(), np.float32(0.5), np.bool_(True), np.array(7))
    job = await app.job(ref.id)
    assert job.payload == {"n": 3, "x": 0.5, "flag": True, "zero_d": 7}
    assert [type(v) for v in job.payload.values()] == [int, float, bool, int]
    await app.start()
    assert await ref.wait(15) == 1.5
    assert seen == [(3, 0.5, True, 7)] and type(seen[0][0]) is int

    with pytest.raises(ValueError, match="not JSON"):  # NaN is refused as for a float
        await score.enqueue(1, np.float32("nan"), True, 0)


@pytest.mark.parametrize(
    ("value", "hint"),
    [
        (pd.DataFrame({"a": [1]}), ".to_dict()"),
        (pd.Series([1, 2]), "pass the path"),
        (np.array([1, 2, 3]), ".tolist()"),
        (np.datetime64("2024-01-01"), "str()"),
        (datetime.datetime(2024, 1, 1), "isoformat()"),
        (b"raw", "decode"),
        ({1, 2}, "list(value)"),
        (object(), ".tolist() / str()"),
    ],
    ids=lambda v: type(v).__name__,
)
async def test_other_values_are_refused_with_a_hint(app: fnb.App, value: object, hint: str) -> None:
    @app.job(kind="take")
    async def take(ctx: fnb.JobCtx, data: object) -> None:
        return None

    with pytest.raises(fnb.PayloadError) as info:
        await take.enqueue(value)
    message = str(info.value)
    assert f"type {type(value).__name__} is not JSON serializable" in message
    assert hint in message, message
    assert await app.jobs() == []


def test_numpy_is_never_imported_to_encode() -> None:
    code = (
        "import sys\n"
        "from forge_nb.storage.validation import encode_payload\n"
        "try:\n"
        "    encode_payload({'a': object()})\n"
        "except ValueError as exc:\n"
        "    print(exc)\n"
        "print('numpy' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    lines = out.stdout.strip().splitlines()
    assert "not JSON serializable" in lines[0] and lines[-1] == "False", out


def test_encode_payload_converts_numpy_numbers() -> None:
    assert encode_payload({"n": np.int64(2), "u": np.uint8(255), "b": np.bool_(False)}) == (
        '{"n":2,"u":255,"b":false}'
    )
