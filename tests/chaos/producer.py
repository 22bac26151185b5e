"""A notebook-style producer in its own process: enqueue at full speed, peek now and then.

    python producer.py URL SECONDS OUT.json

Writes ``{"ids": [...], "errors": ["Type: message", ...], "calls": n}`` to OUT.json.
Every exception a user would see is recorded, never swallowed silently.
"""

from __future__ import annotations

import asyncio
import json
import sys
import time

import forge_nb as fnb


async def produce(url: str, seconds: float) -> dict[str, object]:
    ids: list[str] = []
    errors: list[str] = []
    calls = 0
    async with fnb.App(url) as app:
        work = app.job(kind="work", max_attempts=25)(lambda ctx, n: None)  # kind only
        end = time.monotonic() + seconds
        n = 0
        while time.monotonic() < end:
            n += 1
            calls += 1
            try:
                if n % 50 == 0:
                    refs = await work.enqueue_many([(n * 1000 + i,) for i in range(50)])
                    ids += [r.id for r in refs]
                elif n % 20 == 0:
                    # What a notebook user looks at between enqueues.
                    await app.counts()
                    recent = await app.jobs(limit=20)
                    if recent:
                        await app.job(recent[0].id)
                else:
                    ids.append((await work.enqueue(n)).id)
            except Exception as exc:
                errors.append(f"{type(exc).__name__}: {exc}")
    return {"ids": ids, "errors": errors, "calls": calls}


def main() -> None:
    url, seconds, out = sys.argv[1], float(sys.argv[2]), sys.argv[3]
    result = asyncio.run(produce(url, seconds))
    with open(out, "w") as f:
        json.dump(result, f)


if __name__ == "__main__":
    main()
