"""The workflow view's layout: layers by longest path, barycentre order within a layer."""

from __future__ import annotations

from forge_nb.dashboard.dag_layout import layers, layout


def test_a_fan_out_fan_in_has_three_layers() -> None:
    nodes = ["combine", "p1", "p2", "f1", "f2"]
    edges = [("combine", "p1"), ("combine", "p2"), ("p1", "f1"), ("p2", "f2")]
    assert layers(nodes, edges) == {"f1": 0, "f2": 0, "p1": 1, "p2": 1, "combine": 2}


def test_a_layer_is_the_longest_path_not_the_shortest() -> None:
    # d depends on a directly and through b -> c: it goes after c, not next to b.
    edges = [("b", "a"), ("c", "b"), ("d", "c"), ("d", "a")]
    assert layers(["a", "b", "c", "d"], edges) == {"a": 0, "b": 1, "c": 2, "d": 3}


def test_every_edge_points_to_a_later_layer() -> None:
    nodes = [str(i) for i in range(30)]
    edges = [(str(i), str(j)) for i in range(30) for j in range(i) if (i * 7 + j) % 5 == 0]
    where = layout(nodes, edges)
    assert all(where[job].layer > where[dep].layer for job, dep in edges)
    for depth in {p.layer for p in where.values()}:
        members = sorted(p.index for p in where.values() if p.layer == depth)
        assert members == list(range(len(members)))


def test_order_in_a_layer_follows_the_dependencies() -> None:
    # f2 is listed first, but p1 uses f1 (listed second): p1 and p2 keep their sources' order.
    nodes = ["f1", "f2", "p2", "p1"]
    edges = [("p1", "f1"), ("p2", "f2")]
    where = layout(nodes, edges)
    assert (where["f1"].index, where["f2"].index) == (0, 1)
    assert (where["p1"].index, where["p2"].index) == (0, 1)
    assert where["p1"].y == 0.5 and where["p2"].y == -0.5


def test_lone_jobs_unknown_ends_and_self_loops_are_harmless() -> None:
    where = layout(["a", "b"], [("a", "zzz"), ("b", "b")])
    assert where["a"].layer == where["b"].layer == 0 and where["a"].size == 2
    assert layout([], []) == {}


def test_a_cycle_does_not_loop() -> None:
    assert layers(["r", "a", "b"], [("a", "r"), ("a", "b"), ("b", "a")]) == {"r": 0, "a": 1, "b": 1}
