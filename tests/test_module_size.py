"""The maintainers' rule (issue 18): no file of the package grows past 700 lines, so each
stays one job a newcomer can read in a sitting."""

from __future__ import annotations

from pathlib import Path

import forge_nb

PACKAGE = Path(forge_nb.__file__).parent
MAX_LINES = 700


def test_no_file_of_the_package_is_over_700_lines() -> None:
    files = [p for ext in ("py", "sql", "js", "ts") for p in PACKAGE.rglob(f"*.{ext}")]
    assert len(files) > 50
    too_long = {
        str(p.relative_to(PACKAGE)): n
        for p in files
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert too_long == {}, f"split these: {too_long}"
