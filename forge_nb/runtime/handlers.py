"""Handlers: what runs for a kind, and the job functions ``@app.job`` returns."""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal, Protocol, cast, get_args, runtime_checkable

from forge_nb.storage.records import DEFAULT_MAX_ATTEMPTS
from forge_nb.storage.validation import check_name

if TYPE_CHECKING:
    from forge_nb.runtime.app import App
    from forge_nb.runtime.context import JobCtx
    from forge_nb.runtime.flow import KindPolicy
    from forge_nb.runtime.refs import JobRef


#: Where a run happens: on the event loop (async default), in a thread (sync default), or in a
#: child process of the app's process pool (all cores, crash-isolated).
Executor = Literal["loop", "thread", "process"]
EXECUTORS: tuple[str, ...] = get_args(Executor)


@runtime_checkable
class JobHandler(Protocol):
    """A class-based handler: a ``kind`` and ``async run(ctx, payload) -> result``."""

    kind: str

    async def run(self, ctx: JobCtx, payload: dict[str, Any]) -> Any:
        """Do the work."""
        ...


@dataclass(frozen=True, slots=True)
class Handler:
    """A registered kind: how to call it and its limits."""

    kind: str
    call: Callable[[JobCtx, dict[str, Any]], Any]
    is_async: bool
    queue: str | None = None
    max_attempts: int = DEFAULT_MAX_ATTEMPTS
    #: Most runs of this kind at once in this process (None: no limit).
    concurrency: int | None = None
    #: Seconds a run may take before it fails with a timeout (None: no limit).
    timeout: float | None = None
    priority: int = 0
    #: Checks a payload fits the handler's signature (raises TypeError).
    check_payload: Callable[[Mapping[str, Any]], None] | None = None
    executor: Executor = "loop"
    #: The user's function and whether it takes the ctx: what a process child calls.
    target: Callable[..., Any] | None = None
    takes_ctx: bool = False
    #: A class-based handler's object (what shipped code pickles for it).
    instance: Any = None
    #: Flow control: per-key limit, retry_on, backoff (`forge_nb.runtime.flow`).
    policy: KindPolicy | None = None
    #: Payload fields every view masks (``@app.job(redact=[...])``; still stored).
    redact: tuple[str, ...] = ()


#: Kinds under this prefix are forge-nb's own (``forge_nb.echo``): built-ins, not user jobs.
BUILTIN_PREFIX = "forge_nb."


class HandlerRegistry:
    """Kind → `Handler` (pinned). Registering a kind again replaces it (cell re-runs).

    The registered kinds are what a process claims: a change takes effect on its next
    claim, and ``on_change`` callbacks (the running process) hear of it at once.
    """

    def __init__(self) -> None:
        self._handlers: dict[str, Handler] = {}
        #: Bumped by every registration or removal (cheap "did the kinds change?").
        self.version = 0
        self.on_change: list[Callable[[], None]] = []
        #: Called with each handler before it is registered, replacements included (an App
        #: with ``ship_code=True`` packs its code here; raising refuses the registration).
        self.on_add: list[Callable[[Handler], None]] = []

    def add(self, handler: Handler) -> Handler:
        """Register (or replace) a handler."""
        for callback in list(self.on_add):
            callback(handler)
        new_kind = handler.kind not in self._handlers
        self._handlers[handler.kind] = handler
        if new_kind:
            self._changed()
        return handler

    def remove(self, kind: str) -> Handler | None:
        """Unregister ``kind``: this process stops claiming it. Returns the handler, if any."""
        handler = self._handlers.pop(kind, None)
        if handler is not None:
            self._changed()
        return handler

    def user_kinds(self) -> list[str]:
        """Registered kinds that are not forge-nb built-ins, sorted."""
        return [k for k in self.kinds() if not k.startswith(BUILTIN_PREFIX)]

    def _changed(self) -> None:
        self.version += 1
        for callback in list(self.on_change):
            callback()

    def register(
        self,
        obj: JobHandler,
        *,
        queue: str | None = None,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        concurrency: int | None = None,
        timeout: float | None = None,
    ) -> Handler:
        """Register a class-based handler object (``kind`` + ``async run(ctx, payload)``)."""
        return self.add(
            handler_for_object(
                obj,
                queue=queue,
                max_attempts=max_attempts,
                concurrency=concurrency,
                timeout=timeout,
            )
        )

    def get(self, kind: str) -> Handler | None:
        """The handler for ``kind``, if any."""
        return self._handlers.get(kind)

    def kinds(self) -> list[str]:
        """Registered kinds, sorted."""
        return sorted(self._handlers)

    def __contains__(self, kind: object) -> bool:
        return kind in self._handlers

    def __iter__(self) -> Iterator[Handler]:
        return iter(list(self._handlers.values()))

    def __len__(self) -> int:
        return len(self._handlers)


