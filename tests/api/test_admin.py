"""Queue, cron, process and metrics routes over real HTTP."""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta, timezone
from typing import Any
from urllib.parse import quote

import forge_nb as fnb
from forge_nb.api.convert import iso
from tests.api.conftest import Client, eventually

STATUSES = ["waiting", "pending", "running", "failed", "done", "dead"]


async def test_counts_and_queue_configs(app: fnb.App, api: Client) -> None:
    await app.ensure_queue("mail", workers=3)
    await api.post("/api/jobs", [{"kind": "send", "queue": "mail"}] * 2)

    counts = await api.get("/api/counts")
    assert counts.status == 200
    assert counts.body["mail"] == {
        "waiting": 0,
        "pending": 2,
        "running": 0,
        "failed": 0,
        "done": 0,
        "dead": 0,
    }

    queues = (await api.get("/api/queues"))["queues"]
    mail = next(q for q in queues if q["name"] == "mail")
    assert mail["workers"] == 3 and mail["paused"] is False
    assert mail["counts"]["pending"] == 2 and list(mail["counts"]) == STATUSES
    assert (await api.get("/api/queues/mail")).body == mail


async def test_patching_a_queue_changes_its_live_config(app: fnb.App, api: Client) -> None:
    await app.ensure_queue("mail")
    changed = await api.patch(
        "/api/queues/mail",
        {"workers": 7, "paused": True, "backoff_base_seconds": 2.5, "retain_done_seconds": 60},
    )
    assert changed.status == 200
    assert (changed["workers"], changed["paused"], changed["backoff_base_seconds"]) == (
        7,
        True,
        2.5,
    )
    stored = next(q for q in await app.queues() if q.name == "mail")
    assert (stored.workers, stored.paused, stored.retain_done_seconds) == (7, True, 60.0)

    resumed = await api.patch("/api/queues/mail", {"paused": False})
    assert resumed["paused"] is False and resumed["workers"] == 7

    for body in ({}, {"workers": -1}, {"workers": "many"}, {"paused": "yes"}, {"speed": 1}, []):
        bad = await api.patch("/api/queues/mail", body)
        assert bad.status == 422, body
    assert (await api.call("PATCH", "/api/queues/mail", raw=b"workers=3")).status == 400
    assert (await api.patch("/api/queues/nope", {"workers": 1})).status == 404
    assert (await api.get("/api/queues/nope")).status == 404
    stored = next(q for q in await app.queues() if q.name == "mail")
    assert stored.workers == 7  # refused edits changed nothing


async def test_patching_a_queue_takes_the_spec_knob_names_too(app: fnb.App, api: Client) -> None:
    await app.ensure_queue("mail")
    changed = await api.patch("/api/queues/mail", {"base_seconds": 4, "max_seconds": 40})
    assert changed.status == 200
    assert (changed["backoff_base_seconds"], changed["backoff_max_seconds"]) == (4.0, 40.0)
    changed = await api.patch("/api/queues/mail", {"jitter": False, "backoff_enabled": False})
    assert (changed["backoff_jitter"], changed["backoff_enabled"]) == (False, False)
    clash = await api.patch("/api/queues/mail", {"base_seconds": 1, "backoff_base_seconds": 2})
    assert clash.status == 422 and "one setting" in str(clash.body)
    assert (await api.patch("/api/queues/mail", {"base_seconds": 0})).status == 422
    stored = next(q for q in await app.queues() if q.name == "mail")
    assert (stored.base_seconds, stored.jitter) == (4.0, False)


