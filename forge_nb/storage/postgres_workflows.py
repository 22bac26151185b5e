"""Postgres's steps of workflows (jobs that wait for others), run inside its transactions.

The statement trigger of migration 11 promotes a waiting job when its last dependency is done and
queue the cascade of a dead one; these functions link new jobs to their dependencies,
run a bounded slice of that cascade, and undo it when a dead dependency is retried.
Linking share-locks the dependencies first (in id order), so none can finish between
reading its status and the commit of the new edges its trigger must see.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from forge_nb.storage import rules
from forge_nb.storage.records import EnqueueResult
from forge_nb.storage.schema import load_queries

Q = load_queries("postgres")
#: Dead dependencies one cascade step reads (each ends up to the step's limit of dependents).
PARENTS_PER_STEP = 100


async def link_dependencies(
    conn: Any,
    results: list[EnqueueResult],
    links: Sequence[tuple[int, list[int]]],
    now: float,
) -> list[EnqueueResult]:
    """Postgres's side of `rules.plan_links`: ``dependency_statuses`` share-locks the
    dependencies (in id order) until the commit. ValueError (rolled back) on an unknown id."""
    plan = rules.plan_links(results, links)
    if plan is None:
        return results
    statuses = {r[0]: r[1] for r in await conn.fetch(Q["dependency_statuses"], plan.wanted)}
    settled = rules.settle_new_dependents(plan.new, statuses, now)
    await conn.execute(
        Q["insert_dependency"], [key for key, _ in plan.edges], [d for _, d in plan.edges]
    )
    await conn.execute(Q["settle_new_dependent"], *map(list, zip(*settled, strict=True)))
    return rules.with_settled_statuses(results, settled)


async def cascade(conn: Any, now: float, limit: int) -> int:
    """End up to ``limit`` waiting dependents of dead dependencies; how many ended.

    The dead dependencies' rows are locked (SKIP LOCKED: two leaders never share one),
    and a retry of one waits for this step, then revives what it ended."""
    ended = 0
    for parent, error in await conn.fetch(Q["dead_parents_batch"], min(limit, PARENTS_PER_STEP)):
        budget = limit - ended
        if budget <= 0:
            break
        killed = await conn.fetch(Q["kill_waiting_dependents"], parent, error, now, budget)
        if killed:
            await conn.executemany(
                Q["insert_event"], [(key, now, "dead", attempts, error) for key, attempts in killed]
            )
        ended += len(killed)
        if len(killed) < budget:
            await conn.execute(Q["forget_dead_parent"], parent)
    return ended


async def dead_dependency(conn: Any, key: int) -> int | None:
    """A dead dependency of ``key`` (it cannot be retried while one is), or None."""
    found = await conn.fetchval(Q["dead_dependency"], key)
    return None if found is None else int(found)


async def revive(conn: Any, key: int, now: float) -> None:
    """After ``key`` was retried: it waits for its dependencies not done yet, and what its
    death ended (its dependents, transitively) waits again: they never ran."""
    await conn.execute(Q["settle_retried_dependent"], key)
    parents = [key]
    while parents:
        revived: list[int] = []
        for parent in parents:
            await conn.execute(Q["forget_dead_parent"], parent)
            error = rules.dependency_error(parent, "dead")
            for child, has_dependents in await conn.fetch(Q["revive_dependents"], parent, error):
                await conn.execute(Q["insert_event"], child, now, "revived", 0, None)
                if has_dependents:
                    revived.append(child)
        parents = revived
