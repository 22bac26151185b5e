"""SQLite's steps of workflows (jobs that wait for others), run inside its transactions.

The finish (sqlite_statements.finish) promotes a waiting job when its last dependency is
done, and the triggers of migration 11 queue the cascade of a dead one; these functions
link new jobs to their dependencies, run a bounded slice of that cascade, and undo it when
a dead dependency is retried. One
writer holds the database, so reading a dependency's status and linking to it cannot race
with its end.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

from forge_nb.storage import rules
from forge_nb.storage.records import EnqueueResult
from forge_nb.storage.schema import load_queries

Q = load_queries("sqlite")


def link_dependencies(
    c: sqlite3.Connection,
    results: list[EnqueueResult],
    links: Sequence[tuple[int, list[int]]],
    now: float,
) -> list[EnqueueResult]:
    """SQLite's side of `rules.plan_links`: one writer holds the database, so the statuses
    read here cannot change before the edges are written. ValueError on an unknown id."""
    plan = rules.plan_links(results, links)
    if plan is None:
        return results
    statuses = dict(c.execute(Q["dependency_statuses"], (json.dumps(plan.wanted),)).fetchall())
    settled = rules.settle_new_dependents(plan.new, statuses, now)
    c.executemany(Q["insert_dependency"], plan.edges)
    c.executemany(Q["settle_new_dependent"], settled)
    return rules.with_settled_statuses(results, settled)


def cascade(c: sqlite3.Connection, now: float, limit: int) -> int:
    """End up to ``limit`` waiting dependents of dead dependencies; how many ended."""
    ended = 0
    for parent, error in c.execute(Q["dead_parents_batch"], (limit,)).fetchall():
        budget = limit - ended
        if budget <= 0:
            break
        killed = c.execute(Q["kill_waiting_dependents"], (parent, error, now, budget)).fetchall()
        c.executemany(
            Q["insert_event"], [(key, now, "dead", attempts, error) for key, attempts in killed]
        )
        ended += len(killed)
        if len(killed) < budget:
            c.execute(Q["forget_dead_parent"], (parent,))
    return ended


def dead_dependency(c: sqlite3.Connection, key: int) -> int | None:
    """A dead dependency of ``key`` (it cannot be retried while one is), or None."""
    found = c.execute(Q["dead_dependency"], (key,)).fetchone()
    return None if found is None else int(found[0])


def revive(c: sqlite3.Connection, key: int, now: float) -> None:
    """After ``key`` was retried: it waits for its dependencies not done yet, and what its
    death ended (its dependents, transitively) waits again: they never ran."""
    c.execute(Q["settle_retried_dependent"], (key,))
    parents = [key]
    while parents:
        revived: list[int] = []
        for parent in parents:
            c.execute(Q["forget_dead_parent"], (parent,))
            error = rules.dependency_error(parent, "dead")
            for child, has_dependents in c.execute(
                Q["revive_dependents"], (parent, error)
            ).fetchall():
                c.execute(Q["insert_event"], (child, now, "revived", 0, None))
                if has_dependents:
                    revived.append(child)
        parents = revived
