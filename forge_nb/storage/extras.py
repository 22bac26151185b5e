"""What a job may carry beside its row (SPEC §9.4), each in its own table so jobs without
cost nothing: tags and a propagated context. Checked before anything is written.

A tag is a short label (``"etl"``, ``"customer:42"``) that the Jobs table, ``app.jobs(tag=)``
and ``GET /api/jobs?tag=`` filter by. They live in ``forge_nb_job_tags`` rather than on the
job row, so the filter reads one index range newest first and jobs without tags cost nothing.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from forge_nb.storage.records import EnqueueResult, NewJob
from forge_nb.storage.validation import dump_json, in_batch, is_unicode

#: At most this many tags per job, each at most this many characters.
MAX_TAGS = 16
MAX_TAG_LENGTH = 100


def check_tags(tags: Any) -> tuple[str, ...]:
    """``tags`` as a tuple of distinct strings, in order; ValueError for anything else."""
    if tags is None or (type(tags) is tuple and not tags):  # the default: no ABC checks
        return ()
    if isinstance(tags, str | bytes) or not isinstance(tags, Sequence | set | frozenset):
        raise ValueError(f"tags must be a list of strings, got {tags!r}")
    clean: list[str] = []
    for tag in tags:
        if not isinstance(tag, str) or not tag.strip() or "\x00" in tag:
            raise ValueError(f"each tag must be a non-empty string without NUL, got {tag!r}")
        if len(tag) > MAX_TAG_LENGTH:
            raise ValueError(f"tag {tag[:20]!r}… is longer than {MAX_TAG_LENGTH} characters")
        if not is_unicode(tag):
            raise ValueError(f"tag {tag!r} is not valid Unicode")
        if tag not in clean:
            clean.append(tag)
    if len(clean) > MAX_TAGS:
        raise ValueError(f"a job takes at most {MAX_TAGS} tags, got {len(clean)}")
    return tuple(clean)


def tag_links(jobs: Sequence[NewJob]) -> list[tuple[int, tuple[str, ...]]]:
    """(index in the batch, tags) of each job that has tags; checks them all first."""
    links = []
    for index, job in enumerate(jobs):
        tags = job.tags
        if type(tags) is tuple and not tags:  # the default: not even a call (once per job)
            continue
        try:
            tags = check_tags(tags)
        except ValueError as exc:
            raise in_batch(exc, index, len(jobs)) from None
        if tags:
            links.append((index, tags))
    return links


def created_tag_rows(
    results: Sequence[EnqueueResult], links: Sequence[tuple[int, tuple[str, ...]]]
) -> list[tuple[str, int]]:
    """(tag, job key) rows for the jobs of ``links`` that were created (not duplicates)."""
    return [
        (tag, int(results[index].id))
        for index, tags in links
        if results[index].outcome == "created"
        for tag in tags
    ]


def attach(records: list[Any], found: Sequence[Any]) -> list[Any]:
    """``records`` (JobRecords) with their tags from ``job_tags`` rows (job key, tag)."""
    if not found:
        return records
    by_job: dict[str, list[str]] = {}
    for key, tag in found:
        by_job.setdefault(str(key), []).append(tag)
    return [r.with_tags(tuple(by_job[r.id])) if r.id in by_job else r for r in records]


@dataclass
class Extras:
    """A batch's tags and contexts, by index in the batch (checked)."""

    tags: list[tuple[int, tuple[str, ...]]] = field(default_factory=list)
    #: (index, the context as JSON text).
    contexts: list[tuple[int, str]] = field(default_factory=list)

    def __bool__(self) -> bool:
        return bool(self.tags or self.contexts)


def extras_of(jobs: Sequence[NewJob]) -> Extras:
    """The batch's tags and contexts; ValueError (naming the job) before anything is written."""
    contexts = []
    for index, job in enumerate(jobs):
        if job.context:
            try:
                contexts.append((index, dump_json(dict(job.context), what="the job's context")))
            except ValueError as exc:
                raise in_batch(exc, index, len(jobs)) from None
    return Extras(tag_links(jobs), contexts)


def context_rows(results: Sequence[EnqueueResult], extras: Extras) -> list[tuple[int, str]]:
    """(job key, context JSON) rows for the created jobs that carry a context."""
    return [
        (int(results[index].id), text)
        for index, text in extras.contexts
        if results[index].outcome == "created"
    ]


def load_contexts(found: Sequence[Any]) -> dict[str, dict[str, Any]]:
    """``job_contexts`` rows as ``{job id: context}``."""
    return {str(key): json.loads(text) for key, text in found}
