"""The throughput series behind the widget's sparkline, from successive count snapshots."""

from __future__ import annotations

from forge_nb.notebook.snapshot import DeltaThroughput, result_text, truncate


def counts(done: int, dead: int = 0, pending: int = 0) -> dict[str, int]:
    return {"pending": pending, "running": 0, "failed": 0, "done": done, "dead": dead}


def test_rates_are_finished_jobs_per_second_between_snapshots() -> None:
    t = DeltaThroughput(samples=3)
    t.observe({"q": counts(0)}, now=100.0)
    assert t.series("q") == []  # one snapshot: no rate yet
    t.observe({"q": counts(10, dead=2)}, now=102.0)
    t.observe({"q": counts(12, dead=2)}, now=103.0)
    assert t.series("q") == [6.0, 2.0]


def test_shrinking_totals_count_as_zero_and_the_series_is_bounded() -> None:
    t = DeltaThroughput(samples=3)
    for i, done in enumerate([50, 40, 45, 45, 46]):  # retention or retries shrink totals
        t.observe({"q": counts(done)}, now=float(i))
    assert t.series("q") == [5.0, 0.0, 1.0]
    assert t.series("unknown") == []


def test_results_become_readable_bounded_text() -> None:
    assert result_text({"a": [1, 2]}) == '{\n  "a": [\n    1,\n    2\n  ]\n}'
    assert result_text(None) == "null"
    cut = truncate("x" * 5000, limit=10)
    assert cut.startswith("x" * 10) and cut.endswith("(4990 more characters)")


def test_the_live_rate_is_jobs_per_minute_over_the_last_seconds() -> None:
    t = DeltaThroughput()
    t.observe({"q": counts(0)}, now=100.0)
    assert t.per_minute("q") is None  # one snapshot: no rate yet
    t.observe({"q": counts(2)}, now=101.0)
    t.observe({"q": counts(4, dead=1)}, now=102.0)
    assert t.per_minute("q") == 150.0  # 5 jobs in 2 s
    t.observe({"q": counts(5, dead=1)}, now=130.0)  # older deltas left the 15 s window
    assert t.per_minute("q") == 2.1  # 1 job in the 28 s since the last kept snapshot
