"""The route table, and `api_routes` which mounts it on any Tornado (Bokeh/Panel) server."""

from __future__ import annotations

import re
from typing import Any

from forge_nb.api.access import ApiAccess, Credentials
from forge_nb.api.base import API_ROOT, ApiRoute, AppSource, NotFoundRoute
from forge_nb.api.jobs import (
    JobCancelRoute,
    JobGraphRoute,
    JobRetryRoute,
    JobRoute,
    JobsRetryRoute,
    JobsRoute,
)
from forge_nb.api.monitoring import MetricsRoute, ProcessesRoute
from forge_nb.api.observe import JobLogsRoute, JobsBulkRoute
from forge_nb.api.openapi import openapi_document
from forge_nb.api.prometheus import PrometheusRoute
from forge_nb.api.queues import CountsRoute, QueueRoute, QueuesRoute
from forge_nb.api.schedules import ScheduleRoute, ScheduleRunRoute, SchedulesRoute
from forge_nb.runtime.version import VERSION


class IndexRoute(ApiRoute):
    """``GET /api``: what this is, and where the OpenAPI document lives."""

    async def get(self) -> None:
        root = self.api_root()
        self.send(
            {
                "name": "forge-nb",
                "version": VERSION,
                "openapi": f"{root}/openapi.json",
                "read_only": self.access.read_only,
            }
        )


class OpenApiRoute(ApiRoute):
    """``GET /api/openapi.json``."""

    async def get(self) -> None:
        self.send(openapi_document(self.api_root(), self.access.read_only))


#: (path under the API root, handler). Order matters: ``/jobs/retry`` before ``/jobs/{id}``.
ROUTES: list[tuple[str, type[ApiRoute]]] = [
    ("", IndexRoute),
    ("/openapi.json", OpenApiRoute),
    ("/jobs", JobsRoute),
    ("/jobs/retry", JobsRetryRoute),
    ("/jobs/bulk", JobsBulkRoute),
    ("/jobs/{job_id}", JobRoute),
    ("/jobs/{job_id}/graph", JobGraphRoute),
    ("/jobs/{job_id}/logs", JobLogsRoute),
    ("/jobs/{job_id}/retry", JobRetryRoute),
    ("/jobs/{job_id}/cancel", JobCancelRoute),
    ("/counts", CountsRoute),
    ("/queues", QueuesRoute),
    ("/queues/{name}", QueueRoute),
    ("/schedules", SchedulesRoute),
    ("/schedules/{name}", ScheduleRoute),
    ("/schedules/{name}/run", ScheduleRunRoute),
    ("/processes", ProcessesRoute),
    ("/metrics", MetricsRoute),
]

_PARAM = re.compile(r"\{(\w+)\}")


def tornado_pattern(root: str, template: str) -> str:
    """``/jobs/{job_id}`` → ``/api/jobs/(?P<job_id>[^/]+)/?$`` (a trailing slash is fine)."""
    pattern = _PARAM.sub(
        r"(?P<\1>[^/]+)", re.escape(root + template).replace(r"\{", "{").replace(r"\}", "}")
    )
    return pattern + "/?$"


def api_routes(
    app: AppSource,
    *,
    read_only: bool = False,
    basic_auth: Credentials | None = None,
    panel_auth: bool = False,
    prefix: str = "",
) -> list[tuple[str, type[ApiRoute], dict[str, Any]]]:
    """Tornado routes serving the API for ``app``, for ``extra_patterns`` of `pn.serve`.

    ``app`` is an `App` or a callable returning one (built lazily on the
    server's loop). ``basic_auth`` is a password, a ``{user: password}``
    mapping or a JSON file of one (Panel's convention); ``panel_auth=True``
    follows the basic auth the Panel server itself runs with. ``prefix``
    (``/some/path``) goes before ``/api`` (Bokeh adds its own ``prefix`` to
    ``extra_patterns`` itself: leave it empty there).
    """
    access = ApiAccess.build(read_only=read_only, basic_auth=basic_auth, panel_auth=panel_auth)
    options = {"app": app, "access": access}
    root = prefix + API_ROOT
    routes: list[tuple[str, type[ApiRoute], dict[str, Any]]] = [
        (tornado_pattern(root, template), handler, options) for template, handler in ROUTES
    ]
    # Prometheus scrapes /metrics at the server's root (the gauges of `api.prometheus`).
    routes.append((re.escape(prefix) + r"/metrics/?$", PrometheusRoute, options))
    routes.append((re.escape(root) + "/.*", NotFoundRoute, options))
    return routes


def api_application(app: AppSource, **options: Any) -> Any:
    """A standalone Tornado application serving only the API (tests, embedding)."""
    import tornado.web

    return tornado.web.Application(api_routes(app, **options))