def handler_for_object(
    obj: Any,
    *,
    kind: str | None = None,
    queue: str | None = None,
    max_attempts: int = DEFAULT_MAX_ATTEMPTS,
    concurrency: int | None = None,
    timeout: float | None = None,
) -> Handler:
    """Wrap a class-based handler object (``kind`` + ``async run(ctx, payload)``)."""
    run = getattr(obj, "run", None)
    if not isinstance(getattr(obj, "kind", None), str):
        raise TypeError(f"{obj!r} is not a handler: it needs a `kind` string attribute")
    name = check_name(kind or obj.kind, "handler kind")
    if run is None or not inspect.iscoroutinefunction(run):
        raise TypeError(f"handler {name!r} needs an `async def run(self, ctx, payload)` method")
    return Handler(
        kind=name,
        call=run,
        is_async=True,
        queue=queue,
        max_attempts=max_attempts,
        concurrency=concurrency,
        timeout=timeout,
        instance=obj,
    )


def _plain_keywords(
    signature: inspect.Signature, takes_ctx: bool
) -> tuple[frozenset[str] | None, frozenset[str]]:
    """(accepted, required) payload keys when every parameter is a plain keyword-able one.

    ``(None, ...)`` when the signature has *args, **kwargs or positional-only parameters:
    then only a full ``bind`` can tell.
    """
    params = list(signature.parameters.values())[1 if takes_ctx else 0 :]
    plain = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    if any(p.kind not in plain for p in params):
        return None, frozenset()
    accepted = frozenset(p.name for p in params)
    required = frozenset(p.name for p in params if p.default is inspect.Parameter.empty)
    return accepted, required


def _takes_ctx(signature: inspect.Signature) -> bool:
    """Handlers receive the ctx when their first parameter is ``ctx``/``context`` or a JobCtx."""
    params = list(signature.parameters.values())
    if not params or params[0].kind not in (
        inspect.Parameter.POSITIONAL_ONLY,
        inspect.Parameter.POSITIONAL_OR_KEYWORD,
    ):
        return False
    first = params[0]
    return first.name in ("ctx", "context") or "JobCtx" in str(first.annotation)


