"""Storage contract, run unchanged on SQLite and Postgres: metrics, samples, roll-ups and retention."""

from __future__ import annotations

from typing import Any

from forge_nb.storage import Storage
from forge_nb.storage.records import (
    Finish,
    MetricRow,
)
from tests.storage.contract_support import (
    HOST,
    NOW,
    done,
    enqueue_one,
    get,
    ids_of,
    new_job,
    run_job,
    zero_counts,
)

# -- metrics ---------------------------------------------------------------------------------------

MINUTE = int(NOW // 60)


def metric_key(row: MetricRow) -> tuple[int, str, str]:
    return (row.minute, row.queue, row.host_id)


async def read(
    storage: Storage, since: float, until: float, queue: str | None = None
) -> list[MetricRow]:
    return sorted(await storage.read_metrics(since, until, queue), key=metric_key)


async def test_metrics_round_trip_and_filter_by_range_and_queue(storage: Storage) -> None:
    rows = [
        MetricRow(
            MINUTE,
            "q",
            "A",
            enqueued=5,
            started=4,
            completed=3,
            failed=1,
            retried=1,
            throttled=2,
            dead=0,
            processing_hist={0: 2, 7: 1, 31: 1},
            e2e_hist={3: 4},
        ),
        MetricRow(MINUTE, "q", "B", completed=2, processing_hist={1: 2}),
        MetricRow(MINUTE, "other", "A", enqueued=1),
        MetricRow(MINUTE + 1, "q", "A", dead=1, e2e_hist={12: 1}),
        MetricRow(MINUTE + 10, "q", "A", started=9),
    ]
    await storage.write_metrics(rows)
    assert await read(storage, MINUTE * 60, (MINUTE + 1) * 60) == sorted(rows[:4], key=metric_key)
    assert await read(storage, MINUTE * 60, (MINUTE + 1) * 60, "q") == sorted(
        [rows[0], rows[1], rows[3]], key=metric_key
    )
    assert await read(storage, MINUTE * 60, (MINUTE + 10) * 60) == sorted(rows, key=metric_key)
    assert await read(storage, (MINUTE + 2) * 60, (MINUTE + 9) * 60) == []
    assert await read(storage, MINUTE * 60, (MINUTE + 10) * 60, "nowhere") == []

    [first] = [r for r in await read(storage, MINUTE * 60, MINUTE * 60, "q") if r.host_id == "A"]
    assert all(isinstance(k, int) and isinstance(v, int) for k, v in first.processing_hist.items())


async def test_write_metrics_replaces_the_row_of_a_minute_queue_and_host(storage: Storage) -> None:
    await storage.write_metrics([MetricRow(MINUTE, "q", "A", enqueued=1, processing_hist={1: 1})])
    latest = MetricRow(MINUTE, "q", "A", enqueued=7, completed=3, processing_hist={2: 5})
    await storage.write_metrics([latest])
    assert await read(storage, MINUTE * 60, MINUTE * 60) == [latest]
    await storage.write_metrics([])


async def test_sum_metrics_adds_hosts_and_minutes_up_per_bucket_and_queue(
    storage: Storage,
) -> None:
    base = MINUTE // 5 * 5
    await storage.write_metrics(
        [
            MetricRow(base, "q", "A", enqueued=1, completed=2, processing_hist={3: 1}),
            MetricRow(base, "q", "B", completed=5, dead=1),
            MetricRow(base + 4, "q", "A", failed=3, retried=2, throttled=1, started=7),
            MetricRow(base + 5, "q", "A", completed=1),
            MetricRow(base, "other", "A", enqueued=4),
            MetricRow(base + 20, "q", "A", completed=100),  # outside the range read below
        ]
    )
    until = (base + 19) * 60
    assert await storage.sum_metrics(1, base * 60, until, "q") == [
        MetricRow(base, "q", "*", enqueued=1, completed=7, dead=1),
        MetricRow(base + 4, "q", "*", failed=3, retried=2, throttled=1, started=7),
        MetricRow(base + 5, "q", "*", completed=1),
    ], "per minute: hosts added up, histograms left empty"
    assert await storage.sum_metrics(5, base * 60, until) == [
        MetricRow(base, "other", "*", enqueued=4),
        MetricRow(
            base,
            "q",
            "*",
            enqueued=1,
            started=7,
            completed=7,
            failed=3,
            retried=2,
            throttled=1,
            dead=1,
        ),
        MetricRow(base + 5, "q", "*", completed=1),
    ], "5-minute buckets, oldest first, queues by name"
    assert await storage.sum_metrics(5, base * 60, until, "nowhere") == []


async def test_sum_histograms_adds_buckets_up_over_minutes_or_rollups(storage: Storage) -> None:
    await storage.write_metrics(
        [
            MetricRow(MINUTE, "q", "A", processing_hist={3: 1, 40: 2}, e2e_hist={50: 1}),
            MetricRow(MINUTE, "q", "B", processing_hist={3: 4}),
            MetricRow(MINUTE + 1, "q", "A", e2e_hist={50: 2, 51: 1}),
            MetricRow(MINUTE + 1, "other", "A", processing_hist={9: 9}),
            MetricRow(MINUTE + 2, "q", "A", processing_hist={3: 100}),
        ]
    )
    span = (MINUTE * 60, (MINUTE + 1) * 60)
    assert await storage.sum_histograms(1, *span, "q") == ({3: 5, 40: 2}, {50: 3, 51: 1})
    assert await storage.sum_histograms(1, *span) == ({3: 5, 9: 9, 40: 2}, {50: 3, 51: 1})
    assert await storage.sum_histograms(1, *span, "nowhere") == ({}, {})
    await storage.write_rollups(
        60,
        [
            MetricRow(MINUTE, "q", "*", processing_hist={1: 2}, e2e_hist={2: 3}),
            MetricRow(MINUTE + 60, "q", "*", processing_hist={1: 5}),
        ],
        MINUTE + 120,
    )
    assert await storage.sum_histograms(60, MINUTE * 60, (MINUTE + 60) * 60) == (
        {1: 7},
        {2: 3},
    ), "roll-ups of that step only, never minute rows"
    assert await storage.sum_histograms(5, MINUTE * 60, (MINUTE + 60) * 60) == ({}, {})


async def test_purge_metrics_removes_only_older_minutes(storage: Storage) -> None:
    rows = [
        MetricRow(MINUTE, "q", "A"),
        MetricRow(MINUTE, "q", "B"),
        MetricRow(MINUTE + 1, "q", "A"),
        MetricRow(MINUTE + 2, "other", "A"),
    ]
    await storage.write_metrics(rows)
    assert await storage.purge_metrics(MINUTE + 1) == 2
    assert await read(storage, 0, (MINUTE + 100) * 60) == rows[2:]
    assert await storage.purge_metrics(MINUTE + 1) == 0


async def test_enqueue_counts_created_jobs_in_the_enqueued_metric(storage: Storage) -> None:
    await storage.enqueue([new_job(unique_key="k"), new_job(unique_key="k"), new_job()], NOW)
    await storage.enqueue([new_job(), new_job(queue="other")], NOW + 1)
    await storage.enqueue([new_job()], NOW + 60)

    def enqueued(rows: list[MetricRow]) -> dict[tuple[int, str], int]:
        totals: dict[tuple[int, str], int] = {}
        for row in rows:
            totals[row.minute, row.queue] = totals.get((row.minute, row.queue), 0) + row.enqueued
        return totals

    minute = int(NOW // 60)
    assert enqueued(await storage.read_metrics(NOW, NOW + 60)) == {
        (minute, "q"): 3,  # the duplicate is not counted
        (minute, "other"): 1,
        (int((NOW + 60) // 60), "q"): 1,
    }
    # One row per enqueuing connection (Postgres: '*' + backend pid, so no shared row lock).
    assert all(row.host_id.startswith("*") for row in await storage.read_metrics(NOW, NOW + 60))


async def test_a_large_batch_keeps_input_order_and_is_counted(storage: Storage) -> None:
    """Big batches take the bulk path (SQLite: chunked INSERTs, Postgres: COPY) unchanged."""
    jobs = [
        new_job(queue="big" if i % 3 else "other", payload={"i": i}, priority=i % 5)
        for i in range(2500)
    ]
    results = await storage.enqueue(jobs, NOW)
    ids = [int(r.id) for r in results]
    assert ids == sorted(ids) and len(set(ids)) == 2500
    assert all(r.outcome == "created" and r.status == "pending" for r in results)
    for index in (0, 1, 1234, 2499):
        job = await get(storage, results[index].id)
        assert (job.queue, job.payload, job.priority) == (
            jobs[index].queue,
            {"i": index},
            index % 5,
        )
    assert await storage.counts() == {
        "big": zero_counts(pending=1666),
        "other": zero_counts(pending=834),
    }
    enqueued = {r.queue: r.enqueued for r in await storage.read_metrics(NOW, NOW + 60)}
    assert enqueued == {"big": 1666, "other": 834}
    [first] = await storage.claim("big", HOST, 1, NOW)
    assert first.id == results[4].id  # priority 4, then the oldest


async def test_samples_round_trip_by_kind_and_range(storage: Storage) -> None:
    resources = {"cpu_percent": 12.5, "rss_bytes": 123_456_789, "disk": {"free": 1.5e9}}
    db = {"read_p50_ms": 0.4, "ops": 1200, "pool": [2, 1, 0]}
    await storage.write_samples(
        [
            (MINUTE, "A", "resources", resources),
            (MINUTE, "B", "resources", {"cpu_percent": 1.0}),
            (MINUTE, "A", "db", db),
            (MINUTE + 1, "A", "resources", {"cpu_percent": 99.0}),
            (MINUTE + 30, "A", "resources", {"cpu_percent": 50.0}),
        ]
    )
    found = await storage.read_samples("resources", MINUTE * 60, (MINUTE + 1) * 60)
    assert [m for m, _, _ in found] == sorted(m for m, _, _ in found), "oldest first"
    assert sorted(found, key=lambda s: (s[0], s[1])) == [
        (MINUTE, "A", resources),
        (MINUTE, "B", {"cpu_percent": 1.0}),
        (MINUTE + 1, "A", {"cpu_percent": 99.0}),
    ]
    assert await storage.read_samples("db", MINUTE * 60, (MINUTE + 60) * 60) == [(MINUTE, "A", db)]
    assert await storage.read_samples("nothing", 0, (MINUTE + 60) * 60) == []


async def test_write_samples_replaces_a_minute_host_and_kind(storage: Storage) -> None:
    await storage.write_samples([(MINUTE, "A", "resources", {"cpu_percent": 1.0})])
    await storage.write_samples([(MINUTE, "A", "resources", {"cpu_percent": 2.0})])
    assert await storage.read_samples("resources", MINUTE * 60, MINUTE * 60) == [
        (MINUTE, "A", {"cpu_percent": 2.0})
    ]
    await storage.write_samples([])


async def test_purge_metrics_also_removes_old_samples(storage: Storage) -> None:
    await storage.write_metrics([MetricRow(MINUTE, "q", "A"), MetricRow(MINUTE + 5, "q", "A")])
    await storage.write_samples(
        [(MINUTE, "A", "resources", {}), (MINUTE, "A", "db", {}), (MINUTE + 5, "A", "db", {})]
    )
    assert await storage.purge_metrics(MINUTE + 1) == 3
    assert await storage.read_samples("db", 0, (MINUTE + 10) * 60) == [(MINUTE + 5, "A", {})]
    assert await storage.read_samples("resources", 0, (MINUTE + 10) * 60) == []


async def test_rollups_replace_buckets_and_move_the_mark_together(storage: Storage) -> None:
    assert await storage.rollup_marks() == {}
    first = MetricRow(MINUTE, "q", "*", completed=3, processing_hist={4: 3})
    await storage.write_rollups(5, [first, MetricRow(MINUTE, "other", "*", dead=1)], MINUTE + 5)
    assert await storage.rollup_marks() == {5: MINUTE + 5}
    rebuilt = MetricRow(MINUTE, "q", "*", completed=4, e2e_hist={9: 4})
    await storage.write_rollups(5, [rebuilt], MINUTE + 10)
    await storage.write_rollups(60, [MetricRow(MINUTE, "q", "*", started=99)], MINUTE + 60)
    assert await storage.rollup_marks() == {5: MINUTE + 10, 60: MINUTE + 60}
    assert await storage.read_rollups(5, MINUTE * 60, MINUTE * 60, "q") == [rebuilt]
    assert [r.queue for r in await storage.read_rollups(5, 0, (MINUTE + 9) * 60)] == ["other", "q"]
    assert await storage.read_rollups(60, 0, (MINUTE + 99) * 60) == [
        MetricRow(MINUTE, "q", "*", started=99)
    ]
    assert await storage.read_rollups(5, (MINUTE + 1) * 60, (MINUTE + 9) * 60) == []
    # Per-minute rows are a different table: roll-ups never show up there.
    assert await storage.read_metrics(0, (MINUTE + 99) * 60) == []


async def test_purge_metrics_also_removes_old_rollups(storage: Storage) -> None:
    await storage.write_rollups(
        5, [MetricRow(MINUTE, "q", "*"), MetricRow(MINUTE + 5, "q", "*")], MINUTE + 10
    )
    assert await storage.purge_metrics(MINUTE + 1) == 1
    assert await storage.read_rollups(5, 0, (MINUTE + 99) * 60) == [MetricRow(MINUTE + 5, "q", "*")]
    assert await storage.rollup_marks() == {5: MINUTE + 10}, "the mark stays"


async def test_pool_capacity_is_a_positive_int(storage: Storage) -> None:
    capacity = storage.pool_capacity()
    assert isinstance(capacity, int) and capacity >= 1


# -- retention -------------------------------------------------------------------------------------


async def finished_job(storage: Storage, outcome: str, finished_at: float, **kw: Any) -> str:
    job = await run_job(storage, **kw)
    finish = done(job) if outcome == "done" else Finish(job.id, 1, "dead", "dead", error="x")
    assert await storage.finish(HOST, [finish], finished_at) == [job.id]
    return job.id


async def test_purge_deletes_only_old_finished_jobs_up_to_the_limit(storage: Storage) -> None:
    old = [await finished_job(storage, "done", NOW + i) for i in range(5)]
    recent = await finished_job(storage, "done", NOW + 100)
    old_dead = await finished_job(storage, "dead", NOW)
    other_queue = await finished_job(storage, "done", NOW, queue="other")
    running = await run_job(storage)
    pending = await enqueue_one(storage)

    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 3
    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 2
    assert await storage.purge("q", "done", finished_before=NOW + 50, limit=3) == 0
    for job_id in old:
        assert await storage.get_job(job_id) is None
    assert set(await ids_of(storage)) == {recent, old_dead, other_queue, running.id, pending}

    assert await storage.purge("q", "dead", finished_before=NOW + 50, limit=10) == 1
    assert await storage.get_job(old_dead) is None
    assert set(await ids_of(storage)) == {recent, other_queue, running.id, pending}
