"""Shipped code: handlers published to the database, signed, and run by other processes.

``App(url, ship_code=True)`` cloudpickles each handler it registers *by value* (a notebook
cell's function, or one from a module the workers do not have) and publishes it as a
``forge_nb_code`` row, with the options the running side applies (timeout, executor, the
kind's ``retry_on``/``backoff``/key policy, ``redact``) pickled and signed alongside, so a
worker without the code runs the kind as its publisher declared it. The row's version is a
content hash of kind, code and options (a new policy is a new version), and its signature
an HMAC-SHA256 under ``FORGE_NB_CODE_KEY`` over every field of the row. Jobs record the
version current when they were enqueued.

``forge-nb worker --shipped-code`` runs those versions. Trust model: unpickling runs
arbitrary code, so a worker verifies the signature and the Python minor version *before*
unpickling; bytes that do not verify are never unpickled. Whoever holds the key can run
code on the workers; write access to the database alone cannot. The key is never logged.

Rotation: ``FORGE_NB_CODE_KEY`` may hold several comma-separated keys; publishers sign
with the first, workers accept any.
"""

from __future__ import annotations

import asyncio
import dataclasses
import hashlib
import hmac
import linecache
import logging
import os
import pickle
import sys
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING

from forge_nb.errors import ForgeError
from forge_nb.runtime.handlers import Handler, handler_for_function, handler_for_object
from forge_nb.storage.records import ShippedCode

if TYPE_CHECKING:
    from forge_nb.storage.base import Storage

log = logging.getLogger("forge_nb.shipped_code")

ENV_CODE_KEY = "FORGE_NB_CODE_KEY"
#: Hex digits of the content hash kept as the version (64 bits: no collision in practice
#: among a database's versions, short enough to show in tables).
VERSION_HEX = 16
#: Format tag of the pickled bundle; a worker refuses formats it does not know. Also the
#: prefix of the signed bytes (kept, so rows signed before format 2 still verify).
BUNDLE_FORMAT = "forge-nb-code/1"
#: A bundle that also carries the kind's policy and redactions. Only such bundles use it,
#: so a worker too old to apply them refuses the row (its jobs wait) instead of running the
#: kind without them, while plain kinds keep format 1 and their versions.
BUNDLE_FORMAT_POLICY = "forge-nb-code/2"
BUNDLE_FORMATS = (BUNDLE_FORMAT, BUNDLE_FORMAT_POLICY)
#: Handler options that travel with the code (how the publisher decorated it).
OPTIONS = ("queue", "max_attempts", "concurrency", "timeout", "priority", "executor")
#: Options of format 2: `KindPolicy` (retry_on, backoff, concurrency key) and ``redact``.
POLICY_OPTIONS = ("policy", "redact")


class CodeKeyError(ForgeError, RuntimeError):
    """``FORGE_NB_CODE_KEY`` is missing or empty where shipped code needs it."""


def python_minor() -> str:
    """This interpreter's ``major.minor``: pickled code runs only on the same one."""
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def code_keys(
    environ: Mapping[str, str] | None = None, *, what: str = "shipped code"
) -> list[bytes]:
    """The keys in ``FORGE_NB_CODE_KEY`` (comma-separated, first signs): CodeKeyError if none."""
    raw = (os.environ if environ is None else environ).get(ENV_CODE_KEY, "")
    keys = [k.strip().encode() for k in raw.split(",") if k.strip()]
    if not keys:
        raise CodeKeyError(
            f"{what} needs a signing key: set {ENV_CODE_KEY} (the same secret on the "
            "publishing side and on every worker; several comma-separated keys rotate, the "
            "first signs). Nothing was shipped or run."
        )
    return keys


def _signed_bytes(code: ShippedCode, blob: bytes) -> bytes:
    """Every field of the row, unambiguously framed, then the code."""
    fields = (code.version, code.kind, code.python, code.forge_nb_version, repr(code.created_at))
    head = "\n".join(f"{len(f)}:{f}" for f in fields)
    return f"{BUNDLE_FORMAT}\n{head}\n".encode() + blob


def sign(key: bytes, code: ShippedCode, blob: bytes) -> str:
    """Hex HMAC-SHA256 of the row under ``key``."""
    return hmac.new(key, _signed_bytes(code, blob), hashlib.sha256).hexdigest()


def verifies(keys: list[bytes], code: ShippedCode) -> bool:
    """Whether any of ``keys`` signed this row (constant-time compare)."""
    if code.code is None:
        return False
    return any(hmac.compare_digest(sign(k, code, code.code), code.signature) for k in keys)


def content_version(kind: str, blob: bytes) -> str:
    """The version of ``blob`` as ``kind``'s code: a prefix of its SHA-256."""
    return hashlib.sha256(kind.encode() + b"\0" + blob).hexdigest()[:VERSION_HEX]


# -- publishing side ------------------------------------------------------------------------


