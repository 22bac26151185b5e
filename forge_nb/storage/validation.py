"""Checks shared by both backends, run before anything is written."""

from __future__ import annotations

import json
import json.encoder
import math
import operator
import re
from collections.abc import Mapping, Sequence
from typing import Any

from forge_nb.errors import PayloadError, UnknownDependency
from forge_nb.storage.jsonable import json_default
from forge_nb.storage.records import QUEUE_KNOB_ALIASES, QUEUE_KNOBS, JobFilter, NewJob

#: Largest payload accepted, as encoded JSON text (bytes of UTF-8).
MAX_PAYLOAD_BYTES = 1_000_000
#: Deepest nesting of arrays and objects stored (payloads, results, schedule payloads).
#: Readers walk JSON recursively (Python's own json module among them); a cap keeps every
#: stored value readable and listable. Protocol Buffers' parsers use the same default.
MAX_JSON_DEPTH = 100
MAX_NAME_LENGTH = 200
MAX_FILTER_LENGTH = 1000
#: Priorities are 32-bit signed ints; attempts are capped so counters never overflow.
PRIORITY_MIN, PRIORITY_MAX = -(2**31), 2**31 - 1
MAX_ATTEMPTS_LIMIT = 1_000_000
#: Latest run time accepted (9999-12-31 UTC) and the longest delay (100 years).
MAX_TIMESTAMP = 253_402_300_799.0
MAX_DELAY_S = 100 * 365.25 * 86_400


#: JSON string literals, and everything that is not a bracket (for `json_depth_over`).
_STRINGS = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"')
_NOT_BRACKETS = re.compile(r"[^\[\]{}]+")
_INNERMOST = re.compile(r"\[\]|\{\}")

#: One encoder for every call: ``json.dumps`` with options builds a new one each time.
_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"), ensure_ascii=False)


def _unencodable(value: object) -> Any:
    """numpy numbers become Python numbers; anything else is a TypeError with a hint."""
    return json_default(value)


#: The C encoder behind ``_ENCODER``, built once: ``JSONEncoder.encode`` rebuilds it on every
#: call, which was half the cost of encoding a small payload. Same output, same NaN/type
#: errors; without a markers dict a self-referencing value ends as a RecursionError.
_C_ENCODE = (
    json.encoder.c_make_encoder(  # type: ignore[attr-defined]
        None, _unencodable, json.encoder.encode_basestring, None, ":", ",", False, False, False
    )
    if json.encoder.c_make_encoder is not None  # type: ignore[attr-defined]
    else None
)


def dump_json(value: Any, *, what: str) -> str:
    """Strict JSON: no NaN/Infinity, no arbitrary objects, at most `MAX_JSON_DEPTH` levels
    deep; a clear error otherwise."""
    try:
        text = "".join(_C_ENCODE(value, 0)) if _C_ENCODE is not None else _ENCODER.encode(value)
    except (TypeError, ValueError) as exc:
        raise PayloadError(f"{what} is not JSON-serialisable: {exc}") from None
    except RecursionError:
        raise PayloadError(
            f"{what} is nested more than {MAX_JSON_DEPTH} levels deep (or contains itself)"
        ) from None
    if json_depth_over(text, MAX_JSON_DEPTH):
        raise PayloadError(f"{what} is nested more than {MAX_JSON_DEPTH} levels deep")
    return text


def json_depth_over(text: str, limit: int) -> bool:
    """Whether JSON ``text`` nests arrays/objects more than ``limit`` deep.

    Cheap for what is stored every day: fewer brackets than the limit means it cannot
    be deeper (two C-speed counts). Otherwise strings are cut out and innermost bracket
    pairs are peeled off one level per pass, all in C.
    """
    if text.count("[") + text.count("{") <= limit:
        return False
    skeleton = _NOT_BRACKETS.sub("", _STRINGS.sub("", text))
    for _ in range(limit):
        peeled = _INNERMOST.sub("", skeleton)  # one level: pairs it makes wait for next pass
        if not peeled:
            return False
        if peeled == skeleton:  # not balanced: not JSON this module wrote; judge by length
            break
        skeleton = peeled
    return bool(skeleton)


