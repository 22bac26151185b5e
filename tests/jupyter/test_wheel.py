"""The wheel carries the prebuilt JupyterLab extension: installing it needs no node.

Builds the wheel from this checkout (pip, hatchling, the hatch_build.py hook), installs it
with its ``jupyter`` extra and JupyterLab into a new virtualenv (reusing pip's download
cache, so it stays a minute or two), and asks that environment, with nothing but its own
``bin`` on PATH (no node, no npm), what JupyterLab and jupyter-server-proxy see.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from tests.notebook.support import REPO

pytestmark = [pytest.mark.slow, pytest.mark.timeout(1200)]

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def run(cmd: list[str], **kwargs: object) -> str:
    done = subprocess.run(
        cmd, capture_output=True, text=True, stdin=subprocess.DEVNULL, check=False, **kwargs
    )
    if done.returncode != 0:
        pytest.fail(f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return ANSI.sub("", done.stdout + done.stderr)


def test_the_wheel_installs_the_labextension_and_the_proxy_without_node(tmp_path: Path) -> None:
    dist = tmp_path / "dist"
    pip = [sys.executable, "-m", "pip", "--disable-pip-version-check"]
    run([*pip, "wheel", "--no-deps", "-q", "-w", str(dist), str(REPO)])
    (wheel,) = dist.glob("forge_nb-*.whl")
    with zipfile.ZipFile(wheel) as zf:
        names = zf.namelist()
        entry_points = zf.read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    shared = "forge_nb-0.1.0.data/data/share/jupyter/labextensions/forge-nb/"
    assert f"{shared}package.json" in names and f"{shared}install.json" in names
    assert any(n.startswith(f"{shared}static/remoteEntry.") for n in names)
    assert "[jupyter_serverproxy_servers]\nforge-nb = forge_nb.jupyter.proxy:setup_forge_nb" in (
        entry_points
    )
    assert not any("node_modules" in n or n.endswith(".ts") for n in names)

    venv = tmp_path / "venv"
    run([sys.executable, "-m", "venv", str(venv)])
    path = str(venv / "bin")
    assert shutil.which("node", path=path) is None and shutil.which("npm", path=path) is None
    env = {
        "PATH": path,
        "HOME": os.environ.get("HOME", str(tmp_path)),  # pip's download cache
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTER_DATA_DIR": str(tmp_path / "data"),  # empty: only the venv's extensions count
        "JUPYTER_PLATFORM_DIRS": "1",
    }
    python = str(venv / "bin" / "python")
    install = [python, "-m", "pip", "install", "--disable-pip-version-check", "-q"]
    run([*install, f"{wheel}[jupyter]", "jupyterlab"], env=env)
    installed = venv / "share" / "jupyter" / "labextensions" / "forge-nb"
    meta = json.loads((installed / "package.json").read_text())
    assert (installed / meta["jupyterlab"]["_build"]["load"]).is_file()

    listing = run([str(venv / "bin" / "jupyter"), "labextension", "list"], env=env)
    assert re.search(r"forge-nb v0\.1\.0 enabled\s+OK \(python, forge-nb\)", listing), listing

    probe = (
        "import json\n"
        "from importlib.metadata import distribution, entry_points\n"
        "(ep,) = [e for e in entry_points(group='jupyter_serverproxy_servers') if e.name == 'forge-nb']\n"
        "config = ep.load()()\n"
        "import forge_nb\n"
        "print(json.dumps({'module': forge_nb.__file__, 'title': config['launcher_entry']['title'],\n"
        "    'icon': config['launcher_entry']['icon_path'],\n"
        "    'command': config['command'](unix_socket='/s', base_url='/user/x/'),\n"
        "    'server_extension': distribution('jupyter-server-proxy').version}))\n"
    )
    found = json.loads(run([python, "-c", probe], env=env, cwd=tmp_path).strip().splitlines()[-1])
    assert found["module"].startswith(str(venv))  # the wheel's copy, not this checkout
    assert found["title"] == "Mission Control" and Path(found["icon"]).is_file()
    assert found["command"][0] == python and "/user/x/forge-nb/" in found["command"]
    servers = run([str(venv / "bin" / "jupyter"), "server", "extension", "list"], env=env)
    assert re.search(r"jupyter_server_proxy\s+enabled", servers), servers