async def test_schedules_list_toggle_edit_and_run(app: fnb.App, api: Client) -> None:
    await app.ensure_schedule(
        "nightly", "0 3 * * *", "forge_nb.echo", payload={"report": "daily"}, queue="reports"
    )
    listed = (await api.get("/api/schedules"))["schedules"]
    assert [s["name"] for s in listed] == ["nightly"]
    nightly = listed[0]
    assert (nightly["cron"], nightly["kind"], nightly["enabled"]) == (
        "0 3 * * *",
        "forge_nb.echo",
        True,
    )
    next_fire = datetime.fromisoformat(nightly["next_fire_at"])
    assert next_fire.hour == 3 and next_fire > datetime.now(UTC)

    off = await api.patch("/api/schedules/nightly", {"enabled": False})
    assert off.status == 200 and off["enabled"] is False
    assert [s.enabled for s in await app.schedules()] == [False]

    edited = await api.patch("/api/schedules/nightly", {"cron": "*/5 * * * *", "enabled": True})
    assert edited.status == 200 and edited["cron"] == "*/5 * * * *" and edited["enabled"] is True
    assert edited["payload"] == {"report": "daily"} and edited["queue"] == "reports"
    assert datetime.fromisoformat(edited["next_fire_at"]) - datetime.now(UTC) <= timedelta(
        minutes=5
    )

    for body in ({"cron": "every day"}, {"enabled": "no"}, {"payload": [1]}, {"colour": 1}, {}):
        bad = await api.patch("/api/schedules/nightly", body)
        assert bad.status == 422, body
    assert (await api.get("/api/schedules/nightly"))["cron"] == "*/5 * * * *"
    before = (await api.get("/api/schedules/nightly")).body
    refused: list[dict[str, Any]] = [  # an empty kind could never enqueue its job
        {"kind": ""},
        {"kind": "  "},
        {"kind": "", "cron": "0 4 * * *"},
        {"kind": "", "enabled": False},
        {"kind": None},
        {"cron": ""},
        {"tz": ""},
    ]
    for changes in refused:  # refused, and nothing changed
        bad = await api.patch("/api/schedules/nightly", changes)
        assert bad.status == 422 and bad["message"], changes
    assert (await api.get("/api/schedules/nightly")).body == before
    assert [(s.kind, s.cron, s.enabled) for s in await app.schedules()] == [
        ("forge_nb.echo", "*/5 * * * *", True)
    ]
    assert (await api.patch("/api/schedules/nope", {"enabled": True})).status == 404
    assert (await api.get("/api/schedules/nope")).status == 404

    ran = await api.post("/api/schedules/nightly/run")
    assert ran.status == 201 and ran["outcome"] == "created"
    assert (ran["kind"], ran["queue"], ran["payload"]) == (
        "forge_nb.echo",
        "reports",
        {"report": "daily"},
    )
    assert (await api.get(f"/api/jobs/{ran['id']}")).status == 200
    assert (await api.post("/api/schedules/nope/run")).status == 404


async def test_processes_and_metrics_follow_the_workers(app: fnb.App, api: Client) -> None:
    @app.job(kind="work")
    async def work(ctx: fnb.JobCtx, n: int) -> int:
        return n

    assert (await api.get("/api/processes")).body == {"processes": []}
    await app.ensure_queue("default", workers=2)
    await app.start()
    processes = (await eventually(lambda: _processes(api)))["processes"]
    assert {p["queue"] for p in processes} == {"default"} and len(processes) == 2
    assert all(p["host_id"] == app.host_id and p["id"].startswith("default-") for p in processes)
    datetime.fromisoformat(processes[0]["last_heartbeat"])

    made = await api.post("/api/jobs", [{"kind": "work", "payload": {"n": i}} for i in range(3)])
    assert made["created"] == 3
    metrics = await eventually(lambda: _completed(api, 3))
    bucket = metrics["metrics"][-1]
    assert bucket["queue"] == "default" and bucket["enqueued"] >= 1
    datetime.fromisoformat(bucket["minute"])
    assert metrics["latency"]["processing_p50"] is not None
    assert set(metrics["latency"]) == {
        f"{p}_p{q}" for p in ("processing", "e2e") for q in (50, 95, 99)
    }

    since = (datetime.now(UTC) - timedelta(minutes=10)).isoformat()
    queries = (
        "since=15m",
        f"since={quote(since)}",
        f"since={since}",  # unencoded "+00:00" arrives as " 00:00": still understood
        f"since={time.time() - 600}&until={time.time() + 60}",
        "queue=default",
        "step=5",
        "step=60&since=1d",
    )
    for query in queries:
        assert sum(b["completed"] for b in (await api.get(f"/api/metrics?{query}"))["metrics"]) == 3
    assert (await api.get("/api/metrics?queue=other"))["metrics"] == []
    assert (await api.get("/api/metrics?since=2000-01-01&until=2000-01-02"))["metrics"] == []
    assert (await api.get("/api/metrics?step=60"))["step"] == 60
    for query in ("since=yesterday", "until=nan", "since=1h&until=2h", "step=7", "step=1.0"):
        bad = await api.get(f"/api/metrics?{query}")
        assert bad.status == 400, query


