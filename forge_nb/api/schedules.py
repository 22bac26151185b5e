"""Cron routes: list, inspect, edit (enable/disable, expression, target), run now."""

from __future__ import annotations

from forge_nb.api.base import ApiRoute
from forge_nb.api.convert import BadInput, schedule_json
from forge_nb.api.jobs import send_enqueued
from forge_nb.api.models import ScheduleChanges, checked, fields_of


class SchedulesRoute(ApiRoute):
    """``GET /api/schedules``: every schedule with its last and next fire."""

    async def get(self) -> None:
        schedules = await self.forge.schedules()
        self.send({"schedules": [schedule_json(s) for s in schedules]})


class ScheduleRoute(ApiRoute):
    """``GET /api/schedules/{name}`` and ``PATCH /api/schedules/{name}``."""

    async def get(self, name: str) -> None:
        self.send(schedule_json(await self.forge.schedule(name)))

    async def patch(self, name: str) -> None:
        changes = self.json_body()
        checked(changes, ScheduleChanges, "schedule changes")
        if not changes:
            known = ", ".join(fields_of(ScheduleChanges))
            raise BadInput(f"no changes given; known: {known}", 422)
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


class ScheduleRunRoute(ApiRoute):
    """``POST /api/schedules/{name}/run``: enqueue its job now; the timetable is unchanged."""

    async def post(self, name: str) -> None:
        try:
            ref = await self.forge.run_schedule_now(name)
        except TypeError as exc:  # stored payload no longer fits the job function
            raise BadInput(str(exc), 422) from None
        await send_enqueued(self, ref)
