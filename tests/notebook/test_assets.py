"""The widget front-end the package ships (its one copy, ``forge_nb/notebook/static/``)."""

from __future__ import annotations

from forge_nb.notebook.assets import CONTROLS_CSS, CONTROLS_ESM
from forge_nb.notebook.widget import QueueWidget
from tests.notebook.support import REPO


def test_the_front_end_has_one_copy_in_the_repository() -> None:
    assert CONTROLS_ESM.is_file() and CONTROLS_CSS.is_file()
    copies = [
        p
        for p in REPO.rglob("controls.js")
        if ".venv" not in p.parts and "node_modules" not in p.parts
    ]
    assert copies == [CONTROLS_ESM], copies


def test_the_widget_loads_the_shipped_module() -> None:
    esm = str(QueueWidget._esm)
    assert "export default" in esm and "renderQueues" in esm


def test_the_front_end_never_writes_html_from_data() -> None:
    source = CONTROLS_ESM.read_text()
    for sink in ("innerHTML", "outerHTML", "insertAdjacentHTML", "document.write", "eval("):
        assert sink not in source, f"{sink} in {CONTROLS_ESM.name}: build DOM with textContent"


def test_the_front_end_lists_every_status_in_order() -> None:
    import json
    import re

    from forge_nb.storage.records import STATUSES

    found = re.search(r"export const STATUSES = (\[[^\]]*\]);", CONTROLS_ESM.read_text())
    assert found is not None and tuple(json.loads(found.group(1))) == STATUSES
