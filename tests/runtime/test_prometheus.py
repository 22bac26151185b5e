"""Prometheus: ``GET /metrics`` (database-wide gauges) and ``forge-nb worker --metrics-port``
(per-process counters and histograms), parsed with prometheus_client's own parser."""

from __future__ import annotations

import asyncio
import socket
import urllib.request
from pathlib import Path

import tornado.httpclient
from prometheus_client.parser import text_string_to_metric_families

import forge_nb as fnb
from tests.api.conftest import serve_api
from tests.runtime.conftest import Spawn


def samples(text: str) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """``{(sample name, sorted labels): value}`` of an exposition."""
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


async def test_metrics_route_has_a_gauge_per_queue_and_status(db_url: str) -> None:
    async with fnb.App(db_url, replace=False, queues=[]) as app:

        @app.job(kind="m.ok", queue="mq")
        async def ok(ctx: fnb.JobCtx) -> None:
            return None

        @app.job(kind="m.bad", queue="mq", max_attempts=1)
        async def bad(ctx: fnb.JobCtx) -> None:
            raise fnb.Dead("no")

        await ok.enqueue_many([() for _ in range(3)])
        await bad.enqueue()
        await app.drain()
        await ok.enqueue()
        async with serve_api(app) as api:
            client = tornado.httpclient.AsyncHTTPClient(force_instance=True)
            reply = await client.fetch(api.base + "/metrics")
            client.close()
    assert reply.headers["Content-Type"].startswith("text/plain")
    found = samples(reply.body.decode())
    assert found[("forge_nb_jobs", (("queue", "mq"), ("status", "done")))] == 3
    assert found[("forge_nb_jobs", (("queue", "mq"), ("status", "dead")))] == 1
    assert found[("forge_nb_jobs", (("queue", "mq"), ("status", "pending")))] == 1
    assert found[("forge_nb_jobs", (("queue", "mq"), ("status", "running")))] == 0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_worker_metrics_port_counts_outcomes_and_durations(
    db_url: str, spawn_worker: Spawn, tmp_path: Path
) -> None:
    port = free_port()
    worker = spawn_worker(
        db_url, "--metrics-port", str(port), "--metrics-address", "127.0.0.1", "--queues", "default"
    )
    async with fnb.App(db_url, replace=False, queues=[]) as app:
        refs = await app.enqueue_many(
            [fnb.EnqueueRequest("record", {"n": i}, queue="default") for i in range(4)]
        )
        for ref in refs:
            await ref.wait(timeout=60)

    def scrape() -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as r:
            return str(r.read().decode())

    for _ in range(100):
        try:
            found = samples(await asyncio.to_thread(scrape))
        except OSError:
            await asyncio.sleep(0.1)
            continue
        key = (
            "forge_nb_jobs_finished_total",
            (("kind", "record"), ("outcome", "done"), ("queue", "default")),
        )
        if found.get(key) == 4:
            break
        await asyncio.sleep(0.1)
    assert found[key] == 4
    count = ("forge_nb_job_duration_seconds_count", (("kind", "record"), ("queue", "default")))
    assert found[count] == 4
    inf = (
        "forge_nb_job_duration_seconds_bucket",
        (("kind", "record"), ("le", "+Inf"), ("queue", "default")),
    )
    assert found[inf] == 4
    assert worker.poll() is None