def pack_handler(handler: Handler) -> bytes:
    """The handler (function or object, and its options) cloudpickled by value."""
    from forge_nb.runtime import process_ship

    if handler.target is not None:
        form, obj = "function", handler.target
    elif handler.instance is not None:
        form, obj = "object", handler.instance
    else:
        raise TypeError(f"handler {handler.kind!r} has no function or object to ship")
    options = {name: getattr(handler, name) for name in OPTIONS}
    fmt = BUNDLE_FORMAT
    if handler.policy is not None or handler.redact:
        options.update({name: getattr(handler, name) for name in POLICY_OPTIONS})
        fmt = BUNDLE_FORMAT_POLICY
    spec = (form, obj, options)
    import cloudpickle

    module = sys.modules.get(getattr(obj, "__module__", None) or type(obj).__module__)
    by_value = (
        module is not None
        and _ships_by_value(module.__name__)
        and module.__name__ not in cloudpickle.list_registry_pickle_by_value()
    )
    if by_value:
        # cloudpickle pickles __main__ by value on its own; a module's code goes by value
        # too (the workers need not have the module), other modules' by reference.
        cloudpickle.register_pickle_by_value(module)  # (not when the user already did)
    try:
        code, sources = process_ship.dump_by_value(spec)
    finally:
        if by_value and module is not None:
            cloudpickle.unregister_pickle_by_value(module)
    return pickle.dumps((fmt, code, sorted(sources.items())), protocol=pickle.HIGHEST_PROTOCOL)


def _ships_by_value(module_name: str) -> bool:
    top = module_name.partition(".")[0]
    return module_name not in ("__main__", "__mp_main__") and top not in (
        "forge_nb",
        "builtins",
    )


def build(
    handler: Handler, key: bytes, forge_nb_version: str, now: float | None = None
) -> ShippedCode:
    """The signed ``forge_nb_code`` row for ``handler`` (TypeError if it cannot be pickled)."""
    try:
        blob = pack_handler(handler)
    except Exception as exc:
        raise TypeError(
            f"ship_code: cannot ship job {handler.kind!r}: it, or a global it uses, cannot be "
            f"pickled ({type(exc).__name__}: {exc})"
        ) from exc
    unsigned = ShippedCode(
        version=content_version(handler.kind, blob),
        kind=handler.kind,
        python=python_minor(),
        forge_nb_version=forge_nb_version,
        signature="",
        created_at=time.time() if now is None else now,
        code=blob,
    )
    return ShippedCode(
        version=unsigned.version,
        kind=unsigned.kind,
        python=unsigned.python,
        forge_nb_version=unsigned.forge_nb_version,
        signature=sign(key, unsigned, blob),
        created_at=unsigned.created_at,
        code=blob,
    )


# -- running side ---------------------------------------------------------------------------


def load_handler(code: ShippedCode) -> Handler:
    """Unpickle a row's handler. Call only after `verifies` and the Python check."""
    assert code.code is not None
    fmt, payload, sources = pickle.loads(code.code)
    if fmt not in BUNDLE_FORMATS:
        raise ValueError(f"unknown code format {fmt!r}")
    for filename, lines in sources:
        linecache.cache[filename] = (sum(map(len, lines)), None, lines, filename)
    form, obj, options = pickle.loads(payload)
    kwargs = {k: v for k, v in options.items() if k in OPTIONS}
    handler: Handler
    if form == "function":
        handler = handler_for_function(obj, kind=code.kind, **kwargs)
    else:
        kwargs.pop("executor", None)
        kwargs.pop("priority", None)
        handler = handler_for_object(obj, kind=code.kind, **kwargs)
    # Format 2: the policy and redactions the publisher declared (format 1 has none).
    extra = {k: options[k] for k in POLICY_OPTIONS if k in options}
    return dataclasses.replace(handler, **extra) if extra else handler


