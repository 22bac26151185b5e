"""How a run can end besides returning: the exceptions handlers raise, and backoff."""

from __future__ import annotations

import random
import traceback
from typing import Any

from forge_nb.errors import ForgeError
from forge_nb.storage.records import QueueConfig


class Throttled(Exception):
    """Raise in a handler to run the job again later without spending an attempt."""

    def __init__(self, retry_after: float = 1.0, message: str = "") -> None:
        super().__init__(message or f"throttled; retry after {retry_after} s")
        if retry_after < 0:
            raise ValueError(f"retry_after must be >= 0, got {retry_after!r}")
        self.retry_after = float(retry_after)


class Dead(Exception):
    """Raise in a handler to end the job ``dead`` at once, skipping retries."""


class RunnerError(Exception):
    """A failure of forge-nb's own machinery around a run (a process child died, a function
    could not be shipped): stored by its message alone, which already says what failed."""


class JobDead(ForgeError):
    """`JobRef.wait` raises this when the job ended ``dead``; ``.job`` is its record."""

    def __init__(self, job: Any) -> None:
        super().__init__(f"job {job.id} ({job.kind}) is dead: {job.last_error}")
        self.job = job


def error_chain(exc: BaseException) -> str:
    """``"top: middle: root"`` through ``__cause__``/``__context__``, each link ``Type: message``.

    The type is part of the truth: a pandas ``KeyError`` reads ``KeyError: 'missing'``, not
    a bare ``'missing'``. ``Dead("why")`` keeps just its reason (the user wrote it as one),
    and so does a `RunnerError` (its message names the part of forge-nb that failed).
    A link of the same type as the one above it, with the same message or none, adds
    nothing and is left out (pandas re-raises ``KeyError(key) from`` its own KeyError;
    a ``TimeoutError`` is re-raised with a message).
    """
    parts: list[str] = []
    seen: set[int] = set()
    above: tuple[type[BaseException], str] | None = None
    current: BaseException | None = exc
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        message = _message(current)
        if above is None or type(current) is not above[0] or message not in ("", above[1]):
            parts.append(_link(current, message))
        above = (type(current), message)
        current = current.__cause__ or (
            None if current.__suppress_context__ else current.__context__
        )
    return ": ".join(parts)


def _message(exc: BaseException) -> str:
    try:
        return str(exc)
    except Exception:  # a broken __str__ must not lose the rest of the chain
        return "<unprintable message>"


def _link(exc: BaseException, message: str) -> str:
    if isinstance(exc, (Dead, RunnerError)) and message:
        return message
    name = type(exc).__name__
    return f"{name}: {message}" if message else name


def format_traceback(exc: BaseException) -> str:
    """The full traceback, chained exceptions included."""
    return "".join(traceback.format_exception(exc))


def backoff_delay(config: QueueConfig, attempt: int, rng: random.Random | None = None) -> float:
    """Delay before retry ``attempt`` (from 1): min(max, base·2^(n−1)), full jitter if on."""
    if not config.backoff_enabled:
        return 0.0
    exponent = min(max(attempt, 1) - 1, 62)
    delay = min(config.backoff_max_seconds, config.backoff_base_seconds * 2.0**exponent)
    if config.backoff_jitter:
        delay = (rng or random).uniform(0.0, delay)
    return delay


def throttle_delay(config: QueueConfig, attempt: int, retry_after: float) -> float:
    """Throttled waits max(retry_after, backoff) when backoff is on, else retry_after."""
    if not config.backoff_enabled:
        return retry_after
    return max(retry_after, backoff_delay(config, attempt))
