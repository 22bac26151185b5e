"""Row → record mappers shared by both backends (queries select columns in these orders)."""

from __future__ import annotations

import json
import operator
from collections.abc import Callable, Iterable, Sequence
from typing import Any, cast

from forge_nb.storage.records import (
    METRIC_COUNTERS,
    ClaimedJob,
    JobEvent,
    JobLog,
    JobPage,
    JobRecord,
    Lease,
    MetricRow,
    ProcessRecord,
    QueueConfig,
    RateLimit,
    Schedule,
    ShippedCode,
    Status,
    StrandedKind,
    to_datetime,
)
from forge_nb.storage.validation import MAX_JSON_DEPTH, json_depth_over, parse_job_id

Row = Sequence[Any]

#: What a stored value nested deeper than `MAX_JSON_DEPTH` reads as (stored before the cap).
TOO_DEEP = "_forge_nb_unreadable"


def load_json(text: str) -> Any:
    """Stored JSON text as a value; one nested too deeply to walk safely becomes a marker
    object naming the problem and showing the text's start, so lists and views still work.
    """
    if json_depth_over(text, MAX_JSON_DEPTH):
        return {
            TOO_DEEP: f"stored JSON nested more than {MAX_JSON_DEPTH} levels deep; "
            f"it starts: {text[:200]}"
        }
    return json.loads(text)


def claimed_job(row: Row) -> ClaimedJob:
    """(id, kind, queue, payload, attempts, max_attempts, priority, created_at, scheduled_at,
    code_version, dependencies): `ClaimedJob`'s field order."""
    return ClaimedJob(str(row[0]), row[1], row[2], load_json(row[3]), *row[4:])


def claim_order(job: ClaimedJob) -> tuple[int, float, int]:
    """Sort key matching the claim's ORDER BY (RETURNING gives no order guarantee)."""
    return (-job.priority, job.scheduled_at, int(job.id))


def job_record(row: Row) -> JobRecord:
    """Columns in the order of the ``get_job`` query."""
    created_at = to_datetime(row[14])
    scheduled_at = to_datetime(row[15])
    assert created_at is not None and scheduled_at is not None
    return JobRecord(
        id=str(row[0]),
        kind=row[1],
        queue=row[2],
        status=cast(Status, row[3]),
        priority=row[4],
        attempts=row[5],
        max_attempts=row[6],
        payload=load_json(row[7]),
        result=None if row[8] is None else load_json(row[8]),
        last_error=row[9],
        last_traceback=row[10],
        progress=row[11],
        progress_message=row[12],
        unique_key=row[13],
        created_at=created_at,
        scheduled_at=scheduled_at,
        started_at=to_datetime(row[16]),
        finished_at=to_datetime(row[17]),
        claimed_by=row[18],
        cancel_requested_at=to_datetime(row[19]),
        code_version=row[20],
        dependencies=row[21],
        waiting_on=row[22],
        expires_at=to_datetime(row[23]),
        concurrency_key=row[24],
    )


def job_event(row: Row) -> JobEvent:
    """(job_id, at, event, attempt, message)."""
    return JobEvent(str(row[0]), row[1], row[2], row[3], row[4])


def queue_config(row: Row) -> QueueConfig:
    """Columns in `QueueConfig` field order (SQLite stores the flags as 0 and 1)."""
    name, workers, paused, backoff, base, most, jitter, *retention_and_limit = row
    return QueueConfig(
        name, workers, bool(paused), bool(backoff), base, most, bool(jitter), *retention_and_limit
    )


def process_record(row: Row) -> ProcessRecord:
    """(id, host_id, hostname, pid, queue, current_job, last_heartbeat, started_at, version,
    kinds, stale_after): kinds a JSON array (SQLite) or a list (Postgres)."""
    last_heartbeat = to_datetime(row[6])
    started_at = to_datetime(row[7])
    assert last_heartbeat is not None and started_at is not None
    return ProcessRecord(
        id=row[0],
        host_id=row[1],
        hostname=row[2],
        pid=row[3],
        queue=row[4],
        current_job=row[5],
        last_heartbeat=last_heartbeat,
        started_at=started_at,
        version=row[8],
        kinds=tuple(json.loads(row[9]) if isinstance(row[9], str) else row[9]),
        stale_after=row[10],
    )


def stranded_kind(row: Row, count_up_to: int) -> StrandedKind:
    """(queue, kind, waiting jobs counted up to ``count_up_to``)."""
    return StrandedKind(queue=row[0], kind=row[1], jobs=row[2], capped=row[2] >= count_up_to)


def schedule(row: Row) -> Schedule:
    """(name, cron, kind, payload, queue, enabled, tz, last_fire_at, next_fire_at)."""
    name, cron, kind, payload, queue, enabled, *tz_and_fires = row
    return Schedule(name, cron, kind, load_json(payload), queue, bool(enabled), *tz_and_fires)


def lease(row: Row) -> Lease:
    """(name, holder, expires_at)."""
    return Lease(row[0], row[1], row[2])


def rate_limit(row: Row) -> RateLimit:
    """(scope, capacity, refill_per_second, tokens, updated_at, held_until)."""
    return RateLimit(row[0], row[1], row[2], row[3], row[4], row[5], *row[6:7])


def encode_histogram(hist: dict[int, int]) -> str:
    """Sparse histogram as JSON text."""
    return json.dumps({str(k): v for k, v in hist.items()}, separators=(",", ":"))


