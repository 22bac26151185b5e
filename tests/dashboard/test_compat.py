"""The private Panel/Bokeh/Tornado internals forge-nb uses are still there, and only
`forge_nb.compat` touches them (an upgrade is checked in one place)."""

from __future__ import annotations

import re
from importlib.metadata import version
from pathlib import Path

import pytest

from forge_nb import compat

PACKAGE = Path(compat.__file__).resolve().parent
#: What counts as reaching into an internal: Panel's io modules, Bokeh's server and document
#: modules, and the private attributes compat wraps.
INTERNAL_USE = re.compile(
    r"panel\.io\b|pn\.io\b|bokeh\.server\b|bokeh\.document\b|models\.freeze\b"
    r"|create_session_if_needed|request_callback|conn_params"
    r"|\._(tornado|http|sockets|handlers|session|sessions|stylesheets|server_config"
    r"|template_variables|applications)\b"
)


def test_every_internal_the_compat_module_uses_is_still_there() -> None:
    missing = compat.missing_internals()
    assert not missing, (
        f"panel {version('panel')} / bokeh {version('bokeh')} / tornado {version('tornado')} "
        f"no longer have these internals forge-nb uses: {', '.join(missing)}. "
        "Adapt forge_nb/compat.py (and the version caps in pyproject.toml)."
    )


def test_a_missing_internal_is_named(monkeypatch: pytest.MonkeyPatch) -> None:
    import panel.io.resources

    monkeypatch.delattr(panel.io.resources, "LOCAL_DIST")
    assert "panel.io.resources.LOCAL_DIST" in compat.missing_internals()
    with pytest.raises(compat.MissingInternal, match=r"panel\.io\.resources\.LOCAL_DIST"):
        compat.local_dist()


def test_only_the_compat_module_reaches_into_internals() -> None:
    offenders = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path == PACKAGE / "compat.py":
            continue
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if INTERNAL_USE.search(code.replace("self._", "self.")):
                offenders.append(f"{path.relative_to(PACKAGE.parent)}:{number}: {line.strip()}")
    assert not offenders, "use forge_nb.compat instead:\n" + "\n".join(offenders)
