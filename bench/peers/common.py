"""Shared plumbing for the peer scenario scripts: arguments, percentiles, exactly-once checks.

The peer scripts run in a separate venv (no forge_nb there), so this module imports
nothing beyond the standard library. Each script prints exactly one JSON line on stdout;
everything else goes to stderr so compare.py can parse stdout blindly.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections import Counter
from collections.abc import Iterable
from importlib.metadata import version
from typing import Any

BATCH = 10_000  # same bulk batch size as bench/run.py


def parse_args(description: str, needs_dsn: bool) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=description)
    if needs_dsn:
        parser.add_argument("--dsn", required=True, help="an empty Postgres database")
    else:
        parser.add_argument("--dir", required=True, help="a directory for the SQLite file")
    parser.add_argument("--jobs", type=int, default=10_000, help="jobs for bulk and drain")
    parser.add_argument("--enqueue-one", type=int, default=3_000)
    parser.add_argument("--latency-jobs", type=int, default=300)
    parser.add_argument("--workers", type=int, default=50, help="concurrency, where tunable")
    return parser.parse_args()


def percentile(values: list[float], q: float) -> float:
    """Same nearest-rank definition as bench/run.py, so the columns compare."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def batches(n: int, size: int = BATCH) -> Iterable[range]:
    for offset in range(0, n, size):
        yield range(offset, min(n, offset + size))


def check_exactly_once(expected: Iterable[Any], executions: Iterable[Any], what: str) -> None:
    """Every expected job id executed once, nothing else executed. Exits loudly otherwise."""
    wanted = set(expected)
    seen = Counter(executions)
    missing = wanted - seen.keys()
    extra = seen.keys() - wanted
    twice = [k for k, c in seen.items() if c > 1]
    if missing or extra or twice:
        raise SystemExit(
            f"{what}: exactly-once check failed: {len(missing)} never ran, "
            f"{len(extra)} unexpected, {len(twice)} ran more than once (of {len(wanted)})"
        )


def check_count(actual: int, expected: int, what: str) -> None:
    if actual != expected:
        raise SystemExit(f"{what}: expected {expected} jobs stored, found {actual}")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def emit(peer: str, packages: list[str], result: dict[str, Any]) -> None:
    """The one JSON line compare.py reads."""
    line = {"peer": peer, "versions": {p: version(p) for p in packages}, **result}
    print(json.dumps(line), flush=True)
