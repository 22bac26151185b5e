"""Cron expressions (croniter) and firing due schedules exactly once per tick."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from forge_nb.storage.base import Storage
from forge_nb.storage.records import NewJob, Schedule

log = logging.getLogger("forge_nb.cron")


def _croniter(expression: str, start: datetime) -> Any:
    """croniter with seconds first for 6 fields; imported on use to keep startup fast."""
    from croniter import croniter

    return croniter(expression, start, second_at_beginning=True)


def check_cron(expression: str) -> str:
    """A 5-field or 6-field (seconds first) expression; ValueError quoting it otherwise."""
    if not isinstance(expression, str):
        raise ValueError(f"cron expression must be a string, got {expression!r}")
    fields = expression.split()
    if len(fields) not in (5, 6):
        raise ValueError(
            f"invalid cron expression {expression!r}: expected 5 fields "
            "(min hour day month weekday) or 6 (seconds first)"
        )
    try:
        _croniter(expression, datetime.now(UTC)).get_next(float)
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"invalid cron expression {expression!r}: {exc}") from None
    return " ".join(fields)


def check_tz(tz: str) -> ZoneInfo:
    """An IANA time zone name; ValueError otherwise."""
    try:
        return ZoneInfo(tz)
    except (ZoneInfoNotFoundError, ValueError, TypeError):
        raise ValueError(
            f"unknown time zone {tz!r} (use an IANA name such as 'Europe/Paris')"
        ) from None


def next_fire(expression: str, tz: str, after: float) -> float:
    """The first fire strictly after ``after`` (epoch seconds), in the schedule's zone."""
    start = datetime.fromtimestamp(after, check_tz(tz))
    return float(_croniter(expression, start).get_next(float))


def latest_fire(expression: str, tz: str, at_or_before: float) -> float:
    """The last fire at or before ``at_or_before``: missed fires coalesce into this one."""
    # croniter's get_prev is strict, so start a millisecond later to include a fire exactly
    # at ``at_or_before``; a fire inside that millisecond is still in the future: step back.
    ticks = _croniter(expression, datetime.fromtimestamp(at_or_before + 1e-3, check_tz(tz)))
    fire = float(ticks.get_prev(float))
    if fire > at_or_before:
        fire = float(ticks.get_prev(float))
    return fire


def fire_key(name: str, fire_at: float) -> str:
    """Unique key of one tick's job: the same tick can never be enqueued twice."""
    stamp = datetime.fromtimestamp(fire_at, UTC).isoformat(timespec="seconds")
    return f"cron:{name}:{stamp}"


async def fire_due(storage: Storage, schedules: list[Schedule], now: float) -> int:
    """Enqueue one job for each due schedule (coalescing missed ticks); returns fires made."""
    fired = 0
    for schedule in schedules:
        if not schedule.enabled or schedule.next_fire_at is None or schedule.next_fire_at > now:
            continue
        fire_at = max(schedule.next_fire_at, latest_fire(schedule.cron, schedule.tz, now))
        job = NewJob(
            kind=schedule.kind,
            queue=schedule.queue,
            payload=schedule.payload,
            unique_key=fire_key(schedule.name, fire_at),
        )
        following = next_fire(schedule.cron, schedule.tz, max(now, fire_at))
        if await storage.fire_schedule(
            schedule.name, schedule.next_fire_at, fire_at, following, job, now
        ):
            fired += 1
            log.info("cron %s fired for %s", schedule.name, fire_key(schedule.name, fire_at))
    return fired
