"""JSON in and out: records to plain dicts, query strings and bodies to checked values."""

from __future__ import annotations

import dataclasses
import json
import math
import re
import time
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from forge_nb.storage.records import (
    STATUSES,
    JobEvent,
    JobRecord,
    ProcessRecord,
    QueueConfig,
    Schedule,
    Status,
)
from forge_nb.storage.validation import MAX_TIMESTAMP

DEFAULT_LIMIT = 50
MAX_LIMIT = 1000
_RELATIVE = re.compile(r"^-?(\d+(?:\.\d+)?)\s*(s|m|h|d|w)$")
_UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
#: ``…T10:00:00 02:00``: a ``+`` offset sent unencoded in a query string arrives as a space.
_SPACED_OFFSET = re.compile(r"(\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?) (\d{2}:?\d{2})$")
#: What `iso` shows for a time beyond what `datetime` holds (before year 1 or after 9999).
_EARLIEST = datetime.min.replace(tzinfo=UTC).isoformat()
_LATEST = datetime.max.replace(tzinfo=UTC).isoformat()
#: Times the API accepts: the storage's range, 1970-01-01 to 9999-12-31 UTC.
TIME_RANGE = "1970-01-01T00:00:00Z..9999-12-31T23:59:59Z"


class BadInput(ValueError):
    """A request value the API refuses; ``status`` is 400 (malformed) or 422 (invalid)."""

    def __init__(self, message: str, status: int = 400) -> None:
        super().__init__(message)
        self.status = status


# -- out ------------------------------------------------------------------------------------------


def iso(value: float | datetime | None) -> str | None:
    """Epoch seconds or an aware datetime as ISO 8601 UTC text; never raises.

    A time beyond ``datetime``'s years 1..9999 shows as the nearest end of that
    range, a non-finite number as None: an answer never fails on a stored time.
    """
    if value is None:
        return None
    try:
        if isinstance(value, datetime):
            return value.astimezone(UTC).isoformat()
        if not math.isfinite(value):
            return None
        return datetime.fromtimestamp(value, UTC).isoformat()
    except (OverflowError, OSError, ValueError):  # out of range for datetime or the platform
        after = value.year > 1970 if isinstance(value, datetime) else value > 0
        return _LATEST if after else _EARLIEST


def dumps(value: Any) -> str:
    """Strict JSON text (NaN/Infinity would make invalid JSON, so they are refused)."""
    return json.dumps(value, allow_nan=False, ensure_ascii=False, separators=(",", ":"))


def job_json(job: JobRecord) -> dict[str, Any]:
    """A job as the API shows it (SPEC §4 field names, times in ISO 8601)."""
    return job.to_dict()


#: In list answers, a payload or result whose JSON is longer than this is replaced by a
#: preview (``payload_truncated: true``); ``GET /api/jobs/{id}`` has it whole.
LIST_VALUE_CHARS = 4096
#: Length of the preview text of a truncated payload or result, and of a long traceback.
PREVIEW_CHARS = 512
#: A list answer stops adding jobs past this much JSON; its ``next_cursor`` goes on from there.
PAGE_BUDGET_CHARS = 1_000_000


def job_summary_json(job: JobRecord) -> tuple[dict[str, Any], int]:
    """A job as a list shows it, with its approximate JSON length.

    Why: a page of 1,000 jobs with 1 MB payloads was a 56 MB answer that took the server's
    memory up by 280 MB; lists show previews, the detail route the whole job.
    """
    out = job.to_dict()
    size = 400
    for name in ("payload", "result"):
        text = dumps(out[name])
        if len(text) > LIST_VALUE_CHARS:
            out[name] = None
            out[f"{name}_truncated"] = True
            out[f"{name}_preview"] = text[:PREVIEW_CHARS]
            size += PREVIEW_CHARS
        else:
            size += len(text)
    traceback = out.get("last_traceback")
    if isinstance(traceback, str) and len(traceback) > LIST_VALUE_CHARS:
        out["last_traceback"] = "…" + traceback[-PREVIEW_CHARS:]  # its end names the error
    for name in ("last_error", "last_traceback", "progress_message", "unique_key"):
        value = out.get(name)
        size += len(value) if isinstance(value, str) else 0
    return out, size


def event_json(event: JobEvent) -> dict[str, Any]:
    """One entry of a job's history."""
    return {
        "at": iso(event.at),
        "event": event.event,
        "attempt": event.attempt,
        "message": event.message,
    }


