"""Fixtures for tests that run real `forge-nb worker` processes."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
HEARTBEAT = "0.2"
STALE_AFTER = "3"

Spawn = Callable[..., subprocess.Popen[bytes]]


@pytest.fixture
def spawn_worker(tmp_path: Path) -> Iterator[Spawn]:
    """Start `forge-nb worker --app workerapp:app` processes (``app=None``: a bare worker,
    no ``--app``); kill leftovers after the test."""
    procs: list[subprocess.Popen[bytes]] = []

    def spawn(url: str, *args: str, app: str | None = "workerapp:app") -> subprocess.Popen[bytes]:
        env = {
            **os.environ,
            "FORGE_NB_TEST_DIR": str(tmp_path),
            "PYTHONPATH": os.pathsep.join([str(REPO / "tests"), os.environ.get("PYTHONPATH", "")]),
        }
        log = open(tmp_path / f"worker-{len(procs)}.log", "wb")  # noqa: SIM115
        cmd = [sys.executable, "-m", "forge_nb.cli", "worker", "--db", url]
        if app is not None:
            cmd += ["--app", app]
        cmd += ["--heartbeat-interval", HEARTBEAT]
        if "--stale-after" not in args:
            # Generous: a CPU-starved CI machine must not make a live worker look dead.
            cmd += ["--stale-after", STALE_AFTER]
        cmd += args
        proc = subprocess.Popen(cmd, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=tmp_path)
        procs.append(proc)
        return proc

    yield spawn
    for proc in procs:
        if proc.poll() is None:
            proc.kill()
        proc.wait()


def marks(tmp_path: Path, name: str) -> dict[int, list[str]]:
    """Job ids each worker pid wrote to ``name.<pid>`` files."""
    out = {}
    for path in tmp_path.glob(f"{name}.*"):
        out[int(path.suffix[1:])] = path.read_text().split()
    return out
