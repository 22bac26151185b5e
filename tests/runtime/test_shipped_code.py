"""Shipped code (issue 16 part 2), with real worker processes on both backends.

Workers run ``forge-nb worker --shipped-code`` in an empty temporary directory with no
module of the jobs on their path: what they run comes from the database, signed. Job
functions here are defined in ``__main__`` (a ``python -c`` publisher) or in this test
module, which the workers cannot import either: both travel by value.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import json
import os
import pickle
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import pytest

import forge_nb as fnb
from forge_nb.config import parse_url
from forge_nb.runtime import process_ship, shipped_code
from forge_nb.runtime.flow import kind_policy
from forge_nb.runtime.handlers import handler_for_function
from forge_nb.runtime.shipped_code import ENV_CODE_KEY, CodeKeyError

from .test_app import FAST, eventually

pytestmark = [pytest.mark.timeout(180)]

KEY = "test-key-0f9c2b"
OTHER_KEY = "another-key-77aa"
WORKER_FLAGS = ("--heartbeat-interval", "0.2", "--poll-interval", "0.2", "--stale-after", "3")


@pytest.fixture(autouse=True)
def code_key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(ENV_CODE_KEY, KEY)
    return KEY


class Shipped:
    """Spawns ``forge-nb worker --shipped-code`` processes in empty directories."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.procs: list[subprocess.Popen[bytes]] = []
        self.logs: dict[int, Path] = {}

    def spawn(self, url: str, key: str | None = KEY, *extra: str) -> subprocess.Popen[bytes]:
        cwd = self.root / f"worker-{len(self.procs)}"
        cwd.mkdir()
        env = {k: v for k, v in os.environ.items() if k not in (ENV_CODE_KEY, "PYTHONPATH")}
        if key is not None:
            env[ENV_CODE_KEY] = key
        log_path = self.root / f"worker-{len(self.procs)}.log"
        cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url, "--shipped-code"]
        with open(log_path, "wb") as log:
            proc = subprocess.Popen(
                [*cmd, *WORKER_FLAGS, *extra], cwd=cwd, env=env, stdout=log, stderr=log
            )
        self.procs.append(proc)
        self.logs[proc.pid] = log_path
        return proc

    def log(self, proc: subprocess.Popen[bytes]) -> str:
        return self.logs[proc.pid].read_text(errors="replace")

    def stop(self) -> dict[int, int | None]:
        codes: dict[int, int | None] = {}
        for proc in self.procs:
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs:
            try:
                codes[proc.pid] = proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                codes[proc.pid] = None
        return codes


@pytest.fixture
def shipped(tmp_path: Path) -> Iterator[Shipped]:
    spawner = Shipped(tmp_path)
    try:
        yield spawner
    finally:
        for proc in spawner.procs:
            if proc.poll() is None:
                proc.kill()
            proc.wait()


async def query(url: str, sql: str, *args: Any) -> list[Any]:
    """A statement behind forge-nb's back (tampering), rows as tuples."""
    parsed = parse_url(url)
    if parsed.path is not None:
        with closing(sqlite3.connect(parsed.path)) as conn:
            found = conn.execute(sql.replace("$1", "?").replace("$2", "?"), args).fetchall()
            conn.commit()
            return found
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return [tuple(r) for r in await conn.fetch(sql, *args)]
    finally:
        await conn.close()


async def hosts(app: fnb.App, n: int) -> bool:
    return len({p.host_id for p in await app.processes()}) >= n


async def log_says(shipped: Shipped, proc: subprocess.Popen[bytes], text: str) -> bool:
    return text in shipped.log(proc)


# -- the notebook scenario: __main__ functions on two workers, no file written ----------------

