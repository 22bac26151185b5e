"""What the JSON encoder does with values JSON has no type for.

A notebook's numbers are often numpy scalars (``df["n"].max()`` is an ``np.int64``):
to their user they are numbers, so they are stored as numbers. numpy is looked up in
``sys.modules`` only: if the caller never imported it, no value can be a numpy one, and
importing it here would cost every enqueue a slow import.

Anything else is refused with a hint that says how to pass it instead.
"""

from __future__ import annotations

import datetime
import decimal
import sys
import uuid
from pathlib import PurePath
from typing import Any

#: numpy dtype kinds that convert to a Python number: bool, signed, unsigned, float.
_NUMBER_KINDS = frozenset("biuf")


def json_default(value: object) -> Any:
    """A JSON-ready stand-in for ``value`` (numpy numbers), else TypeError with a hint."""
    number = numpy_number(value)
    if number is not None:
        return number
    raise TypeError(
        f"Object of type {type(value).__name__} is not JSON serializable ({hint_for(value)})"
    )


def numpy_number(value: object) -> bool | int | float | None:
    """The Python number a numpy scalar (or 0-d array) of a number dtype holds, else None."""
    np = sys.modules.get("numpy")
    if np is None:
        return None
    scalar = isinstance(value, np.generic) or (isinstance(value, np.ndarray) and value.ndim == 0)
    if scalar and value.dtype.kind in _NUMBER_KINDS:  # type: ignore[attr-defined]
        item: bool | int | float = value.item()  # type: ignore[attr-defined]
        return item
    return None


def hint_for(value: object) -> str:
    """How to pass ``value`` as a job argument instead."""
    module = type(value).__module__ or ""
    name = type(value).__name__
    if module.startswith("pandas"):
        return (
            f"pass plain data instead: {name}.to_dict() / .tolist(), or save it to a file "
            "(e.g. .to_parquet(path)) and pass the path"
        )
    if module.startswith("numpy"):
        if getattr(value, "ndim", 0):
            return "convert it with .tolist(), or save it to a file (np.save) and pass the path"
        return "convert it with .item() or str()"
    if isinstance(value, datetime.date | datetime.time):
        return "pass value.isoformat(), or a timestamp number"
    if isinstance(value, datetime.timedelta):
        return "pass value.total_seconds()"
    if isinstance(value, decimal.Decimal | uuid.UUID | PurePath):
        return "pass str(value)"
    if isinstance(value, bytes | bytearray | memoryview):
        return "decode it to text, or save it to a file and pass the path"
    if isinstance(value, set | frozenset):
        return "pass a list: sorted(value) or list(value)"
    if isinstance(value, complex):
        return "pass [value.real, value.imag]"
    return (
        "job arguments are stored as JSON: pass numbers, strings, lists and dicts; "
        "convert it with .tolist() / str(), or pass a file path for large data"
    )
