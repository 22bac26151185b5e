"""Hatch build hook: the prebuilt JupyterLab extension goes into the wheel as shared data.

``labextension/build/labextension`` (made by ``scripts/build_labextension.sh``; not in git)
lands in ``share/jupyter/labextensions/forge-nb``, where JupyterLab finds prebuilt
extensions: installing the wheel needs no node. A regular wheel refuses to build without
it; an editable install goes on without it (JupyterLab then simply has no forge-nb
sidebar, and the tests link the build output into their own Jupyter data dir).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from hatchling.builders.hooks.plugin.interface import BuildHookInterface

BUILT = Path("labextension") / "build" / "labextension"
TARGET = "share/jupyter/labextensions/forge-nb"


class LabextensionHook(BuildHookInterface):
    PLUGIN_NAME = "custom"

    def initialize(self, version: str, build_data: dict[str, Any]) -> None:
        if self.target_name != "wheel":
            return
        built = Path(self.root) / BUILT
        if not (built / "package.json").is_file():
            if version == "editable":
                return
            raise RuntimeError(
                f"{BUILT} is missing: run `bash scripts/build_labextension.sh` (node, npm) "
                "before building a wheel"
            )
        for path in sorted(built.rglob("*")):
            if path.is_file():
                build_data["shared_data"][str(path)] = f"{TARGET}/{path.relative_to(built).as_posix()}"
