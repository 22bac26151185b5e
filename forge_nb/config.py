"""Where the database is: URL resolution, parsing and password masking."""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from forge_nb.errors import InvalidDatabaseUrl

ENV_DATABASE_URL = "FORGE_NB_DATABASE_URL"
ENV_DATA_DIR = "FORGE_NB_DATA_DIR"
ENV_QUEUES = "FORGE_NB_QUEUES"
DEFAULT_DB_FILENAME = "forge_nb.db"

SQLITE_SCHEMES = ("sqlite",)
POSTGRES_SCHEMES = ("postgres", "postgresql")


def data_dir() -> Path:
    """`FORGE_NB_DATA_DIR`, else ``./.forge_nb``."""
    return Path(os.environ.get(ENV_DATA_DIR) or ".forge_nb")


def resolve_url(url: str | None) -> str:
    """The explicit URL, else `FORGE_NB_DATABASE_URL`, else the embedded SQLite file."""
    if url:
        return url
    env = os.environ.get(ENV_DATABASE_URL)
    if env:
        return env
    return f"sqlite:///{(data_dir() / DEFAULT_DB_FILENAME).resolve()}"


#: Query parameters whose values are secrets (libpq's ``password``/``sslpassword`` among them).
_SECRET_PARAM = re.compile(r"(?i)pass|pwd|secret|token|key")


def mask_url(url: str) -> str:
    """The URL with any password replaced by ``***``: safe for logs, errors and the UI.

    Both places a password can be: ``user:pw@host`` and a query parameter
    (``?password=…``, ``?sslpassword=…``, anything naming a pass, secret, token or key).
    """
    try:
        parts = urlsplit(url)
    except ValueError:
        return "<unparseable database URL>"
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        user = parts.username or ""
        host = parts.hostname or ""
        if ":" in host:
            host = f"[{host}]"
        try:
            port = parts.port
        except ValueError:
            port = None
        netloc = f"{user}:***@{host}" + (f":{port}" if port else "")
    if query:
        query = "&".join(_mask_param(item) for item in query.split("&"))
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))


def _mask_param(item: str) -> str:
    name, sep, value = item.partition("=")
    return f"{name}=***" if sep and value and _SECRET_PARAM.search(unquote(name)) else item


@dataclass(frozen=True, slots=True)
class DatabaseUrl:
    """A parsed database URL: which backend, and where."""

    backend: str  # "sqlite" or "postgres"
    url: str
    #: SQLite file path (``:memory:`` is refused: workers in other processes could not see it).
    path: Path | None = None

    @property
    def safe(self) -> str:
        """The URL without its password."""
        return mask_url(self.url)


def parse_url(url: str) -> DatabaseUrl:
    """Parse and check a database URL; `InvalidDatabaseUrl` names what is wrong."""
    if not isinstance(url, str) or "://" not in url:
        raise InvalidDatabaseUrl(
            f"malformed database URL {mask_url(str(url))!r}: expected "
            "sqlite:///path/to/file.db or postgresql://user:password@host:port/dbname"
        )
    scheme = url.split("://", 1)[0].lower()
    if scheme in SQLITE_SCHEMES:
        raw_path = url.split("://", 1)[1]
        if raw_path.startswith("/"):
            raw_path = raw_path[1:]  # sqlite:///rel.db → rel.db, sqlite:////abs.db → /abs.db
        raw_path = raw_path.split("?", 1)[0]
        if not raw_path or raw_path == ":memory:":
            raise InvalidDatabaseUrl(
                f"malformed database URL {url!r}: name a file, e.g. sqlite:///jobs.db"
            )
        return DatabaseUrl("sqlite", url, Path(raw_path))
    if scheme in POSTGRES_SCHEMES:
        try:
            parts = urlsplit(url)
            _ = parts.port
        except ValueError as exc:
            raise InvalidDatabaseUrl(f"malformed database URL {mask_url(url)!r}: {exc}") from None
        if not parts.hostname and "host=" not in parts.query:
            raise InvalidDatabaseUrl(f"malformed database URL {mask_url(url)!r}: no host")
        return DatabaseUrl("postgres", url)
    raise InvalidDatabaseUrl(
        f"unsupported database URL scheme {scheme!r} in {mask_url(url)!r}: "
        "use sqlite:/// or postgresql://"
    )
