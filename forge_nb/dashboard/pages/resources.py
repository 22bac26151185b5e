"""Resources: CPU, memory, disk I/O and free disk, one line per worker process."""

from __future__ import annotations

from typing import Any

from bokeh.palettes import Category10_10

from forge_nb.dashboard.data import sample_series
from forge_nb.dashboard.pages.samples import ChartSpec, SampleChartsPage, Series, Styles

MB = 1024.0 * 1024.0
GB = MB * 1024.0
KEYS = ["cpu_percent", "rss_bytes", "read_bytes", "write_bytes", "disk_free_bytes"]


class ResourcesPage(SampleChartsPage):
    """What each worker process uses, from the samples it writes every minute."""

    title = "Resources"
    charts = (
        ChartSpec("cpu", "CPU", "% of one core"),
        ChartSpec("rss", "Memory (resident)", "MB", "0,0"),
        ChartSpec("io", "Disk I/O (solid read, dashed write)", "MB / minute", "0,0.[00]"),
        ChartSpec("disk", "Free disk where the data lives", "GB", "0,0.[0]"),
    )

    async def read(self, since: float) -> list[dict[str, Any]]:
        """Resource samples."""
        return await self.ctx.source.resources(since)

    def lines(self, samples: list[dict[str, Any]]) -> dict[str, tuple[Series, Styles | None]]:
        """One line per process (two for disk I/O: read and write)."""
        per_host = sample_series(samples, KEYS)

        def scaled(key: str, unit: float) -> Series:
            return {h: {"t": s["t"], "y": [v / unit for v in s[key]]} for h, s in per_host.items()}

        io: Series = {}
        styles: dict[str, dict[str, Any]] = {}
        for i, (h, s) in enumerate(sorted(per_host.items())):
            color = Category10_10[i % 10]
            io[f"{h} read"] = {"t": s["t"], "y": [v / MB for v in s["read_bytes"]]}
            io[f"{h} write"] = {"t": s["t"], "y": [v / MB for v in s["write_bytes"]]}
            styles[f"{h} read"] = {"color": color}
            styles[f"{h} write"] = {"color": color, "line_dash": "dashed"}
        return {
            "cpu": ({h: {"t": s["t"], "y": s["cpu_percent"]} for h, s in per_host.items()}, None),
            "rss": (scaled("rss_bytes", MB), None),
            "io": (io, styles),
            "disk": (scaled("disk_free_bytes", GB), None),
        }
