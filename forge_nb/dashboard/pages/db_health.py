"""DB health: read/write latency percentiles, operations per minute and pool saturation."""

from __future__ import annotations

from typing import Any

from forge_nb.dashboard.data import combined_samples
from forge_nb.dashboard.format import PERCENTILE_COLORS
from forge_nb.dashboard.pages.samples import ChartSpec, SampleChartsPage, Series, Styles

LATENCY_KEYS = [f"{op}_{q}_ms" for op in ("read", "write") for q in ("p50", "p95", "p99")]
POOL_KEYS = ["pool_size", "pool_in_use", "pool_waiting"]
POOL_STYLES = {
    "size": {"color": "#8d99ae", "line_dash": "dotted"},
    "in use": {"color": "#2a9d8f"},
    "waiting": {"color": "#d1495b"},
}


class DbHealthPage(SampleChartsPage):
    """Database latency as every worker process sees it, summed or worst over processes."""

    title = "DB health"
    charts = (
        ChartSpec(
            "latency",
            "Storage call latency, worst process (solid read, dashed write)",
            "milliseconds",
            "0,0.[00]",
        ),
        ChartSpec("ops", "Storage operations, all processes", "operations / minute", "0,0"),
        ChartSpec("pool", "Connection pool, all processes (peak per minute)", "connections", "0,0"),
    )

    async def read(self, since: float) -> list[dict[str, Any]]:
        """DB health samples."""
        return await self.ctx.source.db_health(since)

    def lines(self, samples: list[dict[str, Any]]) -> dict[str, tuple[Series, Styles | None]]:
        """All processes per minute: latency the worst one's, operations and pool summed."""
        data = combined_samples(samples, sums=["ops", *POOL_KEYS], maxes=LATENCY_KEYS)
        t = data["t"]
        latency: Series = {}
        styles: dict[str, dict[str, Any]] = {}
        for key in LATENCY_KEYS:
            op, q, _ = key.split("_")
            label = f"{op} {q}"
            latency[label] = {"t": t, "y": data[key]}
            styles[label] = {
                "color": PERCENTILE_COLORS[q],
                "line_dash": "solid" if op == "read" else "dashed",
            }
        pool = {
            "size": {"t": t, "y": data["pool_size"]},
            "in use": {"t": t, "y": data["pool_in_use"]},
            "waiting": {"t": t, "y": data["pool_waiting"]},
        }
        return {
            "latency": (latency, styles),
            "ops": ({"ops": {"t": t, "y": data["ops"]}}, {"ops": {"color": "#6c8ebf"}}),
            "pool": (pool, POOL_STYLES),
        }