def encode_payload(payload: Mapping[str, Any]) -> str:
    """Validate and encode a payload, enforcing `MAX_PAYLOAD_BYTES`."""
    if type(payload) is not dict:
        if not isinstance(payload, Mapping):
            raise PayloadError(
                f"payload must be a JSON object (dict), got {type(payload).__name__}"
            )
        payload = dict(payload)
    if _C_ENCODE is None:
        text = dump_json(payload, what="payload")
    else:
        # `dump_json` inlined: a bulk enqueue encodes one payload per job, and the calls
        # cost as much as the encoding of a small payload.
        try:
            text = "".join(_C_ENCODE(payload, 0))
        except (TypeError, ValueError, RecursionError):
            text = dump_json(payload, what="payload")  # raises the same clear error
        if text.count("[") + text.count("{") > MAX_JSON_DEPTH and json_depth_over(
            text, MAX_JSON_DEPTH
        ):
            raise PayloadError(f"payload is nested more than {MAX_JSON_DEPTH} levels deep")
    if text.isascii():  # the common case: one byte per character, nothing to re-encode
        if len(text) > MAX_PAYLOAD_BYTES:
            raise PayloadError(
                f"payload is {len(text)} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes"
            )
        return text
    try:
        size = len(text.encode("utf-8"))
    except UnicodeEncodeError as exc:
        raise PayloadError(f"payload holds text that is not valid Unicode: {exc.reason}") from None
    if size > MAX_PAYLOAD_BYTES:
        raise PayloadError(f"payload is {size} bytes; the limit is {MAX_PAYLOAD_BYTES} bytes")
    return text


def check_name(value: object, what: str) -> str:
    """Queue, kind and schedule names: non-empty strings of sane length."""
    if not isinstance(value, str) or not value or value.isspace():
        raise ValueError(f"{what} must be a non-empty string, got {value!r}")
    if len(value) > MAX_NAME_LENGTH:
        raise ValueError(f"{what} is longer than {MAX_NAME_LENGTH} characters")
    if "\x00" in value:
        raise ValueError(f"{what} must not contain NUL characters")
    return value


