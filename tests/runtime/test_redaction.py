"""``@app.job(redact=[...])``: masked in everything the App hands out, still stored and run
with the real values; seen from another process's App (a dashboard has no handlers)."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import forge_nb as fnb
from forge_nb.runtime.redaction import MASK, mask, scrub, secrets_in


async def test_views_mask_redacted_fields_and_the_job_sees_them(db_url: str) -> None:
    seen: list[dict[str, object]] = []
    async with fnb.App(db_url, replace=False) as app:

        @app.job(kind="login", redact=["password", "token"])
        async def login(ctx: fnb.JobCtx, user: str, password: str, extra: dict) -> str:
            seen.append({"password": password, "extra": extra})
            return "ok"

        ref = await login.enqueue("ann", "hunter22", {"token": "tok-123", "keep": 1})
        job = await app.job(ref.id)
        assert job is not None
        assert job.payload == {"user": "ann", "password": MASK, "extra": {"token": MASK, "keep": 1}}
        assert [j.payload["password"] for j in await app.jobs(kind="login")] == [MASK]
        page = await app.jobs_page(kind="login")
        assert page.jobs[0].payload["extra"]["token"] == MASK
        assert await app.drain() == {
            "done": 1,
            "failed": 0,
            "dead": 0,
            "throttled": 0,
            "cancelled": 0,
        }
        assert seen == [{"password": "hunter22", "extra": {"token": "tok-123", "keep": 1}}]
        # Stored as given: the storage below the App has the real values.
        raw = await (await app.storage()).get_job(ref.id)
        assert raw is not None and raw.payload["password"] == "hunter22"

        # A search cannot find a job by a masked value (that would reveal it), only by
        # what it shows.
        assert await app.jobs(search="hunter22") == []
        assert await app.jobs(search="TOK-123") == []
        assert [j.id for j in await app.jobs(search='"ANN"')] == [ref.id]

    async with fnb.App(db_url, replace=False, queues=[]) as viewer:  # no handler here
        job = await viewer.job(ref.id)
        assert job is not None and job.payload["password"] == MASK
        assert (await viewer.redactions())["login"] == ("password", "token")

    env = {**os.environ, "PYTHONPATH": os.getcwd()}
    out = subprocess.run(
        [sys.executable, "-m", "forge_nb.cli", "jobs", "--db", db_url, "--json"],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stdout
    [listed] = json.loads(out)
    assert listed["payload"]["password"] == MASK and "hunter22" not in out


async def test_filter_wide_actions_do_not_match_masked_values(db_url: str) -> None:
    """Retry-all and delete-all matching with a payload search count and change only
    the jobs the masked list shows: a count of 1 for a secret would reveal it."""
    async with fnb.App(db_url, replace=False) as app:

        @app.job(kind="login", redact=["password"], max_attempts=1)
        async def login(ctx: fnb.JobCtx, user: str, password: str) -> None:
            raise RuntimeError("no")

        @app.job(kind="plain", max_attempts=1)
        async def plain(ctx: fnb.JobCtx, note: str) -> None:
            raise RuntimeError("no")

        secret = await login.enqueue("ann", "hunter22")
        shown = await login.enqueue("hunter22-fan", "x")
        other = await plain.enqueue("hunter22")
        await app.drain()
        assert {j.status for j in await app.jobs(status="dead")} == {"dead"}

        # Both the masked match and the unredacted kind go; the masked value matches nothing.
        assert await app.retry_all("dead", search="hunter22") == 2
        assert (await app.job(secret.id)).status == "dead"  # type: ignore[union-attr]
        for ref in (shown, other):
            assert (await app.job(ref.id)).status == "pending"  # type: ignore[union-attr]
        assert await app.delete_all(search="hunter22") == 2
        assert await app.job(secret.id) is not None
        assert await app.job(shown.id) is None and await app.job(other.id) is None
        # A kind that redacts nothing keeps the storage's one-statement path.
        assert await app.delete_all(kind="plain", search="anything") == 0


def test_masking_helpers() -> None:
    assert mask([{"a": 1, "pw": 2}, 3], {"pw"}) == [{"a": 1, "pw": MASK}, 3]
    assert secrets_in({"pw": "s3cret", "n": {"pw": 12345}, "x": "s3cret"}, {"pw"}) == [
        "s3cret",
        "12345",
    ]
    assert scrub("login with s3cret ok", ["s3cret"]) == f"login with {MASK} ok"


def test_bad_redact_is_refused() -> None:
    app = fnb.App("sqlite:///unused.db", replace=False)
    with pytest.raises(ValueError, match="redact"):
        app.job(kind="x", redact="password")(lambda ctx: None)
    with pytest.raises(ValueError, match="redact"):
        app.job(kind="y", redact=[""])(lambda ctx: None)
