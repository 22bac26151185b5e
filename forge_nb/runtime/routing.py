"""Routers pick the queue of a job whose request names none."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Protocol


class Router(Protocol):
    """Anything with ``route(kind) -> queue``."""

    def route(self, kind: str) -> str:
        """The queue for ``kind``."""
        ...


class DefaultRouter:
    """Every job goes to one queue (``default`` unless told otherwise)."""

    def __init__(self, queue: str = "default") -> None:
        self.queue = queue

    def route(self, kind: str) -> str:
        """Always the same queue."""
        return self.queue


class KindPrefixRouter:
    """The queue of the longest matching kind prefix, e.g. ``{"slack.": "slack"}``."""

    def __init__(self, prefixes: Mapping[str, str], default: str = "default") -> None:
        self.prefixes = sorted(prefixes.items(), key=lambda item: len(item[0]), reverse=True)
        self.default = default

    def route(self, kind: str) -> str:
        """Longest prefix wins; ``default`` when none matches."""
        for prefix, queue in self.prefixes:
            if kind.startswith(prefix):
                return queue
        return self.default
