"""Storage contract, run unchanged on SQLite and Postgres: workflows (jobs that wait for others).

A job enqueued with ``depends_on`` waits until every dependency is done, becomes pending in
the transaction that finishes the last one, and ends dead (transitively, through the
cascade) when a dependency dies; a retry of that dependency makes them wait again.
"""

from __future__ import annotations

import json

import pytest

from forge_nb.errors import DeadDependency
from forge_nb.storage import Storage
from forge_nb.storage.records import Finish
from tests.storage.contract_support import (
    HOST,
    NOW,
    UNKNOWN_ID,
    claim_one,
    done,
    enqueue_one,
    get,
    ids_of,
    job_in_status,
    new_job,
    zero_counts,
)

#: The fan-in the issue names: one job waiting for 10,000.
FAN_IN = 10_000


async def finish_done(storage: Storage, queue: str = "q", result: object = None) -> str:
    """Claim the next runnable job of ``queue`` and finish it done; its id."""
    job = await claim_one(storage, queue=queue)
    assert await storage.finish(HOST, [done(job, result)], NOW) == [job.id]
    return job.id


async def finish_dead(storage: Storage, queue: str = "q") -> str:
    job = await claim_one(storage, queue=queue)
    dead = Finish(job.id, job.attempt, "dead", "dead", error="fatal")
    assert await storage.finish(HOST, [dead], NOW) == [job.id]
    return job.id


async def cascade_all(storage: Storage, limit: int = 1000) -> int:
    """Run the cascade to the end, as the leader does; how many jobs it ended."""
    total = 0
    while (n := await storage.cascade_dead(NOW, limit)) > 0:
        total += n
    return total


async def test_a_job_waits_until_its_dependencies_are_done(storage: Storage) -> None:
    a = await enqueue_one(storage, queue="a")
    b = await enqueue_one(storage, queue="a")
    [result] = await storage.enqueue([new_job(queue="c", depends_on=[a, b])], NOW)
    assert (result.outcome, result.status) == ("created", "waiting")
    child = await get(storage, result.id)
    assert (child.status, child.dependencies, child.waiting_on) == ("waiting", 2, 2)
    assert await storage.claim("c", HOST, 10, NOW) == [], "a waiting job is never claimed"
    assert (await storage.counts())["c"] == zero_counts(waiting=1)

    await finish_done(storage, "a", result={"n": 1})
    assert (await get(storage, result.id)).waiting_on == 1
    await finish_done(storage, "a", result={"n": 2})
    ready = await get(storage, result.id)
    assert (ready.status, ready.waiting_on) == ("pending", 0)
    assert (await storage.counts())["c"] == zero_counts(pending=1)
    claimed = await claim_one(storage, "c")
    assert claimed.dependencies == 2
    assert await storage.dependency_results(claimed.id) == {a: {"n": 1}, b: {"n": 2}}


async def test_done_dependencies_count_as_met(storage: Storage) -> None:
    a = await job_in_status(storage, "done")
    [result] = await storage.enqueue([new_job(depends_on=[a])], NOW)
    assert result.status == "pending"
    assert (await get(storage, result.id)).dependencies == 1


async def test_unknown_or_malformed_dependencies_write_nothing(storage: Storage) -> None:
    a = await enqueue_one(storage, queue="a")
    before = await ids_of(storage)
    for bad in ([a, UNKNOWN_ID], ["not-an-id"], "123"):
        with pytest.raises(ValueError, match="depend"):
            await storage.enqueue([new_job(), new_job(depends_on=bad)], NOW)
    assert await ids_of(storage) == before
    assert await storage.dependents(a) == []


async def test_a_chain_runs_in_order(storage: Storage) -> None:
    first = await enqueue_one(storage)
    [second] = await storage.enqueue([new_job(depends_on=[first])], NOW)
    [third] = await storage.enqueue([new_job(depends_on=[second.id])], NOW)
    order = []
    for _ in range(3):
        order.append(await finish_done(storage))
    assert order == [first, second.id, third.id]
    assert await storage.claim("q", HOST, 10, NOW) == []


async def test_a_fan_in_over_10000_dependencies_fires_once(storage: Storage) -> None:
    parents = [r.id for r in await storage.enqueue([new_job(queue="p")] * FAN_IN, NOW)]
    [fan_in] = await storage.enqueue([new_job(queue="f", depends_on=parents)], NOW)
    assert (await get(storage, fan_in.id)).waiting_on == FAN_IN
    while claimed := await storage.claim("p", HOST, 500, NOW):
        finished = await storage.finish(HOST, [done(j, j.id) for j in claimed], NOW)
        assert len(finished) == len(claimed)
    assert [j.id for j in await storage.claim("f", HOST, 10, NOW)] == [fan_in.id]
    results = await storage.dependency_results(fan_in.id)
    assert results == {p: p for p in parents}


async def test_a_dead_dependency_ends_its_dependents_transitively(storage: Storage) -> None:
    root = await enqueue_one(storage)
    [child] = await storage.enqueue([new_job(queue="w", depends_on=[root])], NOW)
    [grandchild] = await storage.enqueue([new_job(queue="w", depends_on=[child.id])], NOW)
    await finish_dead(storage)
    assert await cascade_all(storage) == 2
    for job_id, cause in ((child.id, root), (grandchild.id, child.id)):
        record = await get(storage, job_id)
        assert (record.status, record.last_error) == ("dead", f"dependency {cause} dead")
        assert record.attempts == 0, "it never ran"
    assert (await storage.counts())["w"] == zero_counts(dead=2)