def is_unicode(text: str) -> bool:
    """Whether ``text`` can be stored: a Python str may hold lone surrogates, which no
    database encoding (UTF-8) can."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def check_filter(filter: JobFilter) -> JobFilter:
    """Filter strings are matched literally: valid Unicode without NUL, of bounded length."""
    for name in ("queue", "kind", "search", "status", "tag"):
        value = getattr(filter, name)
        if value is None:
            continue
        if not isinstance(value, str) or "\x00" in value:
            raise ValueError(f"{name} filter must be a string without NUL characters")
        if len(value) > MAX_FILTER_LENGTH:
            raise ValueError(f"{name} filter is longer than {MAX_FILTER_LENGTH} characters")
        if not is_unicode(value):
            raise ValueError(f"{name} filter is not valid Unicode")
    after = filter.scheduled_after
    if after is not None:
        if (
            isinstance(after, bool)
            or not isinstance(after, int | float)
            or not 0 <= after <= MAX_TIMESTAMP
        ):
            raise ValueError(f"scheduled_after must be epoch seconds in 1970..9999, got {after!r}")
        if filter.status not in (None, "pending"):
            raise ValueError(
                "scheduled_after lists pending jobs; it cannot be combined with another status"
            )
    return filter


def _int_in(value: object, low: int, high: int) -> bool:
    """An int (not a bool) in [low, high]."""
    if type(value) is int:  # the common case, without the isinstance checks
        return low <= value <= high
    return isinstance(value, int) and not isinstance(value, bool) and low <= value <= high


def _number_in(value: object, low: float, high: float) -> bool:
    """An int or float (not a bool, not NaN) in [low, high]."""
    if type(value) is float or type(value) is int:  # NaN fails the comparison
        return low <= value <= high
    return isinstance(value, int | float) and not isinstance(value, bool) and low <= value <= high


def prepare_job(
    job: NewJob, now: float, names: set[tuple[str, str]] | None = None
) -> tuple[str, str, str, int, float, int, str | None, str | None]:
    """Validate one job.

    Returns (kind, queue, payload_json, priority, scheduled_at, max_attempts, unique_key,
    code_version).
    ``names`` holds (kind, queue) pairs already checked in this batch: a batch mostly
    repeats a few, and checking each again cost a tenth of a bulk enqueue.
    """
    pair = (job.kind, job.queue)
    # (a name that is not a str is never looked up: it may not hash, and gets its clear error)
    if (
        names is None
        or type(job.kind) is not str
        or type(job.queue) is not str
        or (pair not in names)
    ):
        check_name(job.kind, "kind")
        check_name(job.queue, "queue")
        if names is not None:
            names.add(pair)
    # Each check's common case inline, its helper only for the rest: a bulk enqueue runs
    # these once per job, and three calls cost as much as the checks.
    priority, delay, max_attempts = job.priority, job.delay, job.max_attempts
    if not (type(priority) is int and PRIORITY_MIN <= priority <= PRIORITY_MAX) and not _int_in(
        priority, PRIORITY_MIN, PRIORITY_MAX
    ):
        raise ValueError(
            f"priority must be an int from {PRIORITY_MIN} to {PRIORITY_MAX}, got {priority!r}"
        )
    if not (type(delay) is float and 0 <= delay <= MAX_DELAY_S) and not _number_in(
        delay, 0, MAX_DELAY_S
    ):
        raise ValueError(f"delay must be a number of seconds from 0 to 100 years, got {delay!r}")
    if not (type(max_attempts) is int and 1 <= max_attempts <= MAX_ATTEMPTS_LIMIT) and not _int_in(
        max_attempts, 1, MAX_ATTEMPTS_LIMIT
    ):
        raise ValueError(
            f"max_attempts must be an int from 1 to {MAX_ATTEMPTS_LIMIT}, got {max_attempts!r}"
        )
    if job.unique_key is not None:
        check_name(job.unique_key, "unique_key")
    if job.code_version is not None:
        check_code_version(job.code_version)
    if job.scheduled_at is None:
        scheduled_at = now + float(delay)
    elif _number_in(job.scheduled_at, 0, MAX_TIMESTAMP):
        scheduled_at = float(job.scheduled_at)
    else:
        raise ValueError(
            f"scheduled_at must be epoch seconds in 1970..9999, got {job.scheduled_at!r}"
        )
    return (
        job.kind,
        job.queue,
        encode_payload(job.payload),
        priority,
        scheduled_at,
        max_attempts,
        job.unique_key,
        job.code_version,
    )


#: A shipped code version: the hex content hash `forge_nb.runtime.shipped_code` computes.
CODE_VERSION = re.compile(r"^[0-9a-f]{16,64}$")


def check_code_version(version: object) -> str:
    """``version`` if it looks like a code version (hex content hash), else ValueError."""
    if not isinstance(version, str) or not CODE_VERSION.match(version):
        raise ValueError(f"code_version must be a hex content hash, got {version!r}")
    return version


def parse_job_id(job_id: object) -> int | None:
    """A job id as the integer key, or None when it cannot be one (unknown id)."""
    if isinstance(job_id, int) and not isinstance(job_id, bool):
        return job_id if 0 < job_id < 2**63 else None
    if isinstance(job_id, str) and job_id.isascii() and job_id.isdigit() and len(job_id) < 19:
        return int(job_id)
    return None


#: Most dependencies one job may have (a fan-in over 10,000 is the documented case).
MAX_DEPENDENCIES = 100_000


def dependency_keys(depends_on: object) -> list[int]:
    """A job's ``depends_on`` as distinct integer ids, in order; ValueError naming a bad one."""
    if isinstance(depends_on, str | bytes) or not isinstance(depends_on, Sequence | set):
        raise ValueError(f"depends_on must be a list of job ids, got {depends_on!r}")
    if len(depends_on) > MAX_DEPENDENCIES:
        raise ValueError(f"a job may depend on at most {MAX_DEPENDENCIES:,} jobs")
    keys: dict[int, None] = {}
    for job_id in depends_on:
        key = parse_job_id(job_id)
        if key is None:
            raise UnknownDependency(f"unknown dependency id {job_id!r}: nothing was enqueued")
        keys[key] = None
    return list(keys)


_UNIQUE_KEY = operator.itemgetter(6)