class ShippedCatalogue:
    """A worker's view of the shipped code: which versions exist, which it can run.

    The catalogue (metadata, no code) is re-read when its stamp changes; code is fetched,
    verified and unpickled on first use of a version and cached by version. A version
    that cannot run here is refused once, with one log line naming kind and reason, and
    excluded from this process's claims from then on.
    """

    def __init__(self, keys: list[bytes]) -> None:
        self._keys = keys
        self._python = python_minor()
        self._versions: dict[str, ShippedCode] = {}
        #: kind -> its newest version by created_at (what a job without a version runs).
        self._newest: dict[str, ShippedCode] = {}
        self._handlers: dict[str, Handler] = {}
        #: Verified code not unpickled yet (it loads on the first job that needs it).
        self._verified: dict[str, ShippedCode] = {}
        self._refused: dict[str, tuple[str, str]] = {}
        self._loading: dict[str, asyncio.Future[Handler | str]] = {}
        self._stamp: tuple[int, float | None] | None = None
        #: Bumped when the kinds or the refused versions change (claims re-read them).
        self.generation = 0

    def kinds(self) -> frozenset[str]:
        """Kinds with at least one version not refused."""
        return frozenset(c.kind for v, c in self._versions.items() if v not in self._refused)

    def refused(self, except_kinds: frozenset[str] = frozenset()) -> frozenset[str]:
        """Versions this process cannot run (those of ``except_kinds`` left out)."""
        return frozenset(v for v, (kind, _) in self._refused.items() if kind not in except_kinds)

    def refusal(self, version: str) -> str | None:
        """Why ``version`` cannot run here, if it cannot."""
        found = self._refused.get(version)
        return None if found is None else found[1]

    async def refresh(self, storage: Storage, force: bool = False) -> bool:
        """Re-read the catalogue if it changed; True if it did."""
        stamp = await storage.code_stamp()
        if stamp == self._stamp and not force:
            return False
        self._stamp = stamp
        before = (self.kinds(), len(self._refused))
        new: list[ShippedCode] = []
        for code in await storage.code_catalogue():
            if code.version in self._versions:
                continue
            self._versions[code.version] = code
            new.append(code)
            newest = self._newest.get(code.kind)
            if newest is None or (code.created_at, code.version) > (
                newest.created_at,
                newest.version,
            ):
                self._newest[code.kind] = code
            if code.python != self._python:
                # Known from the catalogue alone: never claim these (re-checked, signed, on load).
                self._refuse(code.version, code.kind, self._python_reason(code))
        # Verify the versions new jobs most likely name (each kind's newest) before any
        # claim, so a version that does not verify is never claimed here. Older versions
        # are verified when a claim first meets them (then released if they fail).
        # They are loaded too: their options (the per-process ``concurrency``) must hold from
        # the first claim, which sees only kinds, not code.
        for code in new:
            if self._newest.get(code.kind) is code and code.version not in self._refused:
                await self.handler(storage, code.kind, code.version)
        changed = (self.kinds(), len(self._refused)) != before
        if changed:
            self.generation += 1
        return changed

    def newest_handlers(self) -> list[Handler]:
        """The loaded handler of each kind's newest version: whose options a claim obeys."""
        found = (self._handlers.get(code.version) for code in self._newest.values())
        return [handler for handler in found if handler is not None]

    async def handler(self, storage: Storage, kind: str, version: str | None) -> Handler | str:
        """The handler of ``version`` (None: the kind's newest), or why it cannot run."""
        if version is None:
            newest = self._newest.get(kind)
            if newest is None:
                await self.refresh(storage, force=True)
                newest = self._newest.get(kind)
            if newest is None:
                return f"no code shipped for kind {kind}"
            version = newest.version
        found = self._handlers.get(version)
        if found is not None:
            return found
        reason = self.refusal(version)
        if reason is not None:
            return reason
        loading = self._loading.get(version)
        if loading is None:
            loading = self._loading[version] = asyncio.get_running_loop().create_future()
            try:
                result = await self._load(storage, kind, version)
            except BaseException as exc:
                loading.set_exception(exc)
                loading.exception()  # retrieved: the caller raises it below
                raise
            finally:
                self._loading.pop(version, None)
            loading.set_result(result)
            return result
        return await asyncio.shield(loading)

    async def _load(self, storage: Storage, kind: str, version: str) -> Handler | str:
        code = self._verified.pop(version, None)
        if code is None:
            checked = await self._verify(storage, kind, version)
            if isinstance(checked, str):
                return checked
            code = self._verified.pop(version)
        try:
            handler = load_handler(code)
        except Exception as exc:  # verified, but it needs something this worker lacks
            return self._refuse(version, kind, f"cannot load it: {type(exc).__name__}: {exc}")
        self._handlers[version] = handler
        return handler

    async def _verify(self, storage: Storage, kind: str, version: str) -> ShippedCode | str:
        """Fetch and check a version (signature, then Python): kept, or refused."""
        code = await storage.get_code(version)
        if code is None:
            return self._refuse(version, kind, "its code row is missing")
        if code.kind != kind:
            return self._refuse(version, kind, f"its code row is for kind {code.kind}")
        if not verifies(self._keys, code):
            return self._refuse(
                version,
                kind,
                f"signature does not verify (not signed by a key in this worker's "
                f"{ENV_CODE_KEY}: wrong key, or the row was altered)",
            )
        if code.python != self._python:
            return self._refuse(version, kind, self._python_reason(code))
        self._verified[version] = code
        return code

    def _python_reason(self, code: ShippedCode) -> str:
        return f"shipped from Python {code.python}, this worker runs Python {self._python}"

    def _refuse(self, version: str, kind: str, reason: str) -> str:
        if version not in self._refused:
            self._refused[version] = (kind, reason)
            self.generation += 1
            log.error(
                "shipped code of kind %s version %s cannot run here: %s; its jobs stay "
                "pending (attempts unspent) for a worker that can run them",
                kind,
                version,
                reason,
            )
        return reason


__all__ = [
    "ENV_CODE_KEY",
    "CodeKeyError",
    "ShippedCatalogue",
    "build",
    "code_keys",
    "content_version",
    "load_handler",
    "pack_handler",
    "python_minor",
    "verifies",
]