PUBLISHER = textwrap.dedent(
    """
    import asyncio, json, os, sys, time
    import forge_nb as fnb

    app = fnb.App(sys.argv[1], ship_code=True)

    @app.job(queue="default")
    def where(ctx, n):
        time.sleep(0.15)
        return {"pid": os.getpid(), "cwd": os.getcwd(), "double": 2 * n}

    @app.job(queue="default", executor="process")
    def crunch(n):
        return {"pid": os.getpid(), "parent": os.getppid(), "total": sum(range(n))}

    class Greeter:
        kind = "greet"

        async def run(self, ctx, payload):
            return "hello " + payload["name"]

    app.handlers.register(Greeter())

    async def main():
        await app.ensure_queue("default", workers=2)
        refs = await where.enqueue_many([(i,) for i in range(16)])
        crunched = await crunch.enqueue_many([(100_000,)] * 3)
        greet = await app.enqueue(fnb.EnqueueRequest(kind="greet", payload={"name": "cell"}))
        out = {
            "where": [await r.wait(timeout=90) for r in refs],
            "crunch": [await r.wait(timeout=90) for r in crunched],
            "greet": await greet.wait(timeout=90),
            "versions": sorted({(await app.job(r.id)).code_version for r in refs}),
            "pid": os.getpid(),
        }
        await app.close()
        print(json.dumps(out))

    asyncio.run(main())
    """
)


