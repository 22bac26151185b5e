"""The inspector and a JobRef's live view show a job's flow columns (issue 20): its
concurrency key (and that it is held behind its key's limit) and its expiry deadline."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta

from forge_nb.dashboard.pages.inspector import render_job
from forge_nb.notebook.refs_view import flow_note
from forge_nb.storage.records import JobRecord


def held_job() -> JobRecord:
    now = datetime.now(UTC)
    return JobRecord(
        "9", "charge", "q", "waiting", 0, 0, 3, {}, None, None, None, None, None, None,
        now, now, None, None, None, None,
        expires_at=datetime(2030, 1, 2, 3, 4, 5, tzinfo=UTC), concurrency_key="charge/<c1>",
    )  # fmt: skip


def test_the_inspector_shows_the_key_held_and_the_expiry() -> None:
    html = render_job(held_job(), [], time.time())
    assert "concurrency key" in html and "charge/&lt;c1&gt;" in html
    assert "held: its key is at its limit" in html
    assert "2030-01-02 03:04:05" in html
    plain = render_job(replace(held_job(), concurrency_key=None, expires_at=None), [], 0.0)
    assert "held" not in plain


def test_a_jobref_view_says_what_holds_a_job() -> None:
    job = held_job()
    assert flow_note(job) == (
        "held: key charge/<c1> is at its limit; expires 2030-01-02 03:04:05 UTC"
    )
    running = replace(job, status="running", expires_at=None)
    assert flow_note(running) == ""
    waiting_deps = replace(job, waiting_on=1, expires_at=None)
    assert flow_note(waiting_deps) == "", "waiting for dependencies, not for its key"
    pending = replace(
        job,
        status="pending",
        concurrency_key=None,
        expires_at=datetime.now(UTC) + timedelta(minutes=5),
    )
    assert flow_note(pending).startswith("expires ")
