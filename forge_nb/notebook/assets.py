"""Where the widgets' front-end files live inside the package.

``js/`` holds the sources (and their Node tests); the package ships exact
copies under ``static/`` so installs need no Node and no build step. A test
fails when the two drift: ``cp js/controls.* forge_nb/notebook/static/``.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
#: The one ES module behind every forge-nb widget (views: queues, job, summary).
CONTROLS_ESM = STATIC / "controls.js"
CONTROLS_CSS = STATIC / "controls.css"
