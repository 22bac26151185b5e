"""Read-only routes about the running system: worker processes and per-minute metrics."""

from __future__ import annotations

import time

from forge_nb.api.base import ApiRoute
from forge_nb.api.convert import (
    BadInput,
    iso,
    metric_json,
    parse_step,
    parse_time,
    process_json,
)
from forge_nb.runtime.rollup import VALID_STEPS

#: Range `GET /api/metrics` covers when ``since`` is not given.
DEFAULT_RANGE_S = 3600


class ProcessesRoute(ApiRoute):
    """``GET /api/processes``: one record per worker slot of every live process."""

    async def get(self) -> None:
        processes = await self.forge.processes()
        self.send({"processes": [process_json(p) for p in processes]})


class MetricsRoute(ApiRoute):
    """``GET /api/metrics?queue=&step=&since=&until=``: buckets plus latency over the range.

    since and until lie in 1970..9999 (`parse_time`), so the App never refuses them.
    """

    async def get(self) -> None:
        now = time.time()
        until_text, since_text = self.query("until"), self.query("since")
        until = parse_time(until_text, "until", now) if until_text else now
        if since_text:
            since = parse_time(since_text, "since", now)
        else:  # the hour before until, not before 1970 (the storage's range starts there)
            since = max(0.0, until - DEFAULT_RANGE_S)
        if since > until:
            raise BadInput("since must not be after until")
        queue, step = self.query("queue"), parse_step(self.query("step"), VALID_STEPS)
        rows = await self.forge.metrics(queue=queue, since=since, until=until, step=step)
        latency = await self.forge.latency(queue=queue, since=since, until=until)
        self.send(
            {
                "queue": queue,
                "since": iso(since),
                "until": iso(until),
                "step": step,
                "metrics": [metric_json(r) for r in rows],
                "latency": metric_json(latency),
            }
        )
