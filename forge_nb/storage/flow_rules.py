"""Flow-control options of new jobs (SPEC §9.3): checked before anything is written."""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from forge_nb.storage.records import NewJob
from forge_nb.storage.validation import MAX_DELAY_S, check_name, in_batch

ON_CONFLICT = ("ignore", "replace")
#: The most jobs of one key that may run at once.
MAX_KEY_LIMIT = 100_000


class Flow(NamedTuple):
    """One job's flow options, ready for the flow enqueue path."""

    expires_at: float | None
    unique_for: float | None
    replace: bool
    #: ``"<kind>/<value>"``: keys are per kind.
    concurrency_key: str | None
    key_limit: int | None


def _seconds(value: Any, name: str, *, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ValueError(f"{name} must be a number of seconds, got {value!r}")
    if value < 0 or (positive and value == 0) or value > MAX_DELAY_S:
        bound = "> 0" if positive else ">= 0"
        raise ValueError(f"{name} must be {bound} and at most 100 years, got {value!r}")
    return float(value)


def prepare_flow(job: NewJob, now: float) -> Flow | None:
    """The job's flow options, or None when it has none (the plain enqueue paths)."""
    if (
        job.expires_in is None
        and job.unique_for is None
        and job.on_conflict == "ignore"
        and job.concurrency_key is None
        and job.key_limit is None
    ):
        return None
    expires_at = None
    if job.expires_in is not None:
        expires_at = now + _seconds(job.expires_in, "expires_in", positive=True)
    unique_for = None
    if job.unique_for is not None:
        unique_for = _seconds(job.unique_for, "unique_for", positive=False)
        if job.unique_key is None:
            raise ValueError("unique_for needs a unique_key")
    if job.on_conflict not in ON_CONFLICT:
        raise ValueError(f"on_conflict must be 'ignore' or 'replace', got {job.on_conflict!r}")
    if job.on_conflict == "replace" and job.unique_key is None:
        raise ValueError('on_conflict="replace" needs a unique_key')
    key = None
    if job.concurrency_key is not None or job.key_limit is not None:
        limit = job.key_limit
        if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= MAX_KEY_LIMIT:
            raise ValueError(f"key_limit must be an int from 1 to {MAX_KEY_LIMIT}, got {limit!r}")
        if job.concurrency_key is None:
            raise ValueError("key_limit needs a concurrency_key")
        check_name(job.concurrency_key, "concurrency key")
        key = f"{job.kind}/{job.concurrency_key}"
    return Flow(expires_at, unique_for, job.on_conflict == "replace", key, job.key_limit)


def prepare_flows(jobs: Sequence[NewJob], now: float) -> list[Flow | None]:
    """Every job's flow options (one bad job: a ValueError naming it, nothing written)."""
    flows: list[Flow | None] = []
    try:
        for job in jobs:
            flows.append(prepare_flow(job, now))
    except ValueError as exc:
        raise in_batch(exc, len(flows), len(jobs)) from None
    return flows


def held(status: str, finished_at: float | None, hold_seconds: float, now: float) -> bool:
    """Whether a unique key's windowed holder still takes it: live, or in its window."""
    if status in ("waiting", "pending", "running", "failed"):
        return True
    return finished_at is not None and finished_at + hold_seconds > now


def check_template(pattern: str) -> str:
    """A rate-limit template names its variable part with ``*`` (``"stripe:*"``)."""
    if "*" not in pattern:
        raise ValueError(f"a rate limit template needs a '*' (like 'stripe:*'), got {pattern!r}")
    return pattern


def template_for(scope: str, patterns: Sequence[str]) -> str | None:
    """The longest pattern matching ``scope`` (``*``: any text, even none), or None."""
    best = None
    for pattern in patterns:
        regex = ".*".join(re.escape(part) for part in pattern.split("*"))
        if re.fullmatch(regex, scope, flags=re.DOTALL) and (
            best is None or len(pattern) > len(best)
        ):
            best = pattern
    return best
