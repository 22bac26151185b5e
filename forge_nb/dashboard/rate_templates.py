"""The Queues tab's rate-limit templates and the busiest buckets made from them."""

from __future__ import annotations

from forge_nb.dashboard.format import duration, esc
from forge_nb.storage.records import RateLimit, RateLimitTemplate
from forge_nb.storage.rules import tokens_now


def templates_html(templates: list[RateLimitTemplate], busiest: list[RateLimit], now: float) -> str:
    """Each template, then its live buckets used last (escaped); empty without templates."""
    if not templates:
        return ""
    by_template: dict[str, list[RateLimit]] = {}
    for bucket in busiest:
        by_template.setdefault(bucket.template or "", []).append(bucket)
    rows = []
    for t in templates:
        live = by_template.get(t.pattern, [])
        rows.append(
            f"<tr><td><b>{esc(t.pattern)}</b></td><td>{t.capacity:,.1f}</td>"
            f"<td>{t.refill_per_second:,.2f} /s</td><td>{len(live)} shown</td></tr>"
        )
        for b in live:
            held = f"drained for {duration(b.held_until - now)}" if b.held_until > now else ""
            rows.append(
                f"<tr><td style='padding-left:16px'>{esc(b.scope)}</td>"
                f"<td>{tokens_now(b, now):,.1f} / {b.capacity:,.1f}</td>"
                f"<td>used {duration(max(0.0, now - b.updated_at))} ago</td>"
                f"<td>{esc(held)}</td></tr>"
            )
    return (
        "<div style='font-size:13px;margin-top:6px' class='fnb-rate-templates'>"
        "<b>Rate-limit templates</b> (a bucket per scope, made on first use; idle ones are "
        "swept) with their busiest live buckets"
        "<table style='border-collapse:collapse;margin-top:4px'><tr><th align=left>template "
        "/ scope</th><th align=left>capacity / tokens</th><th align=left>refill / last use"
        f"</th><th></th></tr>{''.join(rows)}</table></div>"
    )