async def test_a_huge_cascade_goes_in_bounded_steps(storage: Storage) -> None:
    root = await enqueue_one(storage)
    children = await storage.enqueue([new_job(queue="w", depends_on=[root])] * 250, NOW)
    await finish_dead(storage)
    steps = []
    while (n := await storage.cascade_dead(NOW, 100)) > 0:
        steps.append(n)
    assert steps == [100, 100, 50]
    assert {(await get(storage, r.id)).status for r in children} == {"dead"}


async def test_cancelling_or_deleting_a_dependency_ends_its_dependents(storage: Storage) -> None:
    cancelled = await enqueue_one(storage)
    deleted = await enqueue_one(storage)
    [a] = await storage.enqueue([new_job(queue="w", depends_on=[cancelled])], NOW)
    [b] = await storage.enqueue([new_job(queue="w", depends_on=[deleted])], NOW)
    assert await storage.request_cancel(cancelled, NOW) == "dead"
    assert await storage.delete(deleted) == "pending"
    await cascade_all(storage)
    assert (await get(storage, a.id)).last_error == f"dependency {cancelled} dead"
    assert (await get(storage, b.id)).last_error == f"dependency {deleted} deleted"


async def test_cancelling_a_waiting_job_makes_it_dead(storage: Storage) -> None:
    a = await enqueue_one(storage)
    [child] = await storage.enqueue([new_job(queue="w", depends_on=[a])], NOW)
    assert await storage.request_cancel(child.id, NOW) == "dead"
    assert (await get(storage, child.id)).last_error == "cancelled"


async def test_enqueue_with_a_dead_dependency_is_dead_at_once(storage: Storage) -> None:
    dead = await job_in_status(storage, "dead")
    [result] = await storage.enqueue([new_job(depends_on=[dead])], NOW)
    assert result.status == "dead"
    assert (await get(storage, result.id)).last_error == f"dependency {dead} dead"


async def test_retrying_a_dead_dependency_revives_what_it_ended(storage: Storage) -> None:
    root = await enqueue_one(storage)
    [child] = await storage.enqueue([new_job(queue="w", depends_on=[root])], NOW)
    [grandchild] = await storage.enqueue([new_job(queue="w", depends_on=[child.id])], NOW)
    await finish_dead(storage)
    await cascade_all(storage)
    with pytest.raises(DeadDependency, match=f"dependency {root} is dead"):
        await storage.retry(child.id, NOW)
    assert await storage.retry(root, NOW) == "dead"
    for job_id in (child.id, grandchild.id):
        record = await get(storage, job_id)
        assert (record.status, record.waiting_on, record.last_error) == ("waiting", 1, None)
    await finish_done(storage)
    assert (await get(storage, child.id)).status == "pending"


async def test_a_retry_during_a_cascade_keeps_the_rest_waiting(storage: Storage) -> None:
    root = await enqueue_one(storage)
    children = await storage.enqueue([new_job(queue="w", depends_on=[root])] * 30, NOW)
    await finish_dead(storage)
    assert await storage.cascade_dead(NOW, 10) == 10
    await storage.retry(root, NOW)
    assert await cascade_all(storage) == 0, "the retried job is no longer dead"
    statuses = {(await get(storage, r.id)).status for r in children}
    assert statuses == {"waiting"}


async def test_unique_keys_and_dependencies_compose(storage: Storage) -> None:
    a = await enqueue_one(storage)
    [first] = await storage.enqueue([new_job(unique_key="k", depends_on=[a])], NOW)
    [again] = await storage.enqueue([new_job(unique_key="k", depends_on=[a])], NOW)
    assert (again.outcome, again.id, again.status) == ("duplicate", first.id, "waiting")
    assert [j.id for j in await storage.dependents(a)] == [first.id]


async def test_dependencies_dependents_and_the_graph(storage: Storage) -> None:
    a = await enqueue_one(storage)
    b = await enqueue_one(storage)
    [c] = await storage.enqueue([new_job(depends_on=[a, b])], NOW)
    [d] = await storage.enqueue([new_job(depends_on=[c.id])], NOW)
    assert [j.id for j in await storage.dependencies(c.id)] == [a, b]
    assert [j.id for j in await storage.dependents(c.id)] == [d.id]
    graph = await storage.job_graph(a)
    assert sorted(n.id for n in graph.nodes) == sorted([a, b, c.id, d.id])
    assert sorted(graph.edges) == sorted([(c.id, a), (c.id, b), (d.id, c.id)])
    assert not graph.truncated
    small = await storage.job_graph(d.id, limit=2)
    assert (len(small.nodes), small.truncated) == (2, True)
    assert (await storage.job_graph(UNKNOWN_ID)).nodes == []


async def test_purging_a_finished_workflow_leaves_no_edges(storage: Storage) -> None:
    a = await enqueue_one(storage)
    [child] = await storage.enqueue([new_job(depends_on=[a])], NOW)
    await finish_done(storage)
    await finish_done(storage)
    assert await storage.purge("q", "done", NOW + 1, 100) == 2
    assert await storage.job_graph(a) == await storage.job_graph(child.id)
    assert (await storage.job_graph(a)).edges == []


async def test_results_are_json(storage: Storage) -> None:
    a = await enqueue_one(storage)
    [child] = await storage.enqueue([new_job(depends_on=[a])], NOW)
    job = await claim_one(storage)
    result = {"rows": [1, 2, 3], "name": "ü"}
    await storage.finish(HOST, [Finish(job.id, 1, "done", "done", json.dumps(result))], NOW)
    assert await storage.dependency_results(child.id) == {a: result}
