"""Queue routes: counts, configs, and live config edits (workers, pause, backoff, retention)."""

from __future__ import annotations

from forge_nb.api.base import ApiError, ApiRoute
from forge_nb.api.convert import BadInput, queue_json
from forge_nb.api.models import QueueSettings, checked, shape_error
from forge_nb.storage.records import QUEUE_KNOBS, QueueConfig


class CountsRoute(ApiRoute):
    """``GET /api/counts``: ``{queue: {status: n}}`` with every status present."""

    async def get(self) -> None:
        self.send(await self.forge.counts())


class QueuesRoute(ApiRoute):
    """``GET /api/queues``: every queue's config and job counts."""

    async def get(self) -> None:
        counts = await self.forge.counts()
        queues = await self.forge.queues()
        self.send({"queues": [queue_json(q, counts.get(q.name)) for q in queues]})


class QueueRoute(ApiRoute):
    """``GET /api/queues/{name}`` and ``PATCH /api/queues/{name}`` (workers follow next tick)."""

    async def get(self, name: str) -> None:
        config = await existing_queue(self, name)
        self.send(queue_json(config, (await self.forge.counts()).get(name)))

    async def patch(self, name: str) -> None:
        body = self.json_body()
        try:
            checked(body, QueueSettings, "queue settings")
        except BadInput as exc:
            if shape_error(exc):  # not an object, or an unknown setting: refused at once
                raise
            await existing_queue(self, name)  # a bad value: 404 first, as the App checks it
            raise
        if not body:
            raise BadInput(f"no settings to change; known: {', '.join(QUEUE_KNOBS)}", 422)
        await existing_queue(self, name)  # 404 before 422: the resource must exist first
        config = await self.forge.set_queue_config(name, **body)
        self.send(queue_json(config, (await self.forge.counts()).get(name)))


async def existing_queue(route: ApiRoute, name: str) -> QueueConfig:
    """The queue's config, or 404."""
    for config in await route.forge.queues():
        if config.name == name:
            return config
    raise ApiError(404, f"unknown queue {name!r}")
