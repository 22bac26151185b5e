"""Cron routes: list, inspect, edit (enable/disable, expression, target), run now."""

from __future__ import annotations

from forge_nb.api.base import ApiHandler
from forge_nb.api.convert import BadInput, body_object, schedule_json
from forge_nb.api.jobs import send_enqueued

#: What a PATCH may change; a missing field keeps its current value.
SCHEDULE_FIELDS = ("enabled", "cron", "kind", "payload", "queue", "tz")


class SchedulesHandler(ApiHandler):
    """``GET /api/schedules``: every schedule with its last and next fire."""

    async def get(self) -> None:
        schedules = await self.forge.schedules()
        self.send({"schedules": [schedule_json(s) for s in schedules]})


class ScheduleHandler(ApiHandler):
    """``GET /api/schedules/{name}`` and ``PATCH /api/schedules/{name}``."""

    async def get(self, name: str) -> None:
        self.send(schedule_json(await self.forge.schedule(name)))

    async def patch(self, name: str) -> None:
        changes = body_object(self.json_body(), SCHEDULE_FIELDS, "schedule changes")
        if not changes:
            raise BadInput(f"no changes given; known: {', '.join(SCHEDULE_FIELDS)}", 422)
        if "enabled" in changes and not isinstance(changes["enabled"], bool):
            raise BadInput(f"enabled must be true or false, got {changes['enabled']!r}", 422)
        if "payload" in changes and not isinstance(changes["payload"], dict):
            raise BadInput("payload must be a JSON object of named arguments", 422)
        for key in ("cron", "kind", "queue", "tz"):
            if key in changes and not isinstance(changes[key], str):
                raise BadInput(f"{key} must be a string, got {changes[key]!r}", 422)
        if "kind" in changes and not changes["kind"].strip():  # it could never enqueue its job
            raise BadInput("kind must be a non-empty string", 422)
        current = await self.forge.schedule(name)  # LookupError -> 404
        if set(changes) == {"enabled"}:
            updated = await self.forge.set_schedule_enabled(name, changes["enabled"])
        else:
            updated = await self.forge.ensure_schedule(
                name,
                changes.get("cron", current.cron),
                changes.get("kind", current.kind),
                payload=changes.get("payload", current.payload),
                queue=changes.get("queue", current.queue),
                enabled=changes.get("enabled", current.enabled),
                tz=changes.get("tz", current.tz),
            )
        self.send(schedule_json(updated))


class ScheduleRunHandler(ApiHandler):
    """``POST /api/schedules/{name}/run``: enqueue its job now; the timetable is unchanged."""

    async def post(self, name: str) -> None:
        try:
            ref = await self.forge.run_schedule_now(name)
        except TypeError as exc:  # stored payload no longer fits the job function
            raise BadInput(str(exc), 422) from None
        await send_enqueued(self, ref)