class JobFunction:
    """What ``@app.job`` returns: still callable, plus ``enqueue``/``options``/``enqueue_many``."""

    def __init__(
        self, app: App, fn: Callable[..., Any], handler: Handler, options: Mapping[str, Any]
    ) -> None:
        self.app = app
        self.fn = fn
        self.kind = handler.kind
        self._handler = handler
        self._options = dict(options)
        functools.update_wrapper(self, fn)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        """Call the function directly (no queue)."""
        return self.fn(*args, **kwargs)

    def __repr__(self) -> str:
        return f"<job {self.kind!r} queue={self._handler.queue or '(router)'}>"

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickles as the plain function: a process job whose code calls another job
        function directly ships that function, not the app behind it."""
        return (_plain, (self.fn,))

    def options(
        self,
        *,
        delay: float | None = None,
        expires_in: float | None = None,
        unique_for: float | None = None,
        on_conflict: str | None = None,
        priority: int | None = None,
        unique_key: str | None = None,
        queue: str | None = None,
        max_attempts: int | None = None,
        scheduled_at: Any = None,
        depends_on: Any = None,
        tags: Any = None,
    ) -> JobFunction:
        """A copy that enqueues with these options: ``fn.options(delay=30).enqueue(...)``;
        ``depends_on=[ref, ...]`` makes the job wait until those jobs are done; flow control
        (SPEC §9.3): ``expires_in``, ``unique_for``, ``on_conflict="replace"``."""
        given = {
            "delay": delay,
            "priority": priority,
            "unique_key": unique_key,
            "queue": queue,
            "max_attempts": max_attempts,
            "scheduled_at": scheduled_at,
            "depends_on": depends_on,
            "expires_in": expires_in,
            "unique_for": unique_for,
            "on_conflict": on_conflict,
            "tags": tags,
        }
        merged = {**self._options, **{k: v for k, v in given.items() if v is not None}}
        return JobFunction(self.app, self.fn, self._handler, merged)

    def payload(self, *args: Any, **kwargs: Any) -> dict[str, Any]:
        """Bind arguments to the function's parameter names (TypeError when they do not fit)."""
        return bind_payload(self.fn, self.kind, args, kwargs)

    def request(self, *args: Any, **kwargs: Any) -> Any:
        """The `EnqueueRequest` that ``enqueue(*args, **kwargs)`` would send."""
        from forge_nb.runtime.refs import EnqueueRequest

        return EnqueueRequest(
            kind=self.kind, payload=self.payload(*args, **kwargs), **self._options
        )

    async def enqueue(self, *args: Any, **kwargs: Any) -> JobRef:
        """Enqueue one run with these arguments; returns its `JobRef`."""
        return await self.app.enqueue(self.request(*args, **kwargs))

    async def enqueue_many(self, calls: Any) -> list[JobRef]:
        """Enqueue many runs in one transaction: each item a tuple of args, a dict of kwargs,
        or an ``(args, kwargs)`` pair."""
        requests = []
        for call in calls:
            if isinstance(call, Mapping):
                requests.append(self.request(**call))
            elif (
                isinstance(call, tuple)
                and len(call) == 2
                and isinstance(call[0], tuple)
                and isinstance(call[1], Mapping)
            ):
                requests.append(self.request(*call[0], **call[1]))
            elif isinstance(call, tuple | list):
                requests.append(self.request(*call))
            else:
                requests.append(self.request(call))
        return await self.app.enqueue_many(requests)


def _plain(fn: Callable[..., Any]) -> Callable[..., Any]:
    return fn


def bind_payload(
    fn: Callable[..., Any], kind: str, args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any]:
    """Named payload from call arguments, via the signature (ctx excluded)."""
    shape = _payload_shape(fn)
    if shape.simple is not None:  # plain named parameters: no BoundArguments per call
        payload = _bind_simple(shape.simple, args, kwargs)
        if payload is not None:
            return payload
    if shape.var_positional:
        raise TypeError(f"job {kind!r}: *args parameters cannot be stored by name; use named ones")
    try:
        bound = shape.signature.bind(*args, **kwargs)
    except TypeError as exc:
        raise TypeError(f"job {kind!r}: {exc}") from None
    payload = {}
    for name, value in bound.arguments.items():
        if shape.signature.parameters[name].kind is inspect.Parameter.VAR_KEYWORD:
            payload.update(value)
        else:
            payload[name] = value
    return payload


@dataclass(frozen=True)
class _PayloadShape:
    """A job function's parameters as a payload binds them (read once per function: an
    `inspect.signature` per enqueue cost more than the rest of building the job)."""

    #: The signature without ctx.
    signature: inspect.Signature
    var_positional: bool
    #: ``(name, required)`` per parameter when all are plain positional-or-keyword ones.
    simple: tuple[tuple[str, bool], ...] | None


def _payload_shape(fn: Callable[..., Any]) -> _PayloadShape:
    try:
        return _cached_shape(fn)
    except TypeError:  # an unhashable callable object: read it each time
        return _read_shape(fn)


