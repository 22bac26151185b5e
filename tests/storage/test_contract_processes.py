"""Storage contract, run unchanged on SQLite and Postgres: processes, heartbeats, stranded kinds and the reaper."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from forge_nb.storage import Storage
from forge_nb.storage.records import (
    ProcessRecord,
)
from tests.storage.contract_support import (
    NOW,
    at,
    claim_one,
    enqueue_one,
    get,
    job_in_status,
    new_job,
    run_job,
    ts,
)

# -- processes and the reaper ----------------------------------------------------------------------


def dt(seconds: float) -> datetime:
    return datetime.fromtimestamp(seconds, UTC)


def slot(
    host: str, n: int = 0, queue: str = "q", heartbeat: float = NOW, **kw: Any
) -> ProcessRecord:
    fields: dict[str, Any] = {
        "hostname": f"box-{host}",
        "pid": 4321,
        "current_job": None,
        "started_at": dt(NOW - 600),
        "version": "0.1.0",
        **kw,
    }
    return ProcessRecord(
        id=f"{queue}-{n}-{host}",
        host_id=host,
        queue=queue,
        last_heartbeat=dt(heartbeat),
        **fields,
    )


async def processes_by_id(storage: Storage) -> dict[str, ProcessRecord]:
    return {p.id: p for p in await storage.processes()}


async def test_register_heartbeat_and_unregister_processes(storage: Storage) -> None:
    slots = [slot("A", 0), slot("A", 1), slot("B", 0, queue="other", hostname="elsewhere")]
    await storage.register_processes(slots)
    assert await processes_by_id(storage) == {s.id: s for s in slots}

    job = await run_job(storage, host="A")
    await storage.heartbeat("A", NOW + 10, {"q-0-A": job.id, "q-1-A": None})
    found = await processes_by_id(storage)
    assert (found["q-0-A"].current_job, ts(found["q-0-A"].last_heartbeat)) == (job.id, at(NOW + 10))
    assert (found["q-1-A"].current_job, ts(found["q-1-A"].last_heartbeat)) == (None, at(NOW + 10))
    assert found["other-0-B"] == slots[2], "other hosts are untouched"

    await storage.heartbeat("A", NOW + 20, {"q-0-A": None})
    found = await processes_by_id(storage)
    assert found["q-0-A"].current_job is None
    assert ts(found["q-0-A"].last_heartbeat) == at(NOW + 20)

    await storage.unregister_processes(["q-1-A"])
    assert set(await processes_by_id(storage)) == {"q-0-A", "other-0-B"}
    await storage.unregister_processes(["q-0-A", "other-0-B", "never-registered"])
    assert await storage.processes() == []


async def test_processes_register_the_kinds_they_run_and_heartbeats_replace_them(
    storage: Storage,
) -> None:
    await storage.register_processes(
        [slot("A", 0, kinds=("a", "b")), slot("A", 1, kinds=("a", "b")), slot("B")]
    )
    found = await processes_by_id(storage)
    assert (found["q-0-A"].kinds, found["q-1-A"].kinds, found["q-0-B"].kinds) == (
        ("a", "b"),
        ("a", "b"),
        (),
    )
    assert found["q-0-A"].to_dict()["kinds"] == ["a", "b"]

    await storage.heartbeat("A", NOW + 10, {}, kinds=["a", "b", "c"])
    await storage.heartbeat("B", NOW + 10, {})  # no kinds given: unchanged
    found = await processes_by_id(storage)
    assert found["q-0-A"].kinds == found["q-1-A"].kinds == ("a", "b", "c")
    assert found["q-0-B"].kinds == ()
    assert ts(found["q-0-A"].last_heartbeat) == at(NOW + 10)


async def test_stranded_kinds_are_waiting_kinds_no_live_process_of_the_queue_runs(
    storage: Storage,
) -> None:
    assert await storage.stranded_kinds(NOW - 30) == []
    await job_in_status(storage, "done", kind="finished")  # not waiting: never stranded
    await job_in_status(storage, "failed", kind="retrying")  # waiting for its retry
    await storage.enqueue([new_job(kind="score") for _ in range(3)], NOW)
    await storage.enqueue([new_job(kind="mine"), new_job(kind="done-kind")], NOW)
    await storage.enqueue([new_job(kind="mine", queue="other")], NOW)
    no_worker = await storage.stranded_kinds(NOW - 30)
    assert [(s.queue, s.kind, s.jobs, s.capped) for s in no_worker] == [
        ("other", "mine", 1, False),
        ("q", "done-kind", 1, False),
        ("q", "mine", 1, False),
        ("q", "retrying", 1, False),
        ("q", "score", 3, False),
    ]
    assert no_worker[-1].describe() == (
        "3 pending jobs of kind `score` in queue `q`: no live worker runs it"
    )

    await storage.register_processes(
        [
            slot("A", kinds=("mine", "retrying", "done-kind")),
            slot("B", queue="other", kinds=("elsewhere",)),
            slot("C", heartbeat=NOW - 60, kinds=("score",)),  # silent: not live
        ]
    )
    stranded = await storage.stranded_kinds(NOW - 30)
    assert [(s.queue, s.kind, s.jobs) for s in stranded] == [
        ("other", "mine", 1),
        ("q", "score", 3),
    ]
    assert [s.kind for s in await storage.stranded_kinds(NOW - 90)] == ["mine"]
    [capped] = await storage.stranded_kinds(NOW - 30, count_up_to=2, limit=1)
    assert (capped.queue, capped.kind, capped.jobs, capped.capped) == ("other", "mine", 1, False)
    capped = (await storage.stranded_kinds(NOW - 30, count_up_to=2))[-1]
    assert (capped.kind, capped.jobs, capped.capped) == ("score", 2, True)
    assert capped.describe().startswith("2+ pending jobs of kind `score`")


async def test_registering_a_slot_again_replaces_it(storage: Storage) -> None:
    await storage.register_processes([slot("A", pid=1)])
    await storage.register_processes([slot("A", pid=2, heartbeat=NOW + 5)])
    [found] = await storage.processes()
    assert (found.pid, ts(found.last_heartbeat)) == (2, at(NOW + 5))


async def test_reap_takes_back_the_jobs_of_a_silent_host(storage: Storage) -> None:
    await storage.register_processes([slot("A", heartbeat=NOW - 100), slot("B", heartbeat=NOW)])
    retryable = await run_job(storage, host="A", kind="k1", max_attempts=5)
    used_up = await run_job(storage, host="A", kind="k2", max_attempts=1)
    healthy = await run_job(storage, host="B")

    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30)
    assert sorted((r.id, r.kind, r.queue, r.status, r.host_id) for r in reaped) == sorted(
        [
            (retryable.id, "k1", "q", "failed", "A"),
            (used_up.id, "k2", "q", "dead", "A"),
        ]
    )
    record = await get(storage, retryable.id)
    assert (record.status, record.last_error, record.attempts) == ("failed", "worker lost", 1)
    assert record.scheduled_at.timestamp() <= NOW + 1.001, "retried right away"
    events = await storage.job_events(retryable.id)
    assert any("worker lost" in f"{e.event.replace('_', ' ')} {e.message}" for e in events)

    record = await get(storage, used_up.id)
    assert (record.status, record.last_error) == ("dead", "worker lost")

    record = await get(storage, healthy.id)
    assert (record.status, record.claimed_by) == ("running", "B")
    assert set(await processes_by_id(storage)) == {"q-0-B"}, "the silent host's slots are removed"

    again = await claim_one(storage, now=NOW + 1)
    assert (again.id, again.attempt) == (retryable.id, 2)


async def test_reap_honours_each_process_own_silence_limit(storage: Storage) -> None:
    # A's owner allows 300 s of silence, B's 30 s; both last beat 100 s ago. A reaper whose
    # own limit is 30 s takes back B's job only: A is alive by its own setting.
    await storage.register_processes(
        [
            slot("A", heartbeat=NOW - 100, stale_after=300.0),
            slot("B", heartbeat=NOW - 100, stale_after=30.0),
        ]
    )
    patient = await run_job(storage, host="A")
    silent = await run_job(storage, host="B")
    reaped = await storage.reap(NOW, stale_before=NOW - 30)
    assert [r.id for r in reaped] == [silent.id]
    assert (await get(storage, patient.id)).status == "running"
    found = await processes_by_id(storage)
    assert set(found) == {"q-0-A"}, "only the dead process's slots are removed"
    assert found["q-0-A"].stale_after == 300.0
    # Past its own limit, A is dead too, whatever the reaper's own limit.
    reaped = await storage.reap(NOW + 201, stale_before=NOW - 1000)
    assert [r.id for r in reaped] == [patient.id]


async def test_reap_takes_back_jobs_of_a_host_without_slot_rows(storage: Storage) -> None:
    await storage.register_processes([slot("B")])
    orphan = await run_job(storage, host="ghost")
    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30)
    assert [(r.id, r.host_id, r.status) for r in reaped] == [(orphan.id, "ghost", "failed")]


async def test_reap_of_named_hosts_even_when_they_look_alive(storage: Storage) -> None:
    await storage.register_processes([slot("A", 0), slot("A", 1), slot("B")])
    mine = await run_job(storage, host="A")
    theirs = await run_job(storage, host="B")
    reaped = await storage.reap(NOW + 1, stale_before=NOW - 30, host_ids=["A"])
    assert [r.id for r in reaped] == [mine.id]
    assert (await get(storage, mine.id)).status == "failed"
    assert (await get(storage, theirs.id)).status == "running"
    assert set(await processes_by_id(storage)) == {"q-0-B"}


async def test_reap_with_every_host_alive_changes_nothing(storage: Storage) -> None:
    await storage.register_processes([slot("A", heartbeat=NOW - 10)])
    job = await run_job(storage, host="A")
    before = await get(storage, job.id)
    assert await storage.reap(NOW, stale_before=NOW - 30) == []
    assert await get(storage, job.id) == before
    assert set(await processes_by_id(storage)) == {"q-0-A"}


async def test_one_fresh_slot_keeps_a_host_alive(storage: Storage) -> None:
    await storage.register_processes([slot("A", 0, heartbeat=NOW - 100), slot("A", 1)])
    job = await run_job(storage, host="A")
    assert await storage.reap(NOW, stale_before=NOW - 30) == []
    assert (await get(storage, job.id)).status == "running"


async def test_a_job_that_keeps_killing_workers_ends_dead(storage: Storage) -> None:
    job_id = await enqueue_one(storage, max_attempts=2)
    await claim_one(storage, host="A")
    [first] = await storage.reap(NOW + 1, stale_before=NOW + 1, host_ids=["A"])
    assert (first.id, first.status) == (job_id, "failed")
    assert (await claim_one(storage, host="B", now=NOW + 2)).attempt == 2
    [second] = await storage.reap(NOW + 3, stale_before=NOW + 3, host_ids=["B"])
    assert (second.id, second.status) == (job_id, "dead")
    record = await get(storage, job_id)
    assert (record.status, record.attempts, record.last_error) == ("dead", 2, "worker lost")