async def test_main_functions_run_on_two_workers_with_no_module_and_no_file(
    db_url: str, shipped: Shipped, tmp_path: Path
) -> None:
    async with fnb.App(db_url) as app:
        await app.ensure_queue("default", workers=2)
        a, b = shipped.spawn(db_url), shipped.spawn(db_url)
        await eventually(lambda: hosts(app, 2), timeout=30)
        publisher = await asyncio.create_subprocess_exec(
            sys.executable,
            "-c",
            PUBLISHER,
            db_url,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        out, err = await asyncio.wait_for(publisher.communicate(), 120)
        assert publisher.returncode == 0, err.decode()
        result = json.loads(out.decode().strip().splitlines()[-1])
        kinds = {p.host_id: set(p.kinds) for p in await app.processes()}
    codes = shipped.stop()
    ran_on = {r["pid"] for r in result["where"]}
    assert ran_on == {a.pid, b.pid}, "both workers ran cell-defined jobs"
    assert [r["double"] for r in result["where"]] == [2 * i for i in range(16)]
    assert {Path(r["cwd"]).name for r in result["where"]} <= {"worker-0", "worker-1"}
    # executor="process" with shipped code: a child of a worker ran it.
    assert all(r["total"] == sum(range(100_000)) for r in result["crunch"])
    assert {r["parent"] for r in result["crunch"]} <= {a.pid, b.pid}
    assert all(r["pid"] not in (a.pid, b.pid) for r in result["crunch"])
    assert result["greet"] == "hello cell"  # a class-based handler ships too
    assert len(result["versions"]) == 1 and result["versions"][0]
    # The processes view lists the shipped kinds each worker runs.
    assert all({"where", "crunch", "greet"} <= k for k in kinds.values())
    # Nothing was written where the workers run.
    for cwd in (tmp_path / "worker-0", tmp_path / "worker-1"):
        assert list(cwd.iterdir()) == []
    assert codes == {a.pid: 0, b.pid: 0}
    for proc in (a, b):
        assert KEY not in shipped.log(proc), "the key is never logged"


# -- functions of this module (the workers cannot import it either) ---------------------------


def triple(n: int) -> int:
    return 3 * n


def version_one() -> str:
    return "v1"


def version_two() -> str:
    return "v2"


async def test_a_wrong_key_runs_nothing_and_a_right_key_later_runs_everything(
    db_url: str, shipped: Shipped
) -> None:
    async with fnb.App(db_url, ship_code=True, **FAST) as app:
        job = app.job(kind="triple", queue="default")(triple)
        await app.ensure_queue("default", workers=2)
        refs = await job.enqueue_many([(i,) for i in range(5)])
        wrong = shipped.spawn(db_url, OTHER_KEY)
        await eventually(lambda: log_says(shipped, wrong, "signature does not verify"), 30)
        await asyncio.sleep(1.0)  # more claims: still nothing runs
        jobs = [await app.job(r.id) for r in refs]
        assert [(j.status, j.attempts) for j in jobs] == [("pending", 0)] * 5
        log = shipped.log(wrong)
        assert log.count("signature does not verify") == 1, "one error per version"
        assert "kind triple" in log and jobs[0].code_version in log
        assert OTHER_KEY not in log and KEY not in log
        # Rotation: the new key first, the publisher's among the accepted ones.
        right = shipped.spawn(db_url, f"{OTHER_KEY}, {KEY}")
        results = [await r.wait(timeout=60) for r in refs]
        assert results == [3 * i for i in range(5)]
        assert {(await app.job(r.id)).attempts for r in refs} == {1}
        assert right.poll() is None
    assert shipped.stop() == {wrong.pid: 0, right.pid: 0}


async def test_a_tampered_row_and_another_python_are_left_pending(
    db_url: str, shipped: Shipped
) -> None:
    async with fnb.App(db_url, ship_code=True, **FAST) as app:
        tampered = app.job(kind="tampered", queue="default")(triple)
        other_python = app.job(kind="other_python", queue="default")(triple)
        fine = app.job(kind="fine", queue="default")(triple)
        await app.ensure_queue("default", workers=2)
        bad_refs = [await tampered.enqueue(1), await other_python.enqueue(2)]
        # Tamper: flip the last byte of the code (the signature no longer matches). Its kind
        # has a newer version since (verified up front), so the worker meets the tampered one
        # in a claim: released at once, attempt refunded, never claimed again.
        version = app.code_version("tampered")
        app.job(kind="tampered", queue="default")(version_two)
        await app.publish_code()
        storage = await app.storage()
        row = await storage.get_code(version)  # type: ignore[arg-type]
        assert row is not None and row.code is not None
        await query(
            db_url,
            "UPDATE forge_nb_code SET code = $1 WHERE version = $2",
            row.code[:-1] + bytes([row.code[-1] ^ 1]),
            version,
        )
        # Another Python, correctly signed: the signature verifies, the Python does not.
        handler = app.handlers.get("other_python")
        assert handler is not None
        real = shipped_code.build(handler, KEY.encode(), "0.1.0")
        foreign = shipped_code.ShippedCode(
            version="f" * 16,
            kind="other_python",
            python="3.99",
            forge_nb_version="0.1.0",
            signature="",
            created_at=real.created_at,
            code=real.code,
        )
        foreign = shipped_code.ShippedCode(
            **{
                **{f: getattr(foreign, f) for f in foreign.__dataclass_fields__},
                "signature": shipped_code.sign(KEY.encode(), foreign, real.code or b""),
            }
        )
        assert shipped_code.verifies([KEY.encode()], foreign)
        await storage.publish_code(foreign)
        await query(
            db_url,
            "UPDATE forge_nb_jobs SET code_version = $1 WHERE kind = $2",
            "f" * 16,
            "other_python",
        )
        worker = shipped.spawn(db_url)
        good = await fine.enqueue(7)
        assert await good.wait(timeout=60) == 21  # the worker runs what verifies
        await eventually(lambda: log_says(shipped, worker, "shipped from Python 3.99"), 30)
        await eventually(lambda: log_says(shipped, worker, "signature does not verify"), 30)
        await asyncio.sleep(0.6)
        for ref in bad_refs:
            job = await app.job(ref.id)
            assert job is not None and (job.status, job.attempts) == ("pending", 0)
        log = shipped.log(worker)
        assert "kind tampered" in log and "kind other_python" in log
    assert shipped.stop() == {worker.pid: 0}


async def test_a_redecorated_function_ships_v2_and_earlier_jobs_keep_v1(
    db_url: str, shipped: Shipped
) -> None:
    async with fnb.App(db_url, ship_code=True, **FAST) as app:
        await app.ensure_queue("default", workers=2)
        first = app.job(kind="versioned", queue="default")(version_one)
        v1_refs = await first.enqueue_many([(), ()])
        second = app.job(kind="versioned", queue="default")(version_two)  # a re-run cell
        v2_refs = await second.enqueue_many([(), ()])
        v1, v2 = (await app.job(v1_refs[0].id)), (await app.job(v2_refs[0].id))
        assert v1 is not None and v2 is not None
        assert v1.code_version != v2.code_version
        assert v2.code_version == app.code_version("versioned")
        worker = shipped.spawn(db_url)
        assert [await r.wait(timeout=60) for r in v1_refs] == ["v1", "v1"]
        assert [await r.wait(timeout=60) for r in v2_refs] == ["v2", "v2"]
        assert shipped.stop() == {worker.pid: 0}
        # The App's own workers too: an old version's job runs that version, from the DB.
        more_v1 = await second.enqueue()
        await query(
            db_url,
            "UPDATE forge_nb_jobs SET code_version = $1 WHERE id = $2",
            v1.code_version,
            int(more_v1.id),
        )
        await app.start()
        assert await more_v1.wait(timeout=60) == "v1"
        assert await (await second.enqueue()).wait(timeout=60) == "v2"


async def test_a_missing_key_is_a_clear_error_and_ships_nothing(
    db_url: str, monkeypatch: pytest.MonkeyPatch, shipped: Shipped
) -> None:
    monkeypatch.delenv(ENV_CODE_KEY)
    with pytest.raises(CodeKeyError, match=ENV_CODE_KEY):
        fnb.App(db_url, ship_code=True)
    monkeypatch.setenv(ENV_CODE_KEY, " , ")
    with pytest.raises(CodeKeyError, match=ENV_CODE_KEY):
        fnb.App(db_url, ship_code=True)
    worker = shipped.spawn(db_url, key=None)
    assert await asyncio.to_thread(worker.wait, 60) == 1
    assert ENV_CODE_KEY in shipped.log(worker)
    async with fnb.App(db_url) as app:
        assert await (await app.storage()).code_catalogue() == []


async def test_code_that_cannot_be_pickled_is_refused_at_decoration(db_url: str) -> None:
    import threading

    lock = threading.Lock()
    app = fnb.App(db_url, ship_code=True)

    def holds_a_lock() -> bool:
        return lock.locked()

    with pytest.raises(TypeError, match="cannot ship job 'locked'"):
        app.job(kind="locked")(holds_a_lock)
    assert "locked" not in app.handlers
    await app.close()


async def test_module_handlers_win_over_shipped_code(db_url: str, tmp_path: Path) -> None:
    """A worker that has the kind itself (--app) runs every version with its own handler."""
    async with fnb.App(db_url, ship_code=True, **FAST) as publisher:
        await publisher.ensure_queue("default", workers=1)
        job = publisher.job(kind="triple", queue="default")(triple)
        ref = await job.enqueue(2)
    worker_app = fnb.App(db_url, shipped_code=True, replace=False, **FAST)
    worker_app.job(kind="triple", queue="default")(lambda n: "module")
    await worker_app.start()
    try:
        assert await ref.wait(timeout=30) == "module"
    finally:
        await worker_app.close()


def test_shipped_code_keeps_the_worker_import_light() -> None:
    """A worker without shipped code never imports cloudpickle (it loads on first use)."""
    code = "import sys, forge_nb, forge_nb.cli; print('cloudpickle' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_versions_are_content_hashes_and_signatures_cover_every_field() -> None:
    registered = handler_for_function(
        triple,
        kind="triple",
        queue=None,
        max_attempts=3,
        concurrency=None,
        timeout=None,
        priority=0,
    )
    row = shipped_code.build(registered, b"k", "0.1.0", now=1.0)
    again = shipped_code.build(registered, b"k", "0.1.0", now=1.0)
    assert row.version == again.version and row.signature == again.signature
    assert shipped_code.verifies([b"other", b"k"], row)
    assert not shipped_code.verifies([b"other"], row)
    for field, value in (
        ("kind", "x"),
        ("python", "3.0"),
        ("created_at", 2.0),
        ("version", "0" * 16),
    ):
        changed = shipped_code.ShippedCode(
            **{**{f: getattr(row, f) for f in row.__dataclass_fields__}, field: value}
        )
        assert not shipped_code.verifies([b"k"], changed), field
    loaded = shipped_code.load_handler(row)
    assert loaded.kind == "triple" and loaded.max_attempts == 3
    assert loaded.call(None, {"n": 4}) == 12  # type: ignore[arg-type]


def quadruple(n: int) -> int:
    return 4 * n


async def test_a_job_without_a_version_runs_the_newest_shipped_one(db_url: str) -> None:
    """Jobs enqueued by something that has no code of the kind (CLI, API, another App)."""
    async with fnb.App(db_url, ship_code=True, replace=False) as publisher:
        publisher.job(kind="scaled", queue="default")(triple)
        await publisher.publish_code()
        publisher.job(kind="scaled", queue="default")(quadruple)
        await publisher.publish_code()
    worker = fnb.App(db_url, shipped_code=True, replace=False, **FAST)
    async with fnb.App(db_url, replace=False) as plain:
        await plain.ensure_queue("default", workers=1)
        ref = await plain.enqueue(fnb.EnqueueRequest(kind="scaled", payload={"n": 5}))
        assert (await plain.job(ref.id)).code_version is None  # type: ignore[union-attr]
        await worker.start()
        try:
            assert await ref.wait(timeout=30) == 20
        finally:
            await worker.close()


# -- the kind's policy travels with the code (issue 20: retry_on and backoff on the worker) ---

#: What `slow_backoff` asks for after attempt n: far from any queue curve's first retry.
BACKOFF_S = 1234.0


class Dropped(Exception):
    """An exception type defined here: it travels by value with the policy."""


def picky(error: str) -> None:
    raise {"key": KeyError, "value": ValueError, "dropped": Dropped}[error](error)


def slow_backoff(attempt: int) -> float:
    return BACKOFF_S * attempt


def tells_its_token(token: str) -> str:
    print("token is", token)
    return "told"


async def settled(app: fnb.App, job_id: str) -> Any:
    job = await app.job(job_id)
    return job if job is not None and job.status in ("failed", "dead", "done") else None


async def test_a_remote_worker_applies_the_shipped_retry_on_and_backoff(
    db_url: str, shipped: Shipped
) -> None:
    async with fnb.App(db_url, ship_code=True, **FAST) as app:
        await app.ensure_queue("default", workers=2)
        job = app.job(
            kind="picky",
            queue="default",
            max_attempts=5,
            retry_on=(KeyError, Dropped),
            backoff=slow_backoff,
        )(picky)
        told = app.job(kind="told", queue="default", redact=["token"])(tells_its_token)
        value, key, dropped = [await job.enqueue(e) for e in ("value", "key", "dropped")]
        secret = await told.enqueue("s3cr3t-t0ken")
        started = time.time()
        worker = shipped.spawn(db_url)
        # Not in retry_on: dead after its one attempt, on the worker that has no code of it.
        dead = await eventually(lambda: settled(app, value.id), 60)
        assert (dead.status, dead.attempts) == ("dead", 1)
        assert "ValueError" in (dead.last_error or "")
        # In retry_on (a builtin type, and one shipped by value): retried, at the shipped
        # backoff's delay (the queue's curve would retry within seconds).
        for ref in (key, dropped):
            failed = await eventually(lambda ref=ref: settled(app, ref.id), 60)
            seen = time.time()
            assert (failed.status, failed.attempts) == ("failed", 1)
            retry_at = failed.scheduled_at.timestamp()
            assert started + BACKOFF_S - 60 < retry_at < seen + BACKOFF_S + 60, retry_at - seen
        # redact= travels too: the worker masks the field's value in the job's log.
        assert await secret.wait(timeout=60) == "told"
        logs = await eventually(lambda: app.job_logs(secret.id), 30)
        text = "".join(entry.text for entry in logs)
        assert "token is [redacted]" in text and "s3cr3t-t0ken" not in text
    assert shipped.stop() == {worker.pid: 0}


def test_a_policy_change_is_a_new_version_and_loads_with_its_handler() -> None:
    def handler(**policy: Any) -> Any:
        return handler_for_function(
            picky,
            kind="picky",
            queue=None,
            max_attempts=3,
            concurrency=None,
            timeout=None,
            priority=0,
            policy=kind_policy(**policy),
        )

    plain = shipped_code.build(handler(), b"k", "0.1.0", now=1.0)
    on_key = shipped_code.build(handler(retry_on=(KeyError,)), b"k", "0.1.0", now=1.0)
    on_value = shipped_code.build(handler(retry_on=(ValueError,)), b"k", "0.1.0", now=1.0)
    backing = shipped_code.build(
        handler(retry_on=(KeyError,), backoff=slow_backoff), b"k", "0.1.0", now=1.0
    )
    again = shipped_code.build(handler(retry_on=(KeyError,)), b"k", "0.1.0", now=1.0)
    versions = [r.version for r in (plain, on_key, on_value, backing)]
    assert len(set(versions)) == 4, "each policy is its own version"
    assert again.version == on_key.version, "the same policy, the same version"
    redacted = shipped_code.build(
        dataclasses.replace(handler(), redact=("error",)), b"k", "0.1.0", now=1.0
    )
    assert redacted.version not in versions
    # The policy is inside the signed bytes: altering them breaks the signature.
    assert backing.code is not None and shipped_code.verifies([b"k"], backing)
    loaded = shipped_code.load_handler(backing)
    assert loaded.policy is not None and loaded.policy.retry_on == (KeyError,)
    assert loaded.policy.backoff is not None and loaded.policy.backoff(2) == 2 * BACKOFF_S
    assert shipped_code.load_handler(redacted).redact == ("error",)
    # A kind without a policy keeps the format-1 bundle (and the versions it had).
    assert plain.code is not None
    assert pickle.loads(plain.code)[0] == shipped_code.BUNDLE_FORMAT
    assert pickle.loads(backing.code)[0] == shipped_code.BUNDLE_FORMAT_POLICY
    assert shipped_code.load_handler(plain).policy is None


async def test_redecorating_with_another_policy_ships_a_new_version(db_url: str) -> None:
    async with fnb.App(db_url, ship_code=True) as app:
        app.job(kind="picky", queue="default", retry_on=KeyError)(picky)
        first = app.code_version("picky")
        app.job(kind="picky", queue="default", retry_on=KeyError)(picky)
        assert app.code_version("picky") == first
        app.job(kind="picky", queue="default", retry_on=ValueError)(picky)
        second = app.code_version("picky")
        app.job(kind="picky", queue="default", retry_on=ValueError, backoff=slow_backoff)(picky)
        third = app.code_version("picky")
        assert len({first, second, third}) == 3
        assert await app.publish_code() == [third]  # the kind's current version


def old_row(kind: str, fn: Any, options: dict[str, Any], key: bytes) -> shipped_code.ShippedCode:
    """A row as forge-nb wrote it before policies shipped: format 1, the six options only."""
    import cloudpickle

    module = sys.modules[fn.__module__]
    cloudpickle.register_pickle_by_value(module)
    try:
        code, sources = process_ship.dump_by_value(("function", fn, options))
    finally:
        cloudpickle.unregister_pickle_by_value(module)
    blob = pickle.dumps(("forge-nb-code/1", code, sorted(sources.items())))
    unsigned = shipped_code.ShippedCode(
        version=shipped_code.content_version(kind, blob),
        kind=kind,
        python=shipped_code.python_minor(),
        forge_nb_version="0.1.0",
        signature="",
        created_at=1.0,
        code=blob,
    )
    return dataclasses.replace(unsigned, signature=shipped_code.sign(key, unsigned, blob))


async def test_an_old_row_without_a_policy_still_runs_on_a_remote_worker(
    db_url: str, shipped: Shipped
) -> None:
    options = {
        "queue": "default",
        "max_attempts": 2,
        "concurrency": None,
        "timeout": None,
        "priority": 0,
        "executor": "thread",
    }
    row = old_row("old_triple", triple, options, KEY.encode())
    loaded = shipped_code.load_handler(row)
    assert loaded.policy is None and loaded.redact == () and loaded.executor == "thread"
    async with fnb.App(db_url, **FAST) as app:
        await app.ensure_queue("default", workers=1)
        await (await app.storage()).publish_code(row)
        ref = await app.enqueue(fnb.EnqueueRequest(kind="old_triple", payload={"n": 7}))
        worker = shipped.spawn(db_url)
        assert await ref.wait(timeout=60) == 21
        job = await app.job(ref.id)
        assert job is not None and job.attempts == 1
    assert shipped.stop() == {worker.pid: 0}


# -- per-process concurrency of a kind the worker has only as shipped code ------------------------


def one_at_a_time(seconds: float) -> list[float]:
    started = time.time()
    time.sleep(seconds)
    return [started, time.time()]


async def test_a_remote_worker_holds_a_shipped_kind_to_its_concurrency(
    db_url: str, shipped: Shipped
) -> None:
    async with fnb.App(db_url, ship_code=True, **FAST) as app:
        await app.ensure_queue("default", workers=4)
        job = app.job(kind="one_at_a_time", queue="default", concurrency=1)(one_at_a_time)
        refs = await job.enqueue_many([(0.3,) for _ in range(5)])
        worker = shipped.spawn(db_url)
        spans = sorted([await ref.wait(timeout=60) for ref in refs])
    assert shipped.stop() == {worker.pid: 0}
    # Four slots, but concurrency=1 shipped with the code: one run at a time.
    overlaps = [(a, b) for a, b in itertools.pairwise(spans) if b[0] < a[1]]
    assert not overlaps, f"runs overlapped on the worker: {overlaps}"