async def test_metrics_refuse_times_outside_1970_to_9999(app: fnb.App, api: Client) -> None:
    """Out-of-range since/until used to be a 500 (OverflowError) or an undocumented 422."""
    for query in (
        "since=0&until=1e300",
        "since=-1e300",
        "until=-1e300",
        "since=1e19&until=1e20",
        "since=-99999999999999",
        "since=-1",
        "until=253402300800",
        "since=1e12d",
        "since=99999999999999w",
        "since=0001-01-01T00:00:00%2B01:00",
        "until=9999-12-31T23:59:59-01:00",
        "since=inf",
    ):
        bad = await api.get(f"/api/metrics?{query}")
        assert bad.status == 400, (query, bad.body)
        assert bad["error"] == "Bad Request" and bad["message"], query
    edges = {
        "since=0&until=253402300799": ("1970-01-01T00:00:00+00:00", "9999-12-31T23:59:59+00:00"),
        "until=0": ("1970-01-01T00:00:00+00:00", "1970-01-01T00:00:00+00:00"),  # since: not < 0
        "until=1800": ("1970-01-01T00:00:00+00:00", "1970-01-01T00:30:00+00:00"),
        "since=1970-01-01&until=": ("1970-01-01T00:00:00+00:00", None),
    }
    for query, (since, until) in edges.items():
        ok = await api.get(f"/api/metrics?{query}")
        assert ok.status == 200 and ok["since"] == since, (query, ok.body)
        assert until is None or ok["until"] == until, (query, ok.body)
        assert ok["metrics"] == []


def test_iso_never_overflows() -> None:
    """Times beyond datetime's years 1..9999 show as the nearest end, never an error."""
    plus_one = timezone(timedelta(hours=1))
    cases = {
        0: "1970-01-01T00:00:00+00:00",
        253402300799: "9999-12-31T23:59:59+00:00",
        1e20: "9999-12-31T23:59:59.999999+00:00",
        1e300: "9999-12-31T23:59:59.999999+00:00",
        float("inf"): None,
        float("nan"): None,
        -1e20: "0001-01-01T00:00:00+00:00",
        datetime(1, 1, 1, tzinfo=plus_one): "0001-01-01T00:00:00+00:00",
        datetime(9999, 12, 31, 23, tzinfo=timezone(-timedelta(hours=2))): (
            "9999-12-31T23:59:59.999999+00:00"
        ),
        datetime(2026, 1, 1, 1, tzinfo=plus_one): "2026-01-01T00:00:00+00:00",
        None: None,
    }
    for value, shown in cases.items():
        assert iso(value) == shown, value


async def _processes(api: Client) -> dict | None:
    body = (await api.get("/api/processes")).body
    return body if len(body["processes"]) == 2 else None


async def _completed(api: Client, n: int) -> dict | None:
    body = (await api.get("/api/metrics")).body
    return body if sum(b["completed"] for b in body["metrics"]) >= n else None
