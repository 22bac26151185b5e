"""The jupyter-server-proxy entry point: what jupyter-server-proxy reads and starts."""

from __future__ import annotations

import os
import sys
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from forge_nb.jupyter import proxy


def test_the_entry_point_is_registered() -> None:
    (found,) = [
        e for e in entry_points(group="jupyter_serverproxy_servers") if e.name == "forge-nb"
    ]
    assert found.load() is proxy.setup_forge_nb


def test_the_config_asks_for_a_socket_the_whole_path_and_a_launcher_tile() -> None:
    config = proxy.setup_forge_nb()
    assert config["unix_socket"] is True
    assert config["absolute_url"] is True
    assert config["new_browser_tab"] is False
    entry = config["launcher_entry"]
    assert entry["enabled"] and entry["title"] == "Mission Control"
    assert Path(entry["icon_path"]).is_file() and entry["icon_path"].endswith(".svg")
    assert callable(config["command"])


def test_the_command_serves_the_proxied_path_on_the_socket(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("FORGE_NB_DATABASE_URL", raising=False)
    monkeypatch.delenv("FORGE_NB_DATA_DIR", raising=False)
    monkeypatch.chdir(tmp_path)  # no Jupyter server here: the root is the cwd
    command = proxy.dashboard_command(unix_socket="/tmp/jsp-x/socket", base_url="/user/ann/")
    assert command[:4] == [sys.executable, "-m", "forge_nb.cli", "dashboard"]
    args = dict(zip(command[4::2], command[5::2], strict=True))
    assert args["--unix-socket"] == "/tmp/jsp-x/socket"
    assert args["--prefix"] == "/user/ann/forge-nb/"
    assert args["--allow-host"] == "*" and args["--allow-websocket-origin"] == "*"
    assert args["--db"] == f"sqlite:///{tmp_path.resolve()}/.forge_nb/forge_nb.db"
    assert proxy.dashboard_command("/s", "/")[7] == "/forge-nb/"


def test_a_database_url_in_the_environment_stays_there(monkeypatch: pytest.MonkeyPatch) -> None:
    """Passed through the environment: a password in it never shows in ``ps``."""
    monkeypatch.setenv("FORGE_NB_DATABASE_URL", "postgresql://u:secret@db/jobs")
    command = proxy.dashboard_command("/s", "/")
    assert "--db" not in command and not any("secret" in part for part in command)


def test_the_data_dir_setting_moves_the_default_file(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("FORGE_NB_DATA_DIR", "state")
    assert (
        proxy.default_database_url(tmp_path) == f"sqlite:///{tmp_path.resolve()}/state/forge_nb.db"
    )
    monkeypatch.setenv("FORGE_NB_DATA_DIR", str(tmp_path / "abs"))
    assert proxy.default_database_url(Path("/elsewhere")) == (
        f"sqlite:///{tmp_path.resolve()}/abs/forge_nb.db"
    )


def test_braces_survive_the_proxy_formatting_the_command(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """jupyter-server-proxy runs ``str.format`` over every string of the command."""
    monkeypatch.delenv("FORGE_NB_DATABASE_URL", raising=False)
    odd = tmp_path / "{port}"
    odd.mkdir()
    monkeypatch.chdir(odd)
    command = proxy.dashboard_command("/s", "/")
    rendered = [part.format(port=1, unix_socket="", base_url="/") for part in command]
    assert (
        rendered[rendered.index("--db") + 1] == f"sqlite:///{odd.resolve()}/.forge_nb/forge_nb.db"
    )


def test_the_root_dir_is_the_running_servers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from jupyter_server.serverapp import ServerApp

    class Running:
        root_dir = str(tmp_path)

    monkeypatch.setattr(ServerApp, "initialized", classmethod(lambda cls: True))
    monkeypatch.setattr(ServerApp, "instance", classmethod(lambda cls, *a, **k: Running()))
    assert proxy.server_root_dir() == tmp_path
    assert os.fspath(proxy.server_root_dir()) != os.getcwd()
