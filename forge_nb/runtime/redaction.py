"""Masking the payload fields a kind declares secret (``@app.job(redact=[...])``).

The fields stay stored (the job needs them); every view reads jobs through the App, which
masks them, at any depth of the payload, in what it hands out: the dashboard, the API, the
widget, the CLI and the per-job logs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection, Iterable
from typing import Any

from forge_nb.storage.records import JobRecord
from forge_nb.storage.validation import dump_json

#: What a redacted value reads as.
MASK = "[redacted]"
#: At most this many fields per kind, each a non-empty name of at most 100 characters.
MAX_FIELDS = 64


def check_redact(fields: Iterable[str] | None) -> tuple[str, ...]:
    """``redact=`` as a tuple of field names; ValueError for anything else."""
    if fields is None:
        return ()
    if isinstance(fields, str | bytes):
        raise ValueError(f"redact must be a list of payload field names, got {fields!r}")
    names = tuple(dict.fromkeys(fields))
    for name in names:
        if not isinstance(name, str) or not name or len(name) > 100:
            raise ValueError(f"redact: each field must be a name of 1-100 characters, got {name!r}")
    if len(names) > MAX_FIELDS:
        raise ValueError(f"redact takes at most {MAX_FIELDS} fields, got {len(names)}")
    return names


def mask(value: Any, fields: Collection[str]) -> Any:
    """``value`` with every dict entry named in ``fields`` replaced by `MASK`, at any depth."""
    if isinstance(value, dict):
        return {k: MASK if k in fields else mask(v, fields) for k, v in value.items()}
    if isinstance(value, list):
        return [mask(v, fields) for v in value]
    return value


def secrets_in(payload: Any, fields: Collection[str]) -> list[str]:
    """The string values of redacted fields (what a job's log lines must not show)."""
    found: list[str] = []
    if isinstance(payload, dict):
        for k, v in payload.items():
            if k in fields and v is not None and not isinstance(v, dict | list):
                text = str(v)
                if len(text) >= 3:  # masking "1" everywhere would garble the log
                    found.append(text)
            else:
                found += secrets_in(v, fields)
    elif isinstance(payload, list):
        for v in payload:
            found += secrets_in(v, fields)
    return found


def scrub(text: str, secrets: Collection[str]) -> str:
    """``text`` with each secret value replaced by `MASK`."""
    for secret in sorted(secrets, key=len, reverse=True):
        if secret in text:
            text = text.replace(secret, MASK)
    return text


def shows(job: JobRecord, search: str) -> bool:
    """Whether a payload ``search`` matches ``job``'s payload as shown (as the storage's
    search does: in its JSON text, ASCII case folded)."""
    return _fold(search) in _fold(dump_json(job.payload, what="payload"))


def _fold(text: str) -> str:
    return text.translate(_ASCII_LOWER)


_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")


def masked(job: JobRecord, redactions: dict[str, tuple[str, ...]]) -> JobRecord:
    """``job`` with its kind's redacted fields masked (itself when its kind redacts none)."""
    fields = redactions.get(job.kind)
    if not fields:
        return job
    return dataclasses.replace(job, payload=mask(job.payload, fields))
