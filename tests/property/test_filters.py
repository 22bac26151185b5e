"""Filters with SQL metacharacters: `app.jobs(search=, kind=, queue=)` never errors, matches literally.

The dashboard's filter boxes and ``GET /api/jobs?search=…`` pass user text
straight to these arguments. Whatever the text — ``%``, ``_``, ``\\``, quotes,
``--``, Unicode — the answer is exactly the jobs a plain substring (search,
ASCII case folded as documented) or equality (kind, queue) would give.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st

import forge_nb as fnb

from .conftest import DB_SETTINGS

pytestmark = pytest.mark.slow


TRICKY = ["%", "_", "\\", "'", '"', "''", "%%", "\\%", "\\_", "[a]", "^", "*", "?", ";", "--",
          "/*", "*/", "\\\\", "%_%", "é", "É", "ß", "ǅ", "🦄", "\u200d", "\t", "\n", " "]  # fmt: skip
NAMES = ["plain", "a%b", "a_b", "ab", "aXb", "o'brien", 'say "hi"', "back\\slash", "50%",
         "x; DROP TABLE forge_nb_jobs; --", "Ünïcode", "ünïcode", "UPPER", "upper", "tab\there"]  # fmt: skip
VALUES = [*NAMES, "100% sure", "under_score", "C:\\temp\\new", "it's", "ÉCOLE", "école", "🦄🌈", ""]


def ascii_fold(text: str) -> str:
    """Lower-case A-Z only (the documented case folding of search)."""
    return text.translate({c: c + 32 for c in range(ord("A"), ord("Z") + 1)})


def payload_text(payload: dict[str, Any]) -> str:
    """The payload as stored (compact JSON, Unicode kept): what search looks through."""
    return json.dumps(payload, separators=(",", ":"), ensure_ascii=False)


class Seeded:
    """The app and the jobs put in it (short repr: hypothesis prints it on failure)."""

    def __init__(self, app: fnb.App, jobs: list[fnb.JobRecord]) -> None:
        self.app = app
        self.jobs = jobs

    def __repr__(self) -> str:
        return f"<{len(self.jobs)} seeded jobs>"


@pytest.fixture
async def seeded(app: fnb.App) -> AsyncIterator[Seeded]:
    """Jobs whose kinds, queues and payloads are full of metacharacters (made once per test)."""
    requests = [
        fnb.EnqueueRequest(
            kind=NAMES[i % len(NAMES)],
            queue=NAMES[(i * 7 + 3) % len(NAMES)],
            payload={"v": VALUES[i % len(VALUES)], "w": VALUES[(i * 5 + 1) % len(VALUES)]},
        )
        for i in range(3 * len(VALUES))
    ]
    await app.enqueue_many(requests)
    yield Seeded(app, await app.jobs(limit=1000))


FILTER_TEXT = (
    st.lists(st.sampled_from(TRICKY + NAMES + VALUES), min_size=1, max_size=3).map("".join)
    | st.text(max_size=12)
    | st.sampled_from(NAMES + VALUES).flatmap(
        lambda v: st.tuples(st.integers(0, len(v)), st.integers(0, len(v))).map(
            lambda ij: v[min(ij) : max(ij)]
        )
    )
)


def ids(jobs: list[fnb.JobRecord]) -> set[str]:
    return {j.id for j in jobs}


@DB_SETTINGS
@given(text=FILTER_TEXT)
@example(text="%")
@example(text="_")
@example(text="\\")
@example(text="a%b")
@example(text="\\%")
@example(text="'")
@example(text="' OR '1'='1")
@example(text="upper")
@example(text="É")
@example(text="\x00")
async def test_search_is_a_literal_substring_of_the_payload(seeded: Seeded, text: str) -> None:
    app, jobs = seeded.app, seeded.jobs
    if "\x00" in text:  # no stored text holds NUL: refused clearly on both backends
        with pytest.raises(ValueError, match="NUL"):
            await app.jobs(search=text, limit=1000)
        return
    found = await app.jobs(search=text, limit=1000)
    if not text:
        assert ids(found) == ids(jobs)  # an empty search filters nothing
        return
    expected = {j.id for j in jobs if ascii_fold(text) in ascii_fold(payload_text(j.payload))}
    assert ids(found) == expected, (text, len(found), len(expected))


@DB_SETTINGS
@given(text=FILTER_TEXT)
@example(text="a%b")
@example(text="a_b")
@example(text="%")
@example(text="UPPER")
@example(text="back\\slash")
@example(text="\x00")
async def test_kind_and_queue_filters_are_exact(seeded: Seeded, text: str) -> None:
    app, jobs = seeded.app, seeded.jobs
    if "\x00" in text:
        for filters in ({"kind": text}, {"queue": text}):
            with pytest.raises(ValueError, match="NUL"):
                await app.jobs(**filters)  # type: ignore[arg-type]
        return
    assert ids(await app.jobs(kind=text, limit=1000)) == {j.id for j in jobs if j.kind == text}
    assert ids(await app.jobs(queue=text, limit=1000)) == {j.id for j in jobs if j.queue == text}
    combined = await app.jobs(kind=text, queue=text, search=text, limit=1000)
    assert all(j.kind == j.queue == text for j in combined)


@DB_SETTINGS
@given(text=st.text(min_size=1, max_size=30))
@example(text="\x00")
@example(text="a\x00b")
async def test_any_text_in_any_filter_answers_or_refuses_nul_clearly(
    seeded: Seeded, text: str
) -> None:
    app = seeded.app
    for status in (None, "pending"):
        try:
            await app.jobs(status=status, kind=text, queue=text, search=text)
            await app.jobs_page(search=text)
        except ValueError as exc:
            assert "\x00" in text and "NUL" in str(exc), (text, exc)
    await app.counts()


async def test_a_lone_surrogate_in_a_filter_finds_nothing_or_is_a_clear_value_error(
    request: pytest.FixtureRequest, seeded: Seeded
) -> None:
    for filters in ({"search": "\ud800"}, {"kind": "a\udfff"}, {"queue": "\ud800"}):
        try:
            assert await seeded.app.jobs(**filters) == []  # type: ignore[arg-type]
        except ValueError as exc:
            assert "surrogate" in str(exc) or "Unicode" in str(exc), exc


async def test_a_very_long_search_is_answered_not_refused(
    request: pytest.FixtureRequest, seeded: Seeded
) -> None:
    app = seeded.app
    for text in ("x" * 60_000, "%" * 60_000):
        try:
            assert await app.jobs(search=text) == []
        except ValueError as exc:  # a stated limit is fine too
            assert "search" in str(exc), exc


@given(name=st.sampled_from(["a\x00b", "\x00", "tab\tname", "line\nbreak", "\x7f", "\u2028"]))
@example(name="a\x00b")
@DB_SETTINGS
async def test_control_characters_in_names_are_stored_or_refused_alike_on_both_backends(
    app: fnb.App, name: str
) -> None:
    """A kind or queue name is either stored as given or a ValueError (never a driver error)."""
    for job in (fnb.EnqueueRequest(kind=name), fnb.EnqueueRequest(kind="k", queue=name)):
        try:
            ref = await app.enqueue(job)
        except ValueError as exc:
            assert "kind" in str(exc) or "queue" in str(exc), exc
            continue
        job = await app.job(ref.id)
        assert job is not None and name in (job.kind, job.queue)
        assert [j.id for j in await app.jobs(kind=job.kind, queue=job.queue)] == [ref.id]
        await app.delete(ref.id)
