"""Issue 21 over real HTTP: tags (`?tag=`, enqueue bodies) and redaction."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

import forge_nb as fnb
from tests.api.conftest import FAST, Client, serve_api


@pytest.fixture
async def any_backend_api(db_url: str) -> AsyncIterator[tuple[fnb.App, Client]]:
    app = fnb.App(db_url, replace=False, **FAST)
    try:
        async with serve_api(app) as client:
            yield app, client
    finally:
        await app.close(timeout=2)


async def test_tags_over_http(any_backend_api: tuple[fnb.App, Client]) -> None:
    app, api = any_backend_api

    @app.job(kind="load")
    async def load(ctx: fnb.JobCtx, n: int) -> int:
        return n

    a = await load.options(tags=["etl", "nightly"]).enqueue(1)
    await load.enqueue(2)
    made = await api.post("/api/jobs", {"kind": "load", "payload": {"n": 3}, "tags": ["etl"]})
    assert made.status == 201 and made["tags"] == ["etl"]
    page = await api.get("/api/jobs?tag=etl")
    assert [j["id"] for j in page["jobs"]] == [made["id"], a.id]
    assert page["jobs"][1]["tags"] == ["etl", "nightly"]
    assert [j["id"] for j in (await api.get("/api/jobs?tag=nightly"))["jobs"]] == [a.id]
    assert len((await api.get("/api/jobs?tag="))["jobs"]) == 3  # empty: any
    assert (await api.get(f"/api/jobs/{a.id}"))["tags"] == ["etl", "nightly"]
    assert [j.id for j in await app.jobs(tag="nightly")] == [a.id]
    bad = await api.post("/api/jobs", {"kind": "load", "payload": {"n": 4}, "tags": [""]})
    assert bad.status == 422 and "tag" in bad["message"]
    assert len(await app.jobs()) == 3  # nothing stored
