"""`import forge_nb` and the worker CLI load no UI library (they start fast, SPEC §8)."""

from __future__ import annotations

import subprocess
import sys

UI_LIBRARIES = ("panel", "bokeh", "pandas", "anywidget", "ipywidgets", "numpy", "IPython")


def test_runtime_and_cli_import_no_ui_library() -> None:
    code = (
        "import sys, forge_nb, forge_nb.cli, forge_nb.storage.sqlite, forge_nb.storage.postgres; "
        f"print(sorted({{m.split('.')[0] for m in sys.modules}} & set({UI_LIBRARIES!r})))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
