"""Flow control on the runtime side (SPEC §9.3): a kind's policy (concurrency key, retry_on,
backoff) and the flow options an enqueue hands the storage."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from forge_nb.storage.flow_rules import MAX_KEY_LIMIT

if TYPE_CHECKING:
    from forge_nb.runtime.handlers import Handler
    from forge_nb.runtime.refs import EnqueueRequest
    from forge_nb.storage.records import NewJob


@dataclass(frozen=True, slots=True)
class KindPolicy:
    """What ``@app.job`` was given beyond the basics: per-key limits and retry rules."""

    #: A payload field name, or a callable of the payload returning the key (None: no key).
    concurrency_key: str | Callable[[Mapping[str, Any]], Any] | None = None
    key_limit: int | None = None
    #: Exception types worth a retry; any other exception ends the job dead at once.
    retry_on: tuple[type[BaseException], ...] | None = None
    #: Seconds to wait before attempt ``n + 1`` after attempt ``n`` failed (overrides the
    #: queue's curve).
    backoff: Callable[[int], float] | None = None

    def describe(self) -> str:
        """One line for the dashboard's kind list."""
        parts = []
        if self.concurrency_key is not None:
            key = self.concurrency_key
            name = key if isinstance(key, str) else getattr(key, "__name__", "callable")
            parts.append(f"{self.key_limit} per {name}")
        if self.retry_on is not None:
            parts.append("retry on " + ", ".join(t.__name__ for t in self.retry_on))
        if self.backoff is not None:
            parts.append("backoff " + getattr(self.backoff, "__name__", "callable"))
        return "; ".join(parts)


def kind_policy(
    concurrency_key: Any = None, key_limit: Any = None, retry_on: Any = None, backoff: Any = None
) -> KindPolicy | None:
    """Check ``@app.job``'s flow arguments (a clear ValueError or TypeError, nothing
    registered); None when none is given."""
    if concurrency_key is None and key_limit is None and retry_on is None and backoff is None:
        return None
    if concurrency_key is not None or key_limit is not None:
        if isinstance(key_limit, bool) or not isinstance(key_limit, int):
            raise ValueError(
                f"key_limit must be an int >= 1 with concurrency_key, got {key_limit!r}"
            )
        if not 1 <= key_limit <= MAX_KEY_LIMIT:
            raise ValueError(
                f"key_limit must be an int from 1 to {MAX_KEY_LIMIT}, got {key_limit!r}"
            )
        if not (isinstance(concurrency_key, str) and concurrency_key) and not callable(
            concurrency_key
        ):
            raise ValueError(
                "concurrency_key must be a payload field name or a callable of the payload, "
                f"got {concurrency_key!r}"
            )
    if retry_on is not None:
        if isinstance(retry_on, type):
            retry_on = (retry_on,)
        retry_on = tuple(retry_on)
        if not all(isinstance(t, type) and issubclass(t, BaseException) for t in retry_on):
            raise TypeError(f"retry_on must be exception types, got {retry_on!r}")
    if backoff is not None and not callable(backoff):
        raise TypeError(f"backoff must be a callable of the attempt number, got {backoff!r}")
    return KindPolicy(concurrency_key, key_limit, retry_on, backoff)


def key_of(policy: KindPolicy, payload: Mapping[str, Any]) -> str | None:
    """The concurrency key of one payload (a field's value, or the callable's answer)."""
    key = policy.concurrency_key
    if key is None:
        return None
    if isinstance(key, str):
        if key not in payload:
            raise ValueError(f"concurrency_key field {key!r} is not in the payload")
        value = payload[key]
    else:
        value = key(payload)
    if value is None:
        return None
    return value if isinstance(value, str) else json.dumps(value, sort_keys=True, default=str)


def set_flow_fields(
    job: NewJob, request: EnqueueRequest, handler: Handler | None, payload: Mapping[str, Any]
) -> None:
    """Set ``job``'s flow-control fields from its request and kind (none for a plain job).

    `App._new_job` skips the call when none of what is read here is set (a bulk enqueue
    makes one job per request): a new option read here belongs in its test too."""
    if request.expires_in is not None:
        job.expires_in = _seconds(request.expires_in)
    if request.unique_for is not None:
        job.unique_for = _seconds(request.unique_for)
    if request.on_conflict != "ignore":
        job.on_conflict = request.on_conflict
    policy = handler.policy if handler is not None else None
    if policy is not None and policy.concurrency_key is not None:
        key = key_of(policy, payload)
        if key is not None:
            job.concurrency_key = key
            job.key_limit = policy.key_limit


def _seconds(value: Any) -> Any:
    """A timedelta as seconds; anything else as given (the storage checks it)."""
    seconds = getattr(value, "total_seconds", None)
    return seconds() if callable(seconds) else value


def backoff_delay(policy: KindPolicy | None, attempt: int) -> float | None:
    """The kind's own backoff for a failed ``attempt`` (None: the queue's curve)."""
    if policy is None or policy.backoff is None:
        return None
    delay = float(policy.backoff(attempt))
    if not math.isfinite(delay) or delay < 0:
        raise ValueError(f"backoff({attempt}) returned {delay!r}; it must be seconds >= 0")
    return delay


def retryable(policy: KindPolicy | None, error: BaseException) -> bool:
    """Whether ``error`` may be retried under the kind's ``retry_on`` (all, without one)."""
    return policy is None or policy.retry_on is None or isinstance(error, policy.retry_on)


def kind_policies(registry: Any) -> list[dict[str, Any]]:
    """One row per kind a `HandlerRegistry` runs, with its flow policy (for the dashboard)."""
    rows = []
    for kind in registry.user_kinds():
        handler = registry.get(kind)
        if handler is None:
            continue
        policy = handler.policy
        rows.append(
            {
                "kind": kind,
                "queue": handler.queue or "",
                "max attempts": handler.max_attempts,
                "per process": "" if handler.concurrency is None else handler.concurrency,
                "policy": policy.describe() if policy is not None else "",
            }
        )
    return rows


def keyed(handler: Handler | None) -> bool:
    """Whether a kind's runs hold a per-key slot (freed only when their finish commits)."""
    return (
        handler is not None and handler.policy is not None and handler.policy.key_limit is not None
    )
