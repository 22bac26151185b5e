"""``app.propagate(var)``: a `contextvars.ContextVar`'s value at enqueue travels with the job
and is set around its run, in every executor (SPEC §9.4: tenant scope, request ids).

The values are stored as JSON beside the job (`forge_nb.storage.extras`). Around a run the
worker sets them in the job's own context: a loop job's task, a thread job's copied context,
and in a process child the same variable, found again by its module and name (a
``ContextVar`` cannot be pickled; one made in ``__main__`` cannot reach a child).
"""

from __future__ import annotations

import contextvars
import importlib
import sys
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

_UNSET = object()


@dataclass(frozen=True)
class Propagated:
    """One propagated variable, and where a process child finds it (None: it cannot)."""

    var: contextvars.ContextVar[Any]
    module: str | None
    attribute: str | None


def locate(var: contextvars.ContextVar[Any]) -> tuple[str | None, str | None]:
    """The importable module attribute that holds ``var`` (for process children), if any."""
    for name, module in list(sys.modules.items()):
        if name == "__main__" or module is None:
            continue
        namespace = getattr(module, "__dict__", None)
        if not isinstance(namespace, dict):
            continue
        for attribute, value in list(namespace.items()):
            if value is var:
                return name, attribute
    return None, None


def capture(variables: Mapping[str, Propagated]) -> dict[str, Any] | None:
    """The values set now, by variable name (None when none is set: nothing is stored)."""
    if not variables:
        return None
    found = {}
    for name, p in variables.items():
        value = p.var.get(_UNSET)
        if value is not _UNSET:
            found[name] = value
    return found or None


@contextmanager
def applied(variables: Mapping[str, Propagated], values: Mapping[str, Any]) -> Iterator[None]:
    """Set the stored values in the current context for the block, then restore."""
    tokens = [
        (variables[name].var, variables[name].var.set(value))
        for name, value in values.items()
        if name in variables
    ]
    try:
        yield
    finally:
        for var, token in reversed(tokens):
            var.reset(token)


def for_child(variables: Mapping[str, Propagated]) -> list[tuple[str, str, Any]]:
    """(module, attribute, value) of each variable set now that a child can import."""
    out = []
    for p in variables.values():
        value = p.var.get(_UNSET)
        if value is not _UNSET and p.module is not None and p.attribute is not None:
            out.append((p.module, p.attribute, value))
    return out


def set_in_child(found: list[tuple[str, str, Any]] | None) -> list[tuple[Any, Any]]:
    """In a process child: set each variable; the tokens to `reset_in_child` with."""
    tokens = []
    for module, attribute, value in found or ():
        var = getattr(importlib.import_module(module), attribute, None)
        if isinstance(var, contextvars.ContextVar):
            tokens.append((var, var.set(value)))
    return tokens


def reset_in_child(tokens: list[tuple[Any, Any]]) -> None:
    """Undo `set_in_child` (the child runs its next job with clean variables)."""
    for var, token in reversed(tokens):
        var.reset(token)
