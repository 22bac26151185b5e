"""Whether a widget's view still has a live kernel behind it.

After a kernel restart the old views keep their last state, and anywidget's model gives
the front-end no direct way to read that its comm died, so a view alone would say "live"
forever. Each live widget therefore bumps its synced ``beat`` trait every ``beat_s``
seconds while it updates; the view shows "stopped" when beats stop for a few periods
(kernel restarted, shut down, or stuck in a blocking cell), and at once when the widget
manager reports the comm gone.
"""

from __future__ import annotations

import asyncio
from typing import Any

from forge_nb.notebook.loop import TaskSet

#: Seconds between beats; the front-end calls a view stale after a few missed ones.
BEAT_S = 2.0


class Beat:
    """One widget's beat: a task on the widget's loop, started and stopped with its updates."""

    def __init__(self, widget: Any, loop: asyncio.AbstractEventLoop | None) -> None:
        self._widget = widget
        self._tasks = TaskSet(loop)

    def start(self) -> None:
        """Beat from now on."""
        self._tasks.spawn(self._run(), name="forge-nb widget beat")

    def stop(self) -> None:
        """No more beats (the view will say "stopped" unless the widget is finished)."""
        self._tasks.cancel()

    async def _run(self) -> None:
        while True:
            self._widget.beat += 1
            await asyncio.sleep(self._widget.beat_s)
