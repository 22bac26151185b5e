"""Where each job of a workflow graph goes in a drawing: a layered (Sugiyama-style) layout.

Pure and small on purpose: no Bokeh, no database, so it is unit-tested on its own.
Layer = the longest path from a root (a job with no dependency in the graph), so every
edge points right. Within a layer, jobs are ordered by the mean position of their
dependencies (one barycentre sweep, left to right), which keeps fan-in and fan-out
edges from crossing much; ties keep the input order (the storage gives nearest first).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Placed:
    """A job's place: ``layer`` (x) and ``index`` in its layer (0 on top), ``size`` of it."""

    layer: int
    index: int
    size: int

    @property
    def y(self) -> float:
        """The vertical coordinate, each layer centred on 0 (the first index on top)."""
        return (self.size - 1) / 2 - self.index


def layers(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, int]:
    """Each node's layer: the longest path to it from a root.

    ``edges`` are ``(job, dependency)`` pairs (as `JobGraph.edges`); pairs naming a node
    not in ``nodes`` are ignored. A cycle cannot be made through ``depends_on`` (a job
    can only depend on jobs that already exist); if one were there, its nodes go one layer
    after everything else instead of looping.
    """
    known = set(nodes)
    deps: dict[str, set[str]] = {n: set() for n in nodes}
    users: dict[str, set[str]] = {n: set() for n in nodes}
    for job, dep in edges:
        if job in known and dep in known and job != dep:
            deps[job].add(dep)
            users[dep].add(job)
    layer = dict.fromkeys(nodes, 0)
    missing = {n: len(deps[n]) for n in nodes}
    ready = [n for n in nodes if missing[n] == 0]
    done: set[str] = set()
    while ready:
        node = ready.pop()
        done.add(node)
        for user in users[node]:
            layer[user] = max(layer[user], layer[node] + 1)
            missing[user] -= 1
            if missing[user] == 0:
                ready.append(user)
    if len(done) < len(layer):
        after = max((layer[n] for n in done), default=-1) + 1
        for n in nodes:
            if n not in done:
                layer[n] = after
    return layer


def layout(nodes: Sequence[str], edges: Iterable[tuple[str, str]]) -> dict[str, Placed]:
    """Every node's `Placed` (layer by longest path, order within a layer by barycentre)."""
    edges = list(edges)
    layer_of = layers(nodes, edges)
    first_seen = {n: i for i, n in enumerate(nodes)}
    deps: dict[str, list[str]] = {n: [] for n in nodes}
    for job, dep in edges:
        if job in deps and dep in layer_of and job != dep:
            deps[job].append(dep)
    by_layer: dict[int, list[str]] = {}
    for n in nodes:
        by_layer.setdefault(layer_of[n], []).append(n)
    position: dict[str, float] = {}
    placed: dict[str, Placed] = {}
    for depth in sorted(by_layer):
        members = by_layer[depth]

        def key(n: str) -> tuple[float, int]:
            seen = [position[d] for d in deps[n] if d in position]
            centre = sum(seen) / len(seen) if seen else float(first_seen[n])
            return (centre, first_seen[n])

        if depth > 0:
            members.sort(key=key)
        for index, n in enumerate(members):
            # Positions relative to the layer's size, so layers of different sizes compare.
            position[n] = (index + 0.5) / len(members) * len(nodes)
            placed[n] = Placed(depth, index, len(members))
    return placed
