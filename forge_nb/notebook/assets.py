"""Where the widgets' front-end files live inside the package.

``static/`` is their one copy: plain ES modules and CSS, no build step, so
installs need no Node. ``js/`` holds only their Node unit tests.
"""

from __future__ import annotations

from pathlib import Path

STATIC = Path(__file__).parent / "static"
#: The one ES module behind every forge-nb widget (views: queues, job, summary).
CONTROLS_ESM = STATIC / "controls.js"
CONTROLS_CSS = STATIC / "controls.css"
