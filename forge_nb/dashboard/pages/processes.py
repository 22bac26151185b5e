"""Processes: every live worker process and its slots, with heartbeats and current jobs."""

from __future__ import annotations

from typing import Any

import pandas as pd
import panel as pn

from forge_nb.dashboard.data import Tick
from forge_nb.dashboard.format import TEXT_FORMATTER, duration, utc
from forge_nb.dashboard.pages.base import LiveTable, Page
from forge_nb.runtime.flow import kind_policies
from forge_nb.storage.records import ProcessRecord

PROCESS_COLUMNS = [
    "host",
    "pid",
    "version",
    "queues",
    "kinds",
    "slots",
    "busy",
    "last heartbeat",
    "started (UTC)",
    "up",
]
KIND_COLUMNS = ["kind", "queue", "max attempts", "per process", "policy"]
SLOT_COLUMNS = ["id", "host", "pid", "queue", "current job", "last heartbeat (UTC)", "age"]


def process_frames(processes: list[ProcessRecord], now: float) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(one row per process, one row per worker slot)."""
    groups: dict[tuple[str, int], list[ProcessRecord]] = {}
    for p in processes:
        groups.setdefault((p.host_id, p.pid), []).append(p)
    rows = []
    for (_, pid), slots in sorted(groups.items(), key=lambda kv: (kv[1][0].hostname, kv[0][1])):
        first = slots[0]
        beat = max(s.last_heartbeat for s in slots)
        rows.append(
            {
                "host": first.hostname,
                "pid": pid,
                "version": first.version,
                "queues": ", ".join(sorted({s.queue for s in slots})),
                "kinds": ", ".join(first.kinds),  # what it claims (its handlers)
                "slots": len(slots),
                "busy": sum(1 for s in slots if s.current_job),
                "last heartbeat": f"{duration(now - beat.timestamp())} ago",
                "started (UTC)": utc(min(s.started_at for s in slots)),
                "up": duration(now - min(s.started_at for s in slots).timestamp()),
            }
        )
    slot_rows = [
        {
            "id": p.id,
            "host": p.hostname,
            "pid": p.pid,
            "queue": p.queue,
            "current job": p.current_job or "",
            "last heartbeat (UTC)": utc(p.last_heartbeat),
            "age": duration(now - p.last_heartbeat.timestamp()),
        }
        for p in sorted(processes, key=lambda p: (p.hostname, p.pid, p.queue, p.id))
    ]
    return pd.DataFrame(rows, columns=PROCESS_COLUMNS), pd.DataFrame(
        slot_rows, columns=SLOT_COLUMNS
    )


class ProcessesPage(Page):
    """Processes and slots (from the common snapshot; no extra reads)."""

    title = "Processes"

    def __init__(self, ctx: Any) -> None:
        super().__init__(ctx)
        empty_p, empty_s = process_frames([], 0.0)
        common = {
            "disabled": True,
            "sizing_mode": "stretch_width",
            "layout": "fit_data_table",
        }
        self.table = LiveTable(
            empty_p,
            height=240,
            css_classes=["fnb-processes-table"],
            formatters={c: TEXT_FORMATTER for c in ("host", "version", "queues", "kinds")},
            **common,
        )
        self.slots = LiveTable(
            empty_s,
            height=420,
            css_classes=["fnb-slots-table"],
            formatters={c: TEXT_FORMATTER for c in ("id", "host", "queue", "current job")},
            **common,
        )
        self.kinds = LiveTable(
            pd.DataFrame([], columns=KIND_COLUMNS),
            height=160,
            css_classes=["fnb-kinds-table"],
            formatters={c: TEXT_FORMATTER for c in ("kind", "queue", "policy")},
            **common,
        )
        self.summary = pn.pane.HTML("", sizing_mode="stretch_width")
        self._panel = pn.Column(
            self.summary,
            pn.pane.HTML("<b>Processes</b>"),
            self.table.panel,
            pn.pane.HTML("<b>Worker slots</b> (one per concurrent job a process may run)"),
            self.slots.panel,
            pn.pane.HTML("<b>Kinds this App runs</b> (policy: per-key limit, retry_on, backoff)"),
            self.kinds.panel,
            sizing_mode="stretch_width",
        )

    def activated(self) -> None:
        """The tab is shown again: its table views are rebuilt."""
        self.table.shown()
        self.slots.shown()
        self.kinds.shown()

    def update(self, snap: Tick) -> None:
        """Refresh both tables."""
        procs, slots = process_frames(snap.processes, snap.now)
        self.table.set(procs)
        self.slots.set(slots)
        self.kinds.set(pd.DataFrame(kind_policies(self.ctx.app.handlers), columns=KIND_COLUMNS))
        self.summary.object = (
            f"<span style='font-size:13px'>{len(procs)} live process(es), {len(slots)} worker "
            f"slot(s). A process that stops heartbeating is reaped: its running jobs go back to "
            f"the retry path as <i>worker lost</i>.</span>"
        )
