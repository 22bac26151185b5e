"""`App`'s shipped code (see forge_nb.runtime.shipped_code): packing and signing the
handlers it registers, publishing them, and choosing the code a job runs. A mixin of
`App` (kept apart so app.py holds jobs, workers and admin)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from forge_nb.runtime.handlers import BUILTIN_PREFIX, Handler
from forge_nb.runtime.shipped_code import ShippedCatalogue, code_keys
from forge_nb.runtime.shipped_code import build as build_shipped
from forge_nb.runtime.version import VERSION

if TYPE_CHECKING:
    from forge_nb.runtime.handlers import HandlerRegistry
    from forge_nb.storage.base import Storage
    from forge_nb.storage.records import ShippedCode

log = logging.getLogger("forge_nb.app")


class CodeShipping:
    """Shipping this App's handlers to the database, and running shipped ones."""

    if TYPE_CHECKING:
        handlers: HandlerRegistry
        run_shipped_code: bool
        shipped: ShippedCatalogue | None
        _shipped_versions: dict[str, str]
        _unpublished: dict[str, ShippedCode]
        _code_keys: list[bytes] | None

        async def storage(self) -> Storage: ...

    def _use_shipped_code(self, what: str) -> None:
        """Read the signing keys (a clear error naming FORGE_NB_CODE_KEY if there are none)."""
        if self._code_keys is None:
            self._code_keys = code_keys(what=what)
            self.shipped = ShippedCatalogue(self._code_keys)

    def _ship(self, handler: Handler) -> None:
        """Pack and sign a handler being registered; published before the next enqueue."""
        if handler.kind.startswith(BUILTIN_PREFIX) or self._code_keys is None:
            return
        code = build_shipped(handler, self._code_keys[0], VERSION)
        self._unpublished[handler.kind] = code
        self._shipped_versions[handler.kind] = code.version

    def code_version(self, kind: str) -> str | None:
        """The version of ``kind``'s code this App shipped (what its new jobs record)."""
        return self._shipped_versions.get(kind)

    async def publish_code(self) -> list[str]:
        """Publish the code versions not yet in the database; returns their versions.

        Enqueueing and `start` do it first, so a job never names a version the
        database lacks. Re-publishing a version changes nothing (content-addressed).
        """
        if not self._unpublished:
            return []
        storage = await self.storage()
        published = []
        for kind, code in list(self._unpublished.items()):
            await storage.publish_code(code)
            if self._unpublished.get(kind) is code:
                del self._unpublished[kind]
            published.append(code.version)
            log.info("shipped code of kind %s as version %s", kind, code.version)
        return published

    async def resolve_handler(self, kind: str, version: str | None) -> Handler | str | None:
        """What runs a job of ``kind`` and code ``version``; a str says why nothing can.

        A handler of this process's own code wins (a ``--app`` module's), unless this
        App shipped the kind and the job recorded another version of it: then that
        version runs, loaded from the database (verified first).
        """
        handler = self.handlers.get(kind)
        shipped = self.shipped
        if shipped is None:
            return handler
        mine = self._shipped_versions.get(kind)
        if handler is not None and (mine is None or version is None or version == mine):
            return handler
        if handler is None and not self.run_shipped_code:
            return None
        return await shipped.handler(await self.storage(), kind, version)

    def own_kinds(self) -> frozenset[str]:
        """Kinds whose handler here runs every version (not code this App shipped)."""
        return frozenset(k for k in self.handlers.kinds() if k not in self._shipped_versions)
