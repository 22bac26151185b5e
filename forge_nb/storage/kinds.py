"""Claims by kind: the kinds a claim statement names, one UNION ALL arm each.

A process claims only the kinds it runs. Each kind's runnable jobs are one ordered range
of the claim index (queue, kind, priority DESC, scheduled_at, id), and the claim merges
the ranges of its kinds in claim order, so jobs of kinds it does not run cost nothing
however many wait ahead. Both backends build that statement from named ``claim_kinds`` and
``claim_arm`` queries; this module decides how many arms it has.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

#: Arm counts up to this are rounded up to a power of two (padded with NULL kinds, which
#: match nothing), so a process prepares a handful of statement texts however its kind set
#: changes (a kind at its concurrency limit drops out of the claim until a run ends).
PAD_UP_TO = 256


def claim_arms(kinds: Iterable[str]) -> list[str | None]:
    """The distinct kinds, sorted, padded with None to the statement's arm count."""
    found: list[str | None] = list(sorted(set(kinds)))
    n = len(found)
    if 0 < n <= PAD_UP_TO:
        found += [None] * ((1 << (n - 1).bit_length()) - n)
    return found


def build_claim(template: str, arm: str, arms: int, placeholder: Callable[[int], str]) -> str:
    """``template`` with ``{arms}`` replaced by ``arms`` copies of ``arm`` joined by UNION ALL.

    Arm ``i`` gets ``placeholder(i)`` for its ``{kind}``.
    """
    body = "\nUNION ALL\n".join(arm.replace("{kind}", placeholder(i)) for i in range(arms))
    return template.replace("{arms}", body)
