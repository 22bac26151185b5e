"""How a job function travels to a process-executor child.

A function the child can import (a module-level function of an importable
module, e.g. the ``--app`` module of ``forge-nb worker``) goes by reference:
the child imports that module and gets its own module state, as with Celery or
Dask. Anything else — above all a function defined in ``__main__``, a notebook
cell or a script — goes by value with cloudpickle, which pickles ``__main__``
functions (and the globals they use) by value on its own. cloudpickle is
imported only here, when the first process job is shipped.
"""

from __future__ import annotations

import importlib
import io
import linecache
import os
import pickle
import sys
import types
from collections import ChainMap
from collections.abc import Callable
from typing import Any

BY_REFERENCE = "ref"
BY_VALUE = "value"
#: The file name cloudpickle gives code it pickles by value.
DYNAMIC_CODE = "<dynamic-code>"


def pack(fn: Callable[..., Any], takes_ctx: bool) -> bytes:
    """Bytes the child's `load` turns back into ``(fn, takes_ctx)``."""
    where = _importable_as(fn)
    if where is not None:
        return pickle.dumps((BY_REFERENCE, *where, takes_ctx), protocol=pickle.HIGHEST_PROTOCOL)
    code, sources = _by_value(fn)
    return pickle.dumps((BY_VALUE, code, takes_ctx, sources), protocol=pickle.HIGHEST_PROTOCOL)


def load(blob: bytes) -> tuple[Callable[..., Any], bool]:
    """The function and whether it takes a ctx (imports its module when sent by reference)."""
    how, *rest = pickle.loads(blob)
    if how == BY_VALUE:
        code, takes_ctx, sources = rest
        for filename, lines in sources.items():
            # mtime None: linecache never drops it (a notebook cell has no file to re-read).
            linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
        return pickle.loads(code), bool(takes_ctx)
    module_name, qualname, takes_ctx = rest
    found = _resolve(importlib.import_module(module_name), qualname)
    fn = getattr(found, "fn", found)  # the module holds the JobFunction @app.job returned
    if not callable(fn):
        raise TypeError(f"{module_name}.{qualname} is not a function")
    return fn, bool(takes_ctx)


def dump_by_value(obj: Any) -> tuple[bytes, dict[str, list[str]]]:
    """`_by_value` for any object (shipped code pickles a handler spec this way)."""
    return _by_value(obj)


def _by_value(fn: Any) -> tuple[bytes, dict[str, list[str]]]:
    """cloudpickle the function, keeping its code's file names (tracebacks read as in the
    worker: cloudpickle writes ``<dynamic-code>`` instead), plus the source lines of files the
    child cannot read (notebook cells live only in the kernel's linecache)."""
    import cloudpickle

    files: set[str] = set()
    reduce_code = cloudpickle.Pickler.dispatch_table.get(types.CodeType)

    def keep_filename(code: types.CodeType) -> Any:
        rebuild, args = reduce_code(code)
        if code.co_filename and code.co_filename != DYNAMIC_CODE:
            files.add(code.co_filename)
            args = tuple(code.co_filename if a == DYNAMIC_CODE else a for a in args)
        return rebuild, args

    class Pickler(cloudpickle.Pickler):
        # The C pickler reads dispatch_table when it is made: a class attribute, not a later set.
        if reduce_code is not None:
            dispatch_table = ChainMap(
                {types.CodeType: keep_filename}, cloudpickle.Pickler.dispatch_table
            )

    buffer = io.BytesIO()
    Pickler(buffer, protocol=pickle.HIGHEST_PROTOCOL).dump(fn)
    sources = {}
    for filename in files:
        if not os.path.exists(filename):
            lines = linecache.getlines(filename)
            if lines:
                sources[filename] = lines
    return buffer.getvalue(), sources


def _importable_as(fn: Callable[..., Any]) -> tuple[str, str] | None:
    """``(module, qualname)`` when importing them gives back ``fn`` (or its job wrapper)."""
    module_name = getattr(fn, "__module__", None)
    qualname = getattr(fn, "__qualname__", None)
    if not module_name or not qualname or module_name in ("__main__", "__mp_main__"):
        return None
    if "<locals>" in qualname or "<lambda>" in qualname:
        return None
    module = sys.modules.get(module_name)
    if module is None or getattr(module, "__file__", None) is None:
        return None  # built in memory: the child could not import it
    try:
        found = _resolve(module, qualname)
    except AttributeError:
        return None
    if found is fn or getattr(found, "fn", None) is fn:
        return module_name, qualname
    return None


def _resolve(module: Any, qualname: str) -> Any:
    found = module
    for part in qualname.split("."):
        found = getattr(found, part)
    return found
