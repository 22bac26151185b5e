"""binder/ works on a fresh machine: install exactly as Binder does, then run the quickstart.

Binder (repo2docker) starts from a base image with Python, JupyterLab and ipykernel,
runs ``pip install --no-cache-dir -r binder/requirements.txt`` from the repository
root, then ``binder/postBuild``, and starts every session through ``binder/start``.
This test does the same in a new virtualenv (reusing pip's download cache, the one
difference, so it stays minutes-cheap), then runs notebooks/quickstart.ipynb on a
kernel from that virtualenv, launched through binder/start.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import nbformat
import pytest
from jupyter_client.kernelspec import KernelSpecManager
from jupyter_client.manager import AsyncKernelManager
from nbclient import NotebookClient

from tests.notebook.support import REPO, kernel_env, read_app, text_of

BINDER = REPO / "binder"


def run(cmd: list[str], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, **kwargs
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def test_binder_files_are_what_binder_expects() -> None:
    assert "-e ." in (BINDER / "requirements.txt").read_text().split("\n")
    assert (BINDER / "runtime.txt").read_text().strip() == "python-3.11"  # forge-nb needs 3.11+
    for script in ("postBuild", "start"):
        assert os.access(BINDER / script, os.X_OK), f"binder/{script} must be executable"
    start = (BINDER / "start").read_text()
    assert "export BOKEH_ALLOW_WS_ORIGIN='*'" in start and 'exec "$@"' in start


@pytest.mark.slow
@pytest.mark.timeout(900)
async def test_a_fresh_binder_environment_runs_the_quickstart(tmp_path: Path) -> None:
    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    python = venv / "bin" / "python"
    pip = [str(python), "-m", "pip", "--disable-pip-version-check", "install", "-q"]
    # Binder's base image: JupyterLab's kernel side.
    run([*pip, "ipykernel"])
    # Binder's install step (with pip's cache, unlike Binder), from the repository root.
    run([*pip, "-r", "binder/requirements.txt"], cwd=REPO)
    home = tmp_path / "home"
    home.mkdir()
    env = {**kernel_env(), "HOME": str(home), "PATH": f"{venv / 'bin'}:{os.environ['PATH']}"}
    built = run(["bash", str(BINDER / "postBuild")], cwd=REPO, env=env)
    assert "forge-nb" in built.stdout and "ready" in built.stdout

    # A kernel of the fresh environment, started through binder/start like a Binder session.
    kernels = tmp_path / "kernels"
    (kernels / "binder").mkdir(parents=True)
    argv = [str(BINDER / "start"), str(python), "-m", "ipykernel_launcher", "-f"]
    spec = {"argv": [*argv, "{connection_file}"], "display_name": "binder", "language": "python"}
    (kernels / "binder" / "kernel.json").write_text(json.dumps(spec))
    km = AsyncKernelManager(
        kernel_name="binder", kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernels)])
    )
    work = tmp_path / "work"
    work.mkdir()
    nb = nbformat.read(REPO / "notebooks" / "quickstart.ipynb", as_version=4)
    # One extra cell at the end says which interpreter ran, and whether binder/start ran.
    probe = "import os, sys; print('probe', sys.executable, os.environ['BOKEH_ALLOW_WS_ORIGIN'])"
    nb.cells.append(nbformat.v4.new_code_cell(probe))
    client = NotebookClient(nb, km=km, timeout=180, resources={"metadata": {"path": str(work)}})
    await client.async_execute(env={**env, "FORGE_NB_DATA_DIR": str(work / "data")})

    text = text_of(nb)
    assert "300 walks done" in text
    assert f"probe {python} *" in text
    counts = await read_app(f"sqlite:///{work / 'data' / 'forge_nb.db'}", lambda app: app.counts())
    assert counts["default"]["done"] >= 301
