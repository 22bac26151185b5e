"""How enqueue arguments become a job's named payload: the same names, order and errors as
binding them to the function's signature (the fast path for plain parameters included)."""

from __future__ import annotations

import inspect
from typing import Any

import pytest

from forge_nb.runtime.handlers import bind_payload


def _by_signature(fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())[1:]  # every function here takes ctx
    try:
        bound = signature.replace(parameters=params).bind(*args, **kwargs)
    except TypeError:
        return TypeError
    out: dict[str, Any] = {}
    for name, value in bound.arguments.items():
        if signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            out.update(value)
        else:
            out[name] = value
    return out


def plain(ctx: Any, a: int, b: int = 2, c: int = 3) -> None: ...


def keywords(ctx: Any, a: int, *, k: int = 1, **rest: Any) -> None: ...


def nothing(ctx: Any) -> None: ...


CALLS = [
    ((1,), {}),
    ((1, 5), {}),
    ((), {"a": 1}),
    ((1,), {"c": 4}),
    ((), {"c": 1, "a": 0}),
    ((1,), {"a": 2}),  # a given twice
    ((1, 2, 3, 4), {}),  # too many
    ((), {}),  # a missing
    ((1,), {"zz": 1}),  # unknown name
]


@pytest.mark.parametrize("fn", [plain, keywords, nothing])
@pytest.mark.parametrize(("args", "kwargs"), CALLS)
def test_payload_is_what_the_signature_binds(
    fn: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
) -> None:
    expected = _by_signature(fn, args, kwargs)
    if expected is TypeError:
        with pytest.raises(TypeError, match="job 'k'"):
            bind_payload(fn, "k", args, kwargs)
    else:
        got = bind_payload(fn, "k", args, kwargs)
        assert got == expected and list(got) == list(expected)  # same names, same order


def test_star_args_are_refused() -> None:
    def star(ctx: Any, *items: int) -> None: ...

    with pytest.raises(TypeError, match="cannot be stored by name"):
        bind_payload(star, "k", (1, 2), {})
