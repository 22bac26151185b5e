"""The package ships the widget front-end as exact copies of the ``js/`` sources."""

from __future__ import annotations

from forge_nb.notebook.assets import CONTROLS_CSS, CONTROLS_ESM
from forge_nb.notebook.widget import QueueWidget
from tests.notebook.support import REPO

FIX = "run: cp js/controls.js js/controls.css forge_nb/notebook/static/"


def test_shipped_files_equal_the_js_sources() -> None:
    assert CONTROLS_ESM.read_text() == (REPO / "js" / "controls.js").read_text(), FIX
    assert CONTROLS_CSS.read_text() == (REPO / "js" / "controls.css").read_text(), FIX


def test_the_widget_loads_the_shipped_module() -> None:
    esm = str(QueueWidget._esm)
    assert "export default" in esm and "renderQueues" in esm


def test_the_front_end_never_writes_html_from_data() -> None:
    source = (REPO / "js" / "controls.js").read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, f"{sink} in js/controls.js: build DOM with textContent"
