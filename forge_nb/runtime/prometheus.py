"""Prometheus metrics of one worker process (SPEC §9.4, pinned names), via prometheus_client.

``forge-nb worker --metrics-port N`` serves them: a counter of finished runs
``forge_nb_jobs_finished_total{queue,kind,outcome}`` and a histogram of run times
``forge_nb_job_duration_seconds{queue,kind}``, per process (Prometheus adds them up
across workers). The database-wide gauge ``forge_nb_jobs{queue,status}`` is the
dashboard server's ``GET /metrics`` (`forge_nb.api.prometheus`).
"""

from __future__ import annotations

from typing import Any

from prometheus_client import CollectorRegistry, Counter, Histogram, start_http_server

#: Run-time buckets (seconds): from a no-op job to an hour-long one.
DURATION_BUCKETS = (0.005, 0.025, 0.1, 0.5, 1, 5, 30, 120, 600, 3600, float("inf"))


class WorkerMetrics:
    """This process's counters; `observe` is called for each recorded outcome."""

    def __init__(self, registry: CollectorRegistry | None = None) -> None:
        self.registry = registry or CollectorRegistry()
        self.finished = Counter(
            "forge_nb_jobs_finished",
            "Runs finished by this process, by outcome (done, failed, dead, throttled, "
            "cancelled, released)",
            ["queue", "kind", "outcome"],
            registry=self.registry,
        )
        self.duration = Histogram(
            "forge_nb_job_duration_seconds",
            "Run time of the jobs this process ran, from start to outcome",
            ["queue", "kind"],
            buckets=DURATION_BUCKETS,
            registry=self.registry,
        )

    def observe(self, queue: str, kind: str, outcome: str, seconds: float) -> None:
        """Count one finished run."""
        self.finished.labels(queue, kind, outcome).inc()
        self.duration.labels(queue, kind).observe(max(0.0, seconds))

    def serve(self, port: int, address: str = "0.0.0.0") -> Any:
        """Serve ``/metrics`` on ``port`` from a daemon thread; the server (for tests)."""
        server, _thread = start_http_server(port, addr=address, registry=self.registry)
        return server