def _read_shape(fn: Callable[..., Any]) -> _PayloadShape:
    signature = inspect.signature(fn)
    params = list(signature.parameters.values())
    if _takes_ctx(signature):
        params = params[1:]
    simple = all(p.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD for p in params)
    return _PayloadShape(
        signature.replace(parameters=params),
        any(p.kind is inspect.Parameter.VAR_POSITIONAL for p in params),
        tuple((p.name, p.default is inspect.Parameter.empty) for p in params) if simple else None,
    )


_cached_shape = functools.lru_cache(maxsize=4096)(_read_shape)


def _bind_simple(
    names: tuple[tuple[str, bool], ...], args: tuple[Any, ...], kwargs: Mapping[str, Any]
) -> dict[str, Any] | None:
    """What ``Signature.bind`` gives for plain named parameters, in parameter order; None when
    the call does not fit (then `Signature.bind` says why)."""
    if len(args) > len(names):
        return None
    payload = {name: value for (name, _), value in zip(names, args, strict=False)}
    used = 0
    for name, required in names[len(args) :]:
        if name in kwargs:
            payload[name] = kwargs[name]
            used += 1
        elif required:
            return None
    return payload if used == len(kwargs) else None


def handler_for_function(
    fn: Callable[..., Any],
    *,
    kind: str | None,
    queue: str | None,
    max_attempts: int,
    concurrency: int | None,
    timeout: float | None,
    priority: int,
    executor: str | None = None,
    policy: KindPolicy | None = None,
) -> Handler:
    """Wrap a plain (async or sync) function as a `Handler`."""
    if not callable(fn):
        raise TypeError(f"@app.job needs a function, got {fn!r}")
    name = check_name(kind or getattr(fn, "__qualname__", None), "kind")
    if queue is not None:
        check_name(queue, "queue")
    if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
        raise ValueError(f"max_attempts must be an int >= 1, got {max_attempts!r}")
    if concurrency is not None and (not isinstance(concurrency, int) or concurrency < 1):
        raise ValueError(f"concurrency must be an int >= 1 or None, got {concurrency!r}")
    if timeout is not None and not timeout > 0:
        raise ValueError(f"timeout must be > 0 seconds or None, got {timeout!r}")
    signature = inspect.signature(fn)
    takes_ctx = _takes_ctx(signature)
    is_async = inspect.iscoroutinefunction(fn)
    executor = check_executor(executor, is_async, name)

    def call(ctx: JobCtx, payload: dict[str, Any]) -> Any:
        return fn(ctx, **payload) if takes_ctx else fn(**payload)

    accepts, required = _plain_keywords(signature, takes_ctx)

    def check_payload(payload: Mapping[str, Any]) -> None:
        # Fast path (no inspect per call): only named keyword-able parameters, all required
        # ones given, no unknown key. Anything else gets the full bind and its error message.
        if accepts is not None and required <= payload.keys() <= accepts:
            return
        bind_payload(fn, name, (), payload)

    return Handler(
        kind=name,
        call=call,
        is_async=is_async,
        queue=queue,
        max_attempts=max_attempts,
        concurrency=concurrency,
        timeout=timeout,
        priority=priority,
        check_payload=check_payload,
        executor=executor,
        policy=policy,
        target=fn,
        takes_ctx=takes_ctx,
    )


def check_executor(executor: str | None, is_async: bool, kind: str) -> Executor:
    """The executor for a function: the default for its kind of def, or a checked choice."""
    if executor is None:
        return "loop" if is_async else "thread"
    if executor not in EXECUTORS:
        raise ValueError(
            f"job {kind!r}: executor must be 'loop', 'thread' or 'process', got {executor!r}"
        )
    if executor == "loop" and not is_async:
        raise ValueError(
            f"job {kind!r}: executor='loop' needs an async def (a plain def would block the "
            "loop); use 'thread' or 'process'"
        )
    if executor == "thread" and is_async:
        raise ValueError(
            f"job {kind!r}: executor='thread' runs plain functions; an async def runs on the "
            "loop ('loop') or in a child process ('process')"
        )
    return cast(Executor, executor)