def decode_histogram(text: str) -> dict[int, int]:
    """Inverse of `encode_histogram`."""
    return {int(k): int(v) for k, v in json.loads(text).items()}


def histogram_query(
    step: int, since: float, until: float, queue: str | None
) -> tuple[str, tuple[Any, ...]]:
    """Name and parameters of the `sum_histograms` statement: minute rows for step 1,
    else that step's roll-ups."""
    params = (int(since // 60), int(until // 60), queue)
    if step == 1:
        return "sum_histograms_minutes", params
    return "sum_histograms_rollups", (*params, step)


def histogram_totals(found: Iterable[Row]) -> tuple[dict[int, int], dict[int, int]]:
    """(which, bucket, count) rows, which 0 = processing and 1 = end-to-end, as two histograms."""
    hists: tuple[dict[int, int], dict[int, int]] = ({}, {})
    for which, bucket, count in found:
        if count:
            hists[which][int(bucket)] = int(count)
    return hists


def metric_row(row: Row, histograms: bool = True) -> MetricRow:
    """Columns in `MetricRow` field order, histograms as JSON text (left empty if not wanted).

    Decoding histograms is most of the cost of reading many rows: skip it for counters.
    """
    hists = map(decode_histogram, row[10:12]) if histograms else ({}, {})
    return MetricRow(*row[:10], *hists)


_counters = operator.attrgetter(*METRIC_COUNTERS)


def metric_params(row: MetricRow) -> tuple[Any, ...]:
    """Parameters for the ``write_metrics`` statement (columns in `MetricRow` field order)."""
    return (
        row.minute,
        row.queue,
        row.host_id,
        *_counters(row),
        encode_histogram(row.processing_hist),
        encode_histogram(row.e2e_hist),
    )


#: Ids one page of a payload search looks at, newest first. A substring cannot use an
#: index, so an unbounded search of a rare string reads the whole table; a window bounds
#: what one page reads at any table size (the README's query-time table measures it at
#: 1,000,000 jobs), and the page's cursor carries on below it.
SEARCH_WINDOW = 50_000


def search_floor(upper: int | None, lowest: int | None, highest: int | None) -> int | None:
    """The lowest id a newest-first search page scans, or None when the rest fits in one.

    ``upper`` is the cursor's id (the page scans ids below it), None on the first page;
    ``lowest`` and ``highest`` are the table's id bounds (None when it is empty).
    """
    if lowest is None or highest is None:
        return None
    top = upper if upper is not None else highest + 1
    floor = top - SEARCH_WINDOW
    return floor if floor > lowest else None


def job_page(found: Sequence[Row], limit: int, scheduled: bool, floor: int | None) -> JobPage:
    """A `list_jobs` page from ``get_job``-shaped rows, with the cursor to the next one.

    A full page continues after its last row (in the Scheduled order or by id); a
    search page that ran out inside its id window continues below the window.
    """
    jobs = [job_record(r) for r in found]
    if len(jobs) == limit:
        return JobPage(jobs, scheduled_cursor(found[-1]) if scheduled else jobs[-1].id)
    return JobPage(jobs, None if floor is None else str(floor))


def log_params(key: int, log: JobLog) -> tuple[Any, ...]:
    """write_job_log's parameters for one attempt's log of job ``key``."""
    return (key, log.attempt, log.text, log.lines, log.dropped, log.updated_at)


def rollup_params(step: int, row: MetricRow) -> tuple[Any, ...]:
    """Parameters for the ``write_rollup`` statement (rolled-up rows carry no host)."""
    minute, queue, _host, *rest = metric_params(row)
    return (step, minute, queue, *rest)


def process_params(
    p: ProcessRecord, kinds: Callable[[Sequence[str]], Any] = list
) -> tuple[Any, ...]:
    """Parameters for the ``register_process`` statement (both dialects, same order);
    ``kinds`` encodes the kinds (SQLite: a JSON array, Postgres: a list)."""
    return (
        p.id,
        p.host_id,
        p.hostname,
        p.pid,
        p.queue,
        p.current_job,
        p.last_heartbeat.timestamp(),
        p.started_at.timestamp(),
        p.version,
        kinds(p.kinds),
        p.stale_after,
    )


def scheduled_cursor(row: Row) -> str:
    """Keyset cursor of the Scheduled order from a ``get_job``-shaped row: exact stored time."""
    return f"{row[15]!r}:{row[0]}"


def parse_scheduled_cursor(cursor: str) -> tuple[float, int]:
    """Inverse of `scheduled_cursor`; ValueError for anything else."""
    at, _, key = str(cursor).partition(":")
    job_id = parse_job_id(key)
    try:
        when = float(at)
    except ValueError:
        when = float("nan")
    if job_id is None or when != when:
        raise ValueError(f"invalid cursor {cursor!r}")
    return when, job_id


def shipped_code(row: Row) -> ShippedCode:
    """(version, kind, python, forge_nb_version, signature, created_at[, code]): `ShippedCode`'s
    field order."""
    version, kind, python, forge_nb_version, signature, created_at, *code = row
    return ShippedCode(
        version,
        kind,
        python,
        forge_nb_version,
        signature,
        created_at,
        bytes(code[0]) if code else None,
    )


def code_params(code: ShippedCode) -> tuple[Any, ...]:
    """Parameters of ``publish_code``."""
    if code.code is None:
        raise ValueError(f"code version {code.version} has no code to publish")
    return (
        code.version,
        code.kind,
        code.python,
        code.forge_nb_version,
        code.signature,
        code.code,
        code.created_at,
    )
