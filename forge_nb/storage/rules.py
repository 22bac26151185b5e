"""The storage's domain rules, written once for both dialects.

The SQL differs between SQLite and Postgres; what a bucket holds, when a queue's
settings are consistent, and what a lost attempt does to a job do not. Each backend
reads the rows its own way and asks here.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

from forge_nb.errors import UnknownDependency, UnknownRateLimit
from forge_nb.storage import rows
from forge_nb.storage.records import EnqueueResult, QueueConfig, RateLimit, Status


def bucket_of(found: Any, scope: str) -> RateLimit:
    """The bucket of a ``rate_limit`` row, or `UnknownRateLimit` naming the scope."""
    if found is None:
        raise UnknownRateLimit(
            f"unknown rate limit scope {scope!r}; create it with ensure_rate_limit"
        )
    return rows.rate_limit(found)


def tokens_now(bucket: RateLimit, now: float) -> float:
    """Tokens in ``bucket`` at ``now``: refilled since its last update, up to its capacity."""
    refilled = max(0.0, now - bucket.updated_at) * bucket.refill_per_second
    return min(bucket.capacity, bucket.tokens + refilled)


def tokens_wait(bucket: RateLimit, scope: str, n: float, now: float) -> float:
    """Seconds until ``n`` tokens can be taken from ``bucket`` (0.0: now).

    A drained bucket waits until it is released; ``n`` must fit in the bucket at all.
    """
    if not 0 < n <= bucket.capacity:
        raise ValueError(f"cannot take {n} tokens from {scope!r} (capacity {bucket.capacity})")
    if bucket.held_until > now:
        return bucket.held_until - now
    tokens = tokens_now(bucket, now)
    return 0.0 if tokens >= n else (n - tokens) / bucket.refill_per_second


def checked_config(config: QueueConfig) -> QueueConfig:
    """``config`` if its settings agree with each other; ValueError otherwise (raised inside
    the writing transaction, so the edit is rolled back)."""
    if config.backoff_max_seconds < config.backoff_base_seconds:
        raise ValueError(
            f"backoff_max_seconds ({config.backoff_max_seconds}) must be >= "
            f"backoff_base_seconds ({config.backoff_base_seconds})"
        )
    return config


def after_lost_attempt(attempts: int, max_attempts: int) -> Status:
    """What a job whose worker died becomes: ``dead`` once its attempts are spent (a job
    that keeps killing workers must end), else ``failed`` for a retry."""
    return "dead" if attempts >= max_attempts else "failed"


#: What a newly enqueued job with dependencies becomes: (id, dependencies, waiting_on,
#: status, error, finished_at), the parameters of ``settle_new_dependent``.
Settled = tuple[int, int, int, Status, str | None, float | None]


def settle_new_dependents(
    links: Sequence[tuple[int, list[int]]], statuses: Mapping[int, str], now: float
) -> list[Settled]:
    """Each new job's state from its dependencies' statuses (read under lock).

    An unknown dependency is a ValueError (the enqueue's transaction rolls back: nothing is
    written). A ``done`` dependency counts as met; a ``dead`` one ends the job ``dead`` at
    once, as it would have had it been waiting when the dependency died.
    """
    missing = sorted({d for _, deps in links for d in deps} - statuses.keys())
    if missing:
        shown = ", ".join(map(str, missing[:10])) + (" …" if len(missing) > 10 else "")
        raise UnknownDependency(f"unknown dependency id {shown}: nothing was enqueued")
    settled: list[Settled] = []
    for key, deps in links:
        dead = next((d for d in deps if statuses[d] == "dead"), None)
        unmet = sum(statuses[d] != "done" for d in deps)
        if dead is not None:
            settled.append((key, len(deps), unmet, "dead", dependency_error(dead, "dead"), now))
        elif unmet:
            settled.append((key, len(deps), unmet, "waiting", None, None))
        else:
            settled.append((key, len(deps), 0, "pending", None, None))
    return settled


def created_links(
    results: Sequence[EnqueueResult], links: Sequence[tuple[int, list[int]]]
) -> list[tuple[int, list[int]]]:
    """(new job id, dependency ids) of the jobs of ``links`` (batch index, ids) the enqueue
    created: a duplicate of a live unique key keeps the holder's own dependencies."""
    return [(int(results[i].id), deps) for i, deps in links if results[i].outcome == "created"]


class LinkPlan(NamedTuple):
    """Wiring one enqueue's created jobs to their dependencies, the same in both dialects.

    The backend reads the statuses of ``wanted`` (in its transaction, under whatever lock
    keeps them from changing), inserts ``edges`` (dependent, dependency), settles each of
    ``new`` with `settle_new_dependents` and answers `with_settled_statuses`."""

    new: list[tuple[int, list[int]]]
    wanted: list[int]
    edges: list[tuple[int, int]]


def plan_links(
    results: Sequence[EnqueueResult], links: Sequence[tuple[int, list[int]]]
) -> LinkPlan | None:
    """The `LinkPlan` of ``links`` (batch index, dependency ids); None when the enqueue
    created none of those jobs (nothing to link)."""
    new = created_links(results, links)
    if not new:
        return None
    wanted = sorted({d for _, deps in new for d in deps})
    return LinkPlan(new, wanted, [(key, d) for key, deps in new for d in deps])


def with_settled_statuses(
    results: list[EnqueueResult], settled: Sequence[Settled]
) -> list[EnqueueResult]:
    """``results`` with the status each new dependent was given (waiting, pending, dead)."""
    status_of = {str(row[0]): row[3] for row in settled}
    return [r._replace(status=status_of.get(r.id, r.status)) for r in results]


def dependency_error(job_id: int | str, how: str) -> str:
    """The error of a job that cannot run because a dependency ended ``how`` (dead, deleted).

    The database's triggers write the same text (migration 11); `revive` looks for it."""
    return f"dependency {job_id} {how}"