def queue_json(config: QueueConfig, counts: Mapping[Status, int] | None) -> dict[str, Any]:
    """A queue's live config plus how many jobs it holds per status."""
    out = dataclasses.asdict(config)
    out["counts"] = {status: (counts or {}).get(status, 0) for status in STATUSES}
    return out


def schedule_json(schedule: Schedule) -> dict[str, Any]:
    """A cron schedule, fire times in ISO 8601."""
    out = dataclasses.asdict(schedule)
    out["last_fire_at"] = iso(schedule.last_fire_at)
    out["next_fire_at"] = iso(schedule.next_fire_at)
    return out


def process_json(process: ProcessRecord) -> dict[str, Any]:
    """One worker slot."""
    return process.to_dict()


def metric_json(row: Mapping[str, Any]) -> dict[str, Any]:
    """A metrics bucket or latency summary: datetimes to ISO, non-finite numbers to null."""
    out: dict[str, Any] = {}
    for key, value in row.items():
        if isinstance(value, datetime):
            value = iso(value)
        elif isinstance(value, float) and not math.isfinite(value):
            value = None
        out[key] = value
    return out


# -- in -------------------------------------------------------------------------------------------


def check_time(value: float, what: str, sent: object, bad: int = 400) -> float:
    """``value`` (epoch seconds) if it lies in `TIME_RANGE`; BadInput naming ``sent`` if not."""
    if not 0 <= value <= MAX_TIMESTAMP:  # also refuses NaN
        raise BadInput(f"{what} must be a time in {TIME_RANGE}, got {sent!r}", bad)
    return value


def parse_time(text: str, what: str, now: float | None = None, bad: int = 400) -> float:
    """Epoch seconds, ISO 8601 (naive means UTC), or a span ago such as ``30m``, ``6h``, ``7d``.

    The result is always in `TIME_RANGE` (1970..9999): anything else is `BadInput`.
    """
    text = text.strip()
    now = time.time() if now is None else now
    match = _RELATIVE.match(text)
    if match:
        ago = float(match.group(1)) * _UNIT_SECONDS[match.group(2)]
        return check_time(now - ago, what, text, bad)
    try:
        value = float(text)
    except ValueError:
        pass
    else:
        return check_time(value, what, text, bad)
    try:
        parsed = datetime.fromisoformat(_SPACED_OFFSET.sub(r"\1+\2", text))
    except ValueError:
        raise BadInput(
            f"{what} must be epoch seconds, ISO 8601 or a span like 30m/6h/7d, got {text!r}", bad
        ) from None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return check_time(parsed.timestamp(), what, text, bad)


def parse_status(
    text: str | None, allowed: tuple[Status, ...] = STATUSES, bad: int = 400
) -> Status | None:
    """A job status from a query (bad: 400) or a body (bad: 422); None when empty."""
    if text is None or text == "":
        return None
    for status in allowed:
        if text == status:
            return status
    raise BadInput(f"status must be one of {', '.join(allowed)}, got {text!r}", bad)


def parse_limit(text: str | None) -> int:
    """Page size: 1..`MAX_LIMIT`, `DEFAULT_LIMIT` when absent."""
    if text is None or text == "":
        return DEFAULT_LIMIT
    try:
        limit = int(text)
    except ValueError:
        raise BadInput(f"limit must be an integer, got {text!r}") from None
    if not 1 <= limit <= MAX_LIMIT:
        raise BadInput(f"limit must be between 1 and {MAX_LIMIT}, got {limit}")
    return limit


def parse_step(text: str | None, allowed: tuple[int, ...]) -> int:
    """Metric bucket width in minutes, 1 when absent."""
    if text is None or text == "":
        return 1
    if text not in {str(step) for step in allowed}:
        choices = ", ".join(str(step) for step in allowed)
        raise BadInput(f"step must be one of {choices} (minutes), got {text!r}")
    return int(text)


def parse_body(raw: bytes, *, allow_empty: bool = False) -> Any:
    """The request body as JSON (400 when it is not JSON)."""
    if not raw.strip():
        if allow_empty:
            return None
        raise BadInput("request body must be JSON, got an empty body")
    try:
        return json.loads(raw)
    except (ValueError, UnicodeDecodeError) as exc:
        raise BadInput(f"request body is not valid JSON: {exc}") from None
