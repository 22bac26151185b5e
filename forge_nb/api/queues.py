"""Queue routes: counts, configs, and live config edits (workers, pause, backoff, retention)."""

from __future__ import annotations

from forge_nb.api.base import ApiError, ApiHandler
from forge_nb.api.convert import BadInput, body_object, queue_json
from forge_nb.storage.records import QUEUE_KNOBS, QueueConfig


class CountsHandler(ApiHandler):
    """``GET /api/counts``: ``{queue: {status: n}}`` with every status present."""

    async def get(self) -> None:
        self.send(await self.forge.counts())


class QueuesHandler(ApiHandler):
    """``GET /api/queues``: every queue's config and job counts."""

    async def get(self) -> None:
        counts = await self.forge.counts()
        queues = await self.forge.queues()
        self.send({"queues": [queue_json(q, counts.get(q.name)) for q in queues]})


class QueueHandler(ApiHandler):
    """``GET /api/queues/{name}`` and ``PATCH /api/queues/{name}`` (workers follow next tick)."""

    async def get(self, name: str) -> None:
        config = await existing_queue(self, name)
        self.send(queue_json(config, (await self.forge.counts()).get(name)))

    async def patch(self, name: str) -> None:
        knobs = body_object(self.json_body(), tuple(QUEUE_KNOBS), "queue settings")
        if not knobs:
            raise BadInput(f"no settings to change; known: {', '.join(QUEUE_KNOBS)}", 422)
        await existing_queue(self, name)  # 404 before 422: the resource must exist first
        config = await self.forge.set_queue_config(name, **knobs)
        self.send(queue_json(config, (await self.forge.counts()).get(name)))


async def existing_queue(handler: ApiHandler, name: str) -> QueueConfig:
    """The queue's config, or 404."""
    for config in await handler.forge.queues():
        if config.name == name:
            return config
    raise ApiError(404, f"unknown queue {name!r}")
