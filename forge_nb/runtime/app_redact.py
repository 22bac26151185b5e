"""`App`'s redaction: publishing each kind's ``redact=`` fields and masking what it hands out
(see `forge_nb.runtime.redaction`). A mixin of `App`."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from forge_nb.runtime.redaction import masked, shows
from forge_nb.storage.records import JobPage, JobRecord

if TYPE_CHECKING:
    from forge_nb.runtime.handlers import Handler, HandlerRegistry
    from forge_nb.storage.base import Storage

#: Seconds a view process trusts its copy of the database's redactions.
REDACTIONS_TTL_S = 2.0


class Redacting:
    """Masks ``redact=`` payload fields in every job the App hands to a view."""

    if TYPE_CHECKING:
        handlers: HandlerRegistry

        async def storage(self) -> Storage: ...

    _unpublished_redactions: dict[str, tuple[str, ...]] | None = None
    _redactions_read: tuple[float, dict[str, tuple[str, ...]]] | None = None

    def _note_redaction(self, handler: Handler) -> None:
        """A handler registered with ``redact=``: published before the next enqueue."""
        if handler.redact:
            if self._unpublished_redactions is None:
                self._unpublished_redactions = {}
            self._unpublished_redactions[handler.kind] = handler.redact

    async def _publish_redactions(self) -> None:
        """Store the redactions registered here, for views in other processes."""
        pending = self._unpublished_redactions
        if not pending:
            return
        storage = await self.storage()
        for kind, fields in list(pending.items()):
            await storage.set_redaction(kind, fields)
            pending.pop(kind, None)
        self._redactions_read = None

    async def redactions(self) -> dict[str, tuple[str, ...]]:
        """``{kind: masked fields}``: the database's (cached briefly) and this App's own."""
        read = self._redactions_read
        now = time.monotonic()
        if read is None or now - read[0] > REDACTIONS_TTL_S:
            await self._publish_redactions()
            read = self._redactions_read = (now, await (await self.storage()).redactions())
        own = {h.kind: h.redact for h in self.handlers if h.redact}
        return {**read[1], **own} if own else read[1]

    async def _redacted(self, jobs: list[JobRecord]) -> list[JobRecord]:
        """``jobs`` with redacted fields masked (no copy for kinds that redact nothing)."""
        if not jobs:
            return jobs
        redactions = await self.redactions()
        if not redactions:
            return jobs
        return [masked(job, redactions) for job in jobs]

    async def _redacted_page(self, page: JobPage, search: str | None = None) -> JobPage:
        """``page`` masked. With a payload ``search``, a job whose fields were masked stays
        only if the term shows in what is left: what a search matches must not reveal a
        masked value (the page may come out shorter; its cursor still goes on)."""
        jobs = await self._redacted(page.jobs)
        if search:
            jobs = [
                shown
                for shown, stored in zip(jobs, page.jobs, strict=True)
                if shown is stored or shows(shown, search)
            ]
        return JobPage(jobs, page.next_cursor)
