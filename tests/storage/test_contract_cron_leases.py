"""Storage contract, run unchanged on SQLite and Postgres: cron schedules and leases."""

from __future__ import annotations

import asyncio
import dataclasses
from typing import Any

import pytest

from forge_nb.storage import Storage, open_storage
from forge_nb.storage.records import (
    JobFilter,
    Lease,
    NewJob,
    Schedule,
)
from tests.storage.contract_support import (
    NOW,
    at,
    ids_of,
    new_job,
    ts,
)

# -- cron schedules --------------------------------------------------------------------------------


async def test_schedules_upsert_list_enable_and_record_fires(storage: Storage) -> None:
    nightly = Schedule(
        name="nightly",
        cron="0 3 * * *",
        kind="report",
        payload={"to": "ops ✓"},
        queue="q",
        next_fire_at=NOW + 3600,
    )
    hourly = Schedule(
        name="hourly", cron="0 * * * *", kind="ping", payload={}, queue="q", enabled=False
    )
    assert await storage.upsert_schedule(nightly) == nightly
    assert await storage.upsert_schedule(hourly) == hourly
    assert await storage.schedules() == [hourly, nightly], "listed by name"

    await storage.record_fire("nightly", NOW + 3600, NOW + 90_000)
    fired = (await storage.schedules())[1]
    assert (fired.last_fire_at, fired.next_fire_at) == (at(NOW + 3600), at(NOW + 90_000))

    changed = dataclasses.replace(
        nightly, cron="30 4 * * *", payload={"to": "dev"}, next_fire_at=NOW + 95_000
    )
    stored = await storage.upsert_schedule(changed)
    assert (stored.cron, stored.payload) == ("30 4 * * *", {"to": "dev"})
    assert stored.last_fire_at == at(NOW + 3600), "an update keeps the last fire"
    assert stored.next_fire_at == at(NOW + 95_000)
    assert (await storage.schedules())[1] == stored

    assert await storage.set_schedule_enabled("hourly", True) is True
    assert (await storage.schedules())[0].enabled is True
    assert await storage.set_schedule_enabled("nightly", False) is True
    assert (await storage.schedules())[1].enabled is False
    assert await storage.set_schedule_enabled("nope", False) is False
    assert [s.name for s in await storage.schedules()] == ["hourly", "nightly"]


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"name": ""}, id="empty-name"),
        pytest.param({"payload": {"x": object()}}, id="non-json-payload"),
    ],
)
async def test_bad_schedule_is_refused(storage: Storage, bad: dict[str, Any]) -> None:
    fields: dict[str, Any] = {
        "name": "s",
        "cron": "* * * * *",
        "kind": "k",
        "payload": {},
        "queue": "q",
    }
    with pytest.raises(ValueError):
        await storage.upsert_schedule(Schedule(**{**fields, **bad}))
    assert await storage.schedules() == []


async def nightly_schedule(storage: Storage, next_fire_at: float = NOW + 60, **kw: Any) -> Schedule:
    schedule = Schedule(
        name="nightly",
        cron="* * * * *",
        kind="report",
        payload={"to": "ops"},
        queue="q",
        next_fire_at=next_fire_at,
        **kw,
    )
    return await storage.upsert_schedule(schedule)


def cron_job(fire_at: float, name: str = "nightly") -> NewJob:
    return new_job(kind="report", payload={"to": "ops"}, unique_key=f"cron:{name}:{fire_at}")


