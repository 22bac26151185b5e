"""Versioned migrations: numbered ``.sql`` files per backend, shipped as package data."""

from __future__ import annotations

import re
from importlib import resources

MIGRATION_FILE = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")
#: Table recording applied versions; its presence marks a forge-nb database.
VERSION_TABLE = "forge_nb_schema"


def load_migrations(backend: str) -> list[tuple[int, str]]:
    """``[(version, sql)]`` in version order for ``backend`` ("sqlite" or "postgres")."""
    folder = resources.files("forge_nb.storage") / "migrations" / backend
    found = []
    for entry in folder.iterdir():
        match = MIGRATION_FILE.match(entry.name)
        if match:
            found.append((int(match.group(1)), entry.read_text(encoding="utf-8")))
    return sorted(found)


def latest_version(backend: str) -> int:
    """The newest migration this code knows for ``backend``."""
    migrations = load_migrations(backend)
    return migrations[-1][0] if migrations else 0