def has_unique_keys(prepared: Sequence[tuple[Any, ...]]) -> bool:
    """Whether a job of a prepared batch has a unique key (a checked key is never empty, so
    its truth says; one C-speed pass)."""
    return any(map(_UNIQUE_KEY, prepared))


def dependency_links(jobs: Sequence[NewJob]) -> list[tuple[int, list[int]]]:
    """(index in the batch, dependency ids) of each job that has dependencies."""
    return [(i, dependency_keys(job.depends_on)) for i, job in enumerate(jobs) if job.depends_on]


def in_batch(exc: ValueError, index: int, count: int) -> ValueError:
    """``exc`` naming the job of a batch it is about (``job 1 of 3: …``); a batch of one
    needs no name."""
    return exc if count == 1 else type(exc)(f"job {index} of {count}: {exc}")


def prepare_jobs(jobs: Sequence[NewJob], now: float) -> list[tuple[Any, ...]]:
    """Validate a whole batch first, so one bad job means nothing is written."""
    rows: list[tuple[Any, ...]] = []
    names: set[tuple[str, str]] = set()
    try:
        for job in jobs:
            rows.append(prepare_job(job, now, names))
    except ValueError as exc:
        raise in_batch(exc, len(rows), len(jobs)) from None
    return rows


def check_queue_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """Validate queue config edits; returns them coerced to their column types."""
    clean: dict[str, Any] = {}
    for key, value in unalias_queue_knobs(knobs).items():
        expected = QUEUE_KNOBS.get(key)
        if expected is None:
            known = ", ".join([*QUEUE_KNOBS, *QUEUE_KNOB_ALIASES])
            raise ValueError(f"unknown queue setting {key!r}; known: {known}")
        if expected is bool:
            if not isinstance(value, bool):
                raise ValueError(f"{key} must be true or false, got {value!r}")
        elif expected is int:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= 10_000:
                raise ValueError(f"{key} must be an int between 0 and 10000, got {value!r}")
        else:
            if isinstance(value, bool) or not isinstance(value, int | float):
                raise ValueError(f"{key} must be a number, got {value!r}")
            if isinstance(value, int) and not _float_holds(value):
                raise ValueError(f"{key} must be a number a float holds exactly, got {value!r}")
            if not math.isfinite(value) or value < 0:
                raise ValueError(f"{key} must be a finite number >= 0, got {value!r}")
            value = float(value)
        clean[key] = value
    if clean.get("backoff_base_seconds") == 0.0:
        raise ValueError("backoff_base_seconds must be > 0")
    return clean


def unalias_queue_knobs(knobs: Mapping[str, Any]) -> dict[str, Any]:
    """SPEC §4's names (``base_seconds``…) to the stored ones; both for one knob must agree."""
    out: dict[str, Any] = {}
    for key, value in knobs.items():
        name = QUEUE_KNOB_ALIASES.get(key, key)
        if name in out and out[name] != value:
            alias = next(a for a, n in QUEUE_KNOB_ALIASES.items() if n == name)
            raise ValueError(f"{alias} and {name} name one setting; give it once")
        out[name] = value
    return out


def _float_holds(value: int) -> bool:
    """True when ``value`` survives the float column unchanged (not so past 2**53)."""
    try:
        return float(value) == value
    except OverflowError:
        return False


def escape_like(text: str) -> str:
    """Escape LIKE wildcards so a search is a plain substring match (ESCAPE '\\')."""
    return "%" + text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%"


def retryable_statuses(filter: JobFilter) -> tuple[str, ...]:
    """The statuses a bulk retry touches: dead and failed, or the one asked for."""
    if filter.status is None:
        return ("dead", "failed")
    if filter.status not in ("dead", "failed"):
        raise ValueError(f"only dead or failed jobs can be retried, not {filter.status!r}")
    return (filter.status,)


def check_bucket(capacity: float, refill_per_second: float) -> None:
    """Token-bucket settings: finite numbers > 0."""
    for name, value in (("capacity", capacity), ("refill_per_second", refill_per_second)):
        if isinstance(value, bool) or not isinstance(value, int | float) or not value > 0:
            raise ValueError(f"{name} must be a number > 0, got {value!r}")
        if value == float("inf"):
            raise ValueError(f"{name} must be finite")
