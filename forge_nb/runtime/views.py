"""Views the runtime offers but does not draw, provided from above by name.

``app.widget()``, ``app.dashboard()`` and a cell ending in a `JobRef` need the
notebook layer, which sits above the runtime: the runtime must not import it.
The package's front door (``forge_nb/__init__.py``) names the providers here, as
``module:attribute`` strings loaded on first use, so ``import forge_nb`` stays free
of UI libraries and the arrows between layers keep pointing down.
"""

from __future__ import annotations

import importlib
from typing import Any

#: View name → "module:attribute" of the callable that makes it.
_providers: dict[str, str] = {}


def provide(name: str, target: str) -> None:
    """Name the callable (``"package.module:attr"``) that makes view ``name``."""
    if ":" not in target:
        raise ValueError(f"view provider must be 'module:attribute', got {target!r}")
    _providers[name] = target


def show(name: str, *args: Any, **kwargs: Any) -> Any:
    """Make view ``name`` with these arguments (its provider loads on first use)."""
    target = _providers.get(name)
    if target is None:
        raise RuntimeError(
            f"no provider for the {name!r} view: import forge_nb (the package), "
            "which wires the notebook views in"
        )
    module, _, attribute = target.partition(":")
    return getattr(importlib.import_module(module), attribute)(*args, **kwargs)
