"""A worker app with an OpenTelemetry SDK and an in-memory exporter (each process its own):
`spans` returns what this process exported, so a test can compare across processes."""

from __future__ import annotations

import json
import sys

from opentelemetry import trace
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import forge_nb as fnb

EXPORTER = InMemorySpanExporter()
_provider = TracerProvider()
_provider.add_span_processor(SimpleSpanProcessor(EXPORTER))
trace.set_tracer_provider(_provider)

app = fnb.App()


@app.job(kind="otel.traced", queue="otel")
async def traced(ctx: fnb.JobCtx) -> str:
    return "ran"


@app.job(kind="otel.spans", queue="otel")
async def spans(ctx: fnb.JobCtx) -> list[dict[str, object]]:
    return exported()


def exported() -> list[dict[str, object]]:
    """The spans this process finished, as plain data."""
    return [
        {
            "name": s.name,
            "trace_id": f"{s.context.trace_id:032x}",
            "span_id": f"{s.context.span_id:016x}",
            "parent_id": None if s.parent is None else f"{s.parent.span_id:016x}",
            "job_id": (s.attributes or {}).get("forge_nb.job_id"),
        }
        for s in EXPORTER.get_finished_spans()
    ]


async def produce(url: str) -> None:
    """Enqueue one traced job; print its id and this process's spans as JSON."""
    async with fnb.App(url, replace=False, queues=[]) as producer:
        ref = await producer.enqueue(fnb.EnqueueRequest("otel.traced", queue="otel"))
    print(json.dumps({"job_id": ref.id, "spans": exported()}))


if __name__ == "__main__":
    import asyncio

    asyncio.run(produce(sys.argv[1]))
