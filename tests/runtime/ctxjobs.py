"""An importable module with a propagated ContextVar and jobs that read it (all executors)."""

from __future__ import annotations

import contextvars

TENANT: contextvars.ContextVar[str] = contextvars.ContextVar("tenant")
REQUEST: contextvars.ContextVar[dict[str, int]] = contextvars.ContextVar("request")


def read_tenant() -> dict[str, object]:
    """What the run sees (a process job: this runs in the child)."""
    return {"tenant": TENANT.get("unset"), "request": REQUEST.get({})}


def chatty(n: int) -> int:
    """Prints and logs (a process job: this runs in the child)."""
    import logging

    print(f"child print {n}")
    logging.getLogger("ctxjobs").warning("child warning %d", n)
    return n
