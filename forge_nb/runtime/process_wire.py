"""What crosses between the worker and a process-executor child: framed pickles.

Both sides import this module, so it stays stdlib-only and tiny (a child starts
fast). A frame is a 4-byte big-endian length and a pickle of a tuple whose first
item names the message.

Parent → child, on the job socket: ``(RUN, job_id, fn_key, shipped_fn | None,
payload, meta)``. Parent → child, on the control pipe: cancel notices (a job id
per line); its end of file means the parent died.

Child → parent: ``(READY, pid)``, ``(PROGRESS, job_id, fraction, message)``, ``(LOG,
job_id, text)`` (what the run printed or logged since the last one) and
one reply per job: ``(DONE, job_id, result_json)``, ``(NOT_JSON, job_id, text)``,
``(THROTTLED, job_id, retry_after, message)``, ``(ERROR, job_id, is_dead,
pickled_exception | None, type_name, chain, traceback)``, or ``(MISSING, job_id)``
when the child no longer holds the function and needs it sent again.
"""

from __future__ import annotations

import pickle
import socket
import struct
from typing import Any

RUN = "run"
READY = "ready"
PROGRESS = "progress"
LOG = "log"
DONE = "done"
NOT_JSON = "not_json"
THROTTLED = "throttled"
ERROR = "error"
MISSING = "missing"

HEADER = struct.Struct("!I")
#: Attribute of an exception (raised in the worker) that holds the ``(chain, traceback)`` the
#: child rendered from the real exception, so the stored error reads as a thread job's.
RENDERED_ATTR = "_forge_nb_rendered"


def encode(message: tuple[Any, ...]) -> bytes:
    """One frame."""
    body = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
    return HEADER.pack(len(body)) + body


class FrameReader:
    """Splits a byte stream (fed as it arrives) into messages."""

    def __init__(self) -> None:
        self._buffer = bytearray()

    def feed(self, data: bytes) -> list[Any]:
        """Messages completed by ``data``."""
        buffer = self._buffer
        buffer += data
        out = []
        start = 0
        size = HEADER.size
        while len(buffer) - start >= size:
            (length,) = HEADER.unpack_from(buffer, start)
            end = start + size + length
            if len(buffer) < end:
                break
            out.append(pickle.loads(memoryview(buffer)[start + size : end]))
            start = end
        if start:
            del buffer[:start]
        return out


def read_frame(sock: socket.socket) -> Any | None:
    """Block for one message; None at end of file (the other side is gone)."""
    header = _read_exactly(sock, HEADER.size)
    if header is None:
        return None
    (length,) = HEADER.unpack(header)
    body = _read_exactly(sock, length)
    if body is None:
        return None
    return pickle.loads(body)


def _read_exactly(sock: socket.socket, n: int) -> bytes | None:
    if n == 0:
        return b""
    chunks = []
    while n:
        chunk = sock.recv(min(n, 1 << 20))
        if not chunk:
            return None
        chunks.append(chunk)
        n -= len(chunk)
    return chunks[0] if len(chunks) == 1 else b"".join(chunks)


def rendered(exc: BaseException) -> tuple[str, str] | None:
    """``(chain, traceback)`` a child rendered for ``exc``, if it came from one."""
    found = getattr(exc, RENDERED_ATTR, None)
    return found if isinstance(found, tuple) else None
