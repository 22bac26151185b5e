"""``GET /metrics`` on the dashboard server: database-wide gauges in Prometheus text format.

``forge_nb_jobs{queue,status}``: how many jobs each queue holds per status, from the kept
counts (one small read, never a scan). The per-process counters are the workers' own
(``forge-nb worker --metrics-port``, `forge_nb.runtime.prometheus`).
"""

from __future__ import annotations

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Gauge, generate_latest

from forge_nb.api.base import ApiRoute


class PrometheusRoute(ApiRoute):
    """``GET /metrics`` (the API's access rules: basic auth when the server has it)."""

    async def get(self) -> None:
        counts = await self.forge.counts()
        registry = CollectorRegistry()
        gauge = Gauge(
            "forge_nb_jobs", "Jobs by queue and status", ["queue", "status"], registry=registry
        )
        for queue, statuses in sorted(counts.items()):
            for status, n in statuses.items():
                gauge.labels(queue, status).set(n)
        self.set_header("Content-Type", CONTENT_TYPE_LATEST)
        self.finish(generate_latest(registry))
