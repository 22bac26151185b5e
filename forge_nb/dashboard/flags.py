"""Warnings the dashboard raises about the queue itself, as escaped HTML.

For now one kind: jobs waiting in a queue where no live worker runs their kind. Workers
claim only the kinds they have handlers for, so such jobs wait (attempts unspent) until a
worker that runs the kind starts; the flag says so, and what to do about it.
"""

from __future__ import annotations

from collections.abc import Sequence

from forge_nb.dashboard.format import esc
from forge_nb.storage.records import StrandedKind

#: Flags listed by name; the rest are counted.
SHOWN = 6
FLAG_CSS = """
.fnb-flag { margin: 2px 0; padding: 6px 10px; border-radius: 6px; font-size: 13px;
  border: 1px solid rgba(233,162,59,.6); border-left: 6px solid #e9a23b;
  background: rgba(233,162,59,.12); }
.fnb-flag code { font-size: 12px; }
"""
HINT = "start a worker that has a handler for it: forge-nb worker --app module:attr"


def stranded_line(flag: StrandedKind, with_queue: bool = True) -> str:
    """One flag: "3 pending jobs of kind <code>x</code> in queue <code>q</code>: no live
    worker runs it" (names escaped)."""
    n = f"{flag.jobs:,}{'+' if flag.capped else ''}"
    noun = "job" if flag.jobs == 1 and not flag.capped else "jobs"
    where = f" in queue <code>{esc(flag.queue)}</code>" if with_queue else ""
    return (
        f"⚠ <b>{n}</b> pending {noun} of kind <code>{esc(flag.kind)}</code>{where}: "
        "no live worker runs it"
    )


def stranded_html(flags: Sequence[StrandedKind], queue: str | None = None) -> str:
    """The flags (of one ``queue``, or all) as a warning block; "" when there are none."""
    chosen = [f for f in flags if queue is None or f.queue == queue]
    if not chosen:
        return ""
    lines = [stranded_line(f, with_queue=queue is None) for f in chosen[:SHOWN]]
    if len(chosen) > SHOWN:
        lines.append(f"… and {len(chosen) - SHOWN} more kind(s) no live worker runs")
    body = "<br>".join(lines)
    return f'<div class="fnb-flag">{body}<br><small>To run them, {esc(HINT)}.</small></div>'