async def test_fire_schedule_advances_the_schedule_and_enqueues_the_job(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    fired = await storage.fire_schedule(
        "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
    )
    assert fired is True
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (at(NOW + 60), at(NOW + 120))
    [job] = (await storage.list_jobs(JobFilter())).jobs
    assert (job.kind, job.queue, job.payload, job.status) == (
        "report",
        "q",
        {"to": "ops"},
        "pending",
    )
    assert job.unique_key == f"cron:nightly:{NOW + 60}"
    assert ts(job.created_at) == at(NOW + 61)


async def test_a_tick_fires_only_once(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    args = ("nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60))
    assert await storage.fire_schedule(*args, now=NOW + 61) is True
    assert await storage.fire_schedule(*args, now=NOW + 62) is False, "next_fire_at moved on"
    assert len(await ids_of(storage)) == 1
    [schedule] = await storage.schedules()
    assert schedule.next_fire_at == at(NOW + 120)


async def test_two_leaders_racing_for_a_tick_fire_it_once(db_url: str, storage: Storage) -> None:

    await nightly_schedule(storage, next_fire_at=NOW + 60)
    other = await open_storage(db_url)
    try:
        fired = await asyncio.gather(
            *(
                s.fire_schedule(
                    "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
                )
                for s in (storage, other, storage, other)
            )
        )
    finally:
        await other.close()
    assert sorted(fired) == [False, False, False, True]
    assert len(await ids_of(storage)) == 1


async def test_a_disabled_or_unknown_schedule_does_not_fire(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60, enabled=False)
    args = (NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60))
    assert await storage.fire_schedule("nightly", *args, now=NOW + 61) is False
    assert await storage.fire_schedule("unknown", *args, now=NOW + 61) is False
    assert await ids_of(storage) == []
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (None, at(NOW + 60))


async def test_a_bad_cron_job_fires_nothing(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    bad = new_job(payload={"x": object()})
    with pytest.raises(ValueError):
        await storage.fire_schedule("nightly", NOW + 60, NOW + 60, NOW + 120, bad, now=NOW + 61)
    [schedule] = await storage.schedules()
    assert (schedule.last_fire_at, schedule.next_fire_at) == (None, at(NOW + 60))
    assert await ids_of(storage) == []


async def test_a_fire_whose_job_is_still_live_is_not_doubled(storage: Storage) -> None:
    await nightly_schedule(storage, next_fire_at=NOW + 60)
    [held] = await storage.enqueue([cron_job(NOW + 60)], NOW)
    await storage.fire_schedule(
        "nightly", NOW + 60, NOW + 60, NOW + 120, cron_job(NOW + 60), now=NOW + 61
    )
    assert await ids_of(storage) == [held.id]


# -- leases ----------------------------------------------------------------------------------------


async def test_a_lease_is_exclusive_until_it_expires(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", ttl=15, now=NOW) is True
    assert await storage.leases() == [Lease("cron", "A", at(NOW + 15))]
    assert await storage.acquire_lease("cron", "B", 15, NOW + 5) is False
    assert await storage.acquire_lease("cron", "A", 15, NOW + 10) is True, "the holder renews"
    assert await storage.leases() == [Lease("cron", "A", at(NOW + 25))]
    assert await storage.acquire_lease("cron", "B", 15, NOW + 24) is False
    assert await storage.acquire_lease("cron", "B", 15, NOW + 26) is True, "expired: taken over"
    assert await storage.leases() == [Lease("cron", "B", at(NOW + 41))]
    assert await storage.acquire_lease("cron", "A", 15, NOW + 27) is False


async def test_release_lease_only_by_its_holder(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", 15, NOW)
    await storage.release_lease("cron", "B")
    assert [lease.holder for lease in await storage.leases()] == ["A"]
    await storage.release_lease("cron", "A")
    assert await storage.leases() == []
    assert await storage.acquire_lease("cron", "B", 15, NOW + 1) is True
    await storage.release_lease("never-held", "B")


async def test_leases_are_independent_by_name(storage: Storage) -> None:
    assert await storage.acquire_lease("cron", "A", 15, NOW)
    assert await storage.acquire_lease("retention", "B", 15, NOW)
    assert sorted((lease.name, lease.holder) for lease in await storage.leases()) == [
        ("cron", "A"),
        ("retention", "B"),
    ]
