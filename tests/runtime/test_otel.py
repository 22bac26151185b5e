"""OpenTelemetry: the ``forge_nb.run`` span (in a worker process) is a child of the
``forge_nb.enqueue`` span (in the producing process), both exported in memory."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

import forge_nb as fnb
from forge_nb.runtime import tracing
from tests.runtime.conftest import REPO, Spawn

pytest.importorskip("opentelemetry.sdk")


async def test_the_run_span_is_a_child_of_the_enqueue_span_across_processes(
    db_url: str, spawn_worker: Spawn
) -> None:
    assert not tracing.active()  # this test process sets no provider: no spans here
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(REPO), str(REPO / "tests")])}
    produced = json.loads(
        subprocess.run(
            [sys.executable, "-m", "runtime.otelapp", db_url],
            capture_output=True,
            text=True,
            env=env,
            check=True,
            cwd=REPO / "tests",
            timeout=120,
        )
        .stdout.strip()
        .splitlines()[-1]
    )
    [enqueue] = [s for s in produced["spans"] if s["name"] == "forge_nb.enqueue"]
    spawn_worker(db_url, "--queues", "otel", app="runtime.otelapp:app")
    async with fnb.App(db_url, replace=False, queues=[]) as app:
        traced = fnb.JobRef(app, produced["job_id"])
        assert await traced.wait(timeout=60) == "ran"
        assert await app.job_context(traced) == {}  # the trace context is not user context
        spans = await (await app.enqueue(fnb.EnqueueRequest("otel.spans", queue="otel"))).wait(
            timeout=60
        )
    [run] = [s for s in spans if s["name"] == "forge_nb.run" and s["job_id"] == traced.id]
    assert run["trace_id"] == enqueue["trace_id"]
    assert run["parent_id"] == enqueue["span_id"]


def test_the_private_provider_global_active_reads_is_still_there() -> None:
    """`tracing.active()` reads opentelemetry's provider global instead of calling
    get_tracer_provider() per job: a release that renames it must fail here, not make every
    check take the slow path unnoticed."""
    assert tracing._READ_GLOBAL, "opentelemetry.trace._TRACER_PROVIDER is gone"
    code = (
        "from opentelemetry import trace\n"
        "from opentelemetry.sdk.trace import TracerProvider\n"
        "from forge_nb.runtime import tracing\n"
        "before = tracing.active()\n"
        "trace.set_tracer_provider(TracerProvider())\n"
        "print(before, tracing.active())\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["False", "True"]
