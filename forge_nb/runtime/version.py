"""forge-nb's version, as installed (pyproject.toml is the one place it is written)."""

from __future__ import annotations

from importlib import metadata


def installed_version() -> str:
    """The installed distribution's version (a source tree run without installing says so)."""
    try:
        return metadata.version("forge-nb")
    except metadata.PackageNotFoundError:
        return "0+unknown"


VERSION = installed_version()
