"""The dashboard's flow-control views: rate-limit templates with their busiest buckets."""

from __future__ import annotations

from forge_nb.dashboard.rate_templates import templates_html
from forge_nb.storage.records import RateLimit, RateLimitTemplate

NOW = 1_700_000_000.0


def test_templates_list_their_busiest_live_buckets_escaped() -> None:
    templates = [RateLimitTemplate("stripe:*", 10, 5), RateLimitTemplate("<b>:*", 1, 1)]
    busiest = [
        RateLimit("stripe:42", 10, 5, 2.0, NOW - 0.2, held_until=NOW + 30, template="stripe:*"),
        RateLimit("stripe:7", 10, 5, 10.0, NOW - 90, template="stripe:*"),
    ]
    html = templates_html(templates, busiest, NOW)
    assert "stripe:*" in html and "stripe:42" in html and "stripe:7" in html
    assert "3.0 / 10.0" in html, "tokens as of now (refilled 0.2 s at 5/s)"
    assert "drained for" in html and "2 shown" in html and "0 shown" in html
    assert "<b>:*" not in html and "&lt;b&gt;:*" in html
    assert templates_html([], busiest, NOW) == ""
