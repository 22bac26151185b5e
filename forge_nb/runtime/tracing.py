"""OpenTelemetry (optional: ``pip install forge-nb[otel]``): spans ``forge_nb.enqueue`` and
``forge_nb.run``, the run a child of the enqueue across processes (SPEC §9.4).

Only when opentelemetry is installed and a real tracer provider is set (an SDK's): then the
enqueue's trace context (W3C ``traceparent``) is stored with each job it makes, beside its
propagated context (`forge_nb.storage.extras`, key `TRACE_KEY`), and the worker that runs
the job opens its run span under it. Without, nothing is stored and nothing is opened.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator, Mapping
from typing import Any

try:  # an optional extra
    from opentelemetry import propagate, trace
    from opentelemetry.trace import ProxyTracerProvider, SpanKind

    INSTALLED = True
except ImportError:  # pragma: no cover - where the extra is not installed
    INSTALLED = False

#: Where a job's trace context is kept in its stored context.
TRACE_KEY = "forge_nb.trace"
_SCOPE = "forge_nb"


#: A provider named by the environment, which opentelemetry loads on first use.
_ENV_PROVIDER = "OTEL_PYTHON_TRACER_PROVIDER" in os.environ
#: opentelemetry-api keeps the provider ``set_tracer_provider`` set in this module global (a
#: private name: without it, every check goes through ``get_tracer_provider``).
_GLOBAL = "_TRACER_PROVIDER"
_READ_GLOBAL = INSTALLED and hasattr(trace, _GLOBAL)


def active() -> bool:
    """Whether spans are recorded: opentelemetry installed and a provider set.

    Asked for every job run and enqueue: while no provider is set, the set one is read from
    the module (what ``set_tracer_provider`` writes) rather than through
    ``get_tracer_provider``, which then looks up the environment on each call."""
    if not INSTALLED:
        return False
    provider = getattr(trace, _GLOBAL) if _READ_GLOBAL else None
    if provider is None:
        if _READ_GLOBAL and not _ENV_PROVIDER:
            return False
        provider = trace.get_tracer_provider()
    return not isinstance(provider, ProxyTracerProvider) and type(provider).__name__ != (
        "NoOpTracerProvider"
    )


@contextlib.contextmanager
def enqueue_span() -> Iterator[None]:
    """The ``forge_nb.enqueue`` span around an enqueue (current while jobs are built)."""
    if not active():
        yield
        return
    tracer = trace.get_tracer(_SCOPE)
    with tracer.start_as_current_span("forge_nb.enqueue", kind=SpanKind.PRODUCER):
        yield


def carrier() -> dict[str, str] | None:
    """The current trace context as W3C headers, to store with a job (None: no span)."""
    if not active() or not trace.get_current_span().get_span_context().is_valid:
        return None
    headers: dict[str, str] = {}
    propagate.inject(headers)
    return headers or None


@contextlib.contextmanager
def run_span(job: Any, context: Mapping[str, Any] | None) -> Iterator[None]:
    """The ``forge_nb.run`` span around a run, a child of its enqueue's span when stored."""
    if not active():
        yield
        return
    headers = (context or {}).get(TRACE_KEY)
    parent = propagate.extract(headers) if isinstance(headers, dict) else None
    tracer = trace.get_tracer(_SCOPE)
    attributes = {
        "forge_nb.job_id": job.id,
        "forge_nb.kind": job.kind,
        "forge_nb.queue": job.queue,
        "forge_nb.attempt": job.attempt,
    }
    with tracer.start_as_current_span(
        "forge_nb.run", context=parent, kind=SpanKind.CONSUMER, attributes=attributes
    ):
        yield
