"""Text for the dashboard: escaping, times in UTC, durations, bytes, JSON.

Payloads, results, errors, queue and kind names come from users' data, so any
HTML the dashboard builds goes through `esc` first; tables use Tabulator's
``plaintext`` formatter (`TEXT_FORMATTER`), which escapes too.
"""

from __future__ import annotations

import html
import json
import math
import re
from datetime import UTC, datetime
from typing import Any

#: Tabulator formatter for every text column holding data (escapes HTML).
TEXT_FORMATTER: dict[str, str] = {"type": "plaintext"}

#: Status colours, readable on light and dark backgrounds.
STATUS_COLORS: dict[str, str] = {
    "waiting": "#8d99ae",
    "pending": "#6c8ebf",
    "running": "#2a9d8f",
    "failed": "#e9a23b",
    "done": "#5a9e4b",
    "dead": "#d1495b",
}
#: Series colours of the workload timeline.
SERIES_COLORS: dict[str, str] = {
    "enqueued": "#6c8ebf",
    "completed": "#5a9e4b",
    "retried": "#e9a23b",
    "failed": "#d1495b",
    "started": "#2a9d8f",
    "dead": "#8e44ad",
    "throttled": "#8d99ae",
}
PERCENTILE_COLORS: dict[str, str] = {"p50": "#2a9d8f", "p95": "#e9a23b", "p99": "#d1495b"}


def esc(value: Any) -> str:
    """HTML-escape anything (quotes included), for HTML panes."""
    return html.escape("" if value is None else str(value), quote=True)


def utc(value: datetime | float | None, *, seconds: bool = True) -> str:
    """``2024-05-01 12:34:56`` (UTC) from an aware datetime or epoch seconds; "" for None."""
    if value is None:
        return ""
    if not isinstance(value, datetime):
        value = datetime.fromtimestamp(float(value), UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S" if seconds else "%Y-%m-%d %H:%M")


def duration(seconds: float | None) -> str:
    """Short human duration: ``850 ms``, ``12.5 s``, ``4m 10s``, ``3h 05m``, ``2d 04h``."""
    if seconds is None or (isinstance(seconds, float) and math.isnan(seconds)):
        return "–"
    s = float(seconds)
    sign = "-" if s < 0 else ""
    s = abs(s)
    if s < 1:
        return f"{sign}{s * 1000:.0f} ms"
    if s < 60:
        return f"{sign}{s:.1f} s"
    if s < 3600:
        return f"{sign}{int(s // 60)}m {int(s % 60):02d}s"
    if s < 86400:
        return f"{sign}{int(s // 3600)}h {int(s % 3600 // 60):02d}m"
    return f"{sign}{int(s // 86400)}d {int(s % 86400 // 3600):02d}h"


def relative(at: datetime | float | None, now: float) -> str:
    """``in 5m 00s`` / ``12.0 s ago`` relative to ``now`` (epoch seconds)."""
    if at is None:
        return ""
    ts = at.timestamp() if isinstance(at, datetime) else float(at)
    delta = ts - now
    return f"in {duration(delta)}" if delta >= 0 else f"{duration(-delta)} ago"


def nbytes(n: float | None) -> str:
    """``1.5 GB`` style sizes."""
    if n is None:
        return "–"
    value = float(n)
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(value) < 1024 or unit == "TB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    return f"{value:.1f} TB"


def compact_json(value: Any, limit: int = 160) -> str:
    """One-line JSON, cut at ``limit`` characters (for table cells)."""
    text = json.dumps(value, ensure_ascii=False, separators=(",", ":"), default=str)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def pretty_json(value: Any) -> str:
    """Indented JSON for the inspector (escape it before putting it in HTML)."""
    return json.dumps(value, ensure_ascii=False, indent=2, sort_keys=True, default=str)


def first_line(text: str | None, limit: int = 140) -> str:
    """First line of an error, shortened."""
    if not text:
        return ""
    line = text.strip().splitlines()[0] if text.strip() else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def css_slug(name: str) -> str:
    """A CSS-class-safe form of a queue name (for stable test/user-style hooks)."""
    return re.sub(r"[^A-Za-z0-9_-]", "_", name)
