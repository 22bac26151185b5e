"""Storage layer: one contract (`Storage`), SQLite and Postgres implementations."""

from __future__ import annotations

from forge_nb.config import parse_url, resolve_url
from forge_nb.storage.base import Storage


def create_storage(url: str | None = None) -> Storage:
    """Build (not open) the storage for ``url``; `InvalidDatabaseUrl` if malformed."""
    parsed = parse_url(resolve_url(url))
    if parsed.backend == "sqlite":
        from forge_nb.storage.sqlite import SqliteStorage

        return SqliteStorage(parsed)
    from forge_nb.storage.postgres import PostgresStorage

    return PostgresStorage(parsed)


async def open_storage(url: str | None = None) -> Storage:
    """Open the storage for ``url`` (pinned): connects and applies migrations."""
    storage = create_storage(url)
    await storage.open()
    return storage


__all__ = ["Storage", "create_storage", "open_storage"]
