"""Kernel-loop glue: run widget work as tasks on the loop the App lives on.

Comm messages from the front-end arrive in handlers that must not block the
kernel, and the App's connections belong to one loop, so every action and
every refresh is a task on that loop. Tasks are held strongly (the loop keeps
only weak references) and their errors are logged instead of vanishing.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Coroutine
from typing import Any

logger = logging.getLogger("forge_nb.notebook")


def current_loop() -> asyncio.AbstractEventLoop | None:
    """The running loop of this thread (the kernel's, in a notebook), else None."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class TaskSet:
    """Background tasks of one widget, bound to one loop; `cancel` ends them all."""

    def __init__(self, loop: asyncio.AbstractEventLoop | None) -> None:
        self.loop = loop
        self._tasks: set[asyncio.Task[Any]] = set()

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> bool:
        """Schedule ``coro`` on the loop without waiting; False (coro closed) if there is none.

        Safe from the loop's own thread (the usual case: comm handlers run on the
        kernel loop) and from any other thread.
        """
        loop = self.loop
        if loop is None or loop.is_closed():
            coro.close()
            return False
        if current_loop() is loop:
            self._track(loop.create_task(coro, name=name))
        else:
            loop.call_soon_threadsafe(lambda: self._track(loop.create_task(coro, name=name)))
        return True

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._tasks.add(task)
        task.add_done_callback(self._done)

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            logger.error(
                "forge-nb widget task %s failed", task.get_name(), exc_info=task.exception()
            )

    def cancel(self) -> None:
        """Cancel every task (from any thread)."""
        loop = self.loop
        for task in list(self._tasks):
            if current_loop() is loop:
                task.cancel()
            elif loop is not None and not loop.is_closed():
                with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
                    loop.call_soon_threadsafe(task.cancel)

    async def wait(self) -> None:
        """Wait for the tasks running now (tests, and cells that want actions settled)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def __len__(self) -> int:
        return len(self._tasks)
