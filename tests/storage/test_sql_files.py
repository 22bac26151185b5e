"""The SQL files: one set of statement names for both dialects, each dialect's own apart.

A statement the SQL core runs (storage/core.py) must exist in both dialects under one name,
so adding a storage feature means writing it in both files, not in Python.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from forge_nb.storage import core
from forge_nb.storage.schema import DIALECT_QUERIES, SHARED_QUERIES, load_queries, read_query_file

STORAGE = Path(core.__file__).parent


def test_both_dialects_share_the_same_statement_names() -> None:
    sqlite = set(read_query_file("sqlite", SHARED_QUERIES))
    postgres = set(read_query_file("postgres", SHARED_QUERIES))
    assert sqlite == postgres, {
        "only in sqlite/queries.sql": sorted(sqlite - postgres),
        "only in postgres/queries.sql": sorted(postgres - sqlite),
    }


def test_dialect_files_hold_only_what_the_other_dialect_lacks() -> None:
    for backend, other in (("sqlite", "postgres"), ("postgres", "sqlite")):
        own = set(read_query_file(backend, DIALECT_QUERIES))
        assert own, f"{backend}/{DIALECT_QUERIES} is empty"
        assert not own & set(load_queries(other)), f"{backend}: move these to {SHARED_QUERIES}"


def test_every_statement_the_core_runs_is_in_the_shared_files() -> None:
    source = Path(core.__file__).read_text()
    named = set(re.findall(r'self\._(?:select|select_one|change)\(\s*"([a-z_0-9]+)"', source))
    named |= set(re.findall(r'\(\s*"([a-z_0-9]+)",\s*(?:params|\[)', source))
    named |= set(re.findall(r'self\.Q\["([a-z_0-9]+)"', source))
    assert len(named) > 30
    shared = set(read_query_file("sqlite", SHARED_QUERIES))
    assert named <= shared, sorted(named - shared)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_every_statement_is_used_by_the_code(backend: str) -> None:
    code = "\n".join(p.read_text() for p in STORAGE.glob("*.py"))
    unused = [name for name in load_queries(backend) if f'"{name}"' not in code]
    assert not unused, f"{backend}: statements no code runs: {unused}"
