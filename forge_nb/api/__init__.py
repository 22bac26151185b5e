"""HTTP JSON API of forge-nb (SPEC §6), served under ``/api/`` next to the dashboard.

Mount it on a Panel/Bokeh server with
``pn.serve(..., extra_patterns=api_routes(app, read_only=…, basic_auth=…))``,
on ``panel serve`` with ``--plugins forge_nb.api.plugin``, or standalone with
`api_application`. The routes (`*Route` classes) are plain Tornado and run on the
server's loop, which is the loop the `App` lives on. Records and request bodies are
described once, in `forge_nb.api.models`: the OpenAPI document is generated from them
and the bodies are checked against them.
"""

from __future__ import annotations

from forge_nb.api.access import ApiAccess
from forge_nb.api.openapi import openapi_document
from forge_nb.api.routes import ROUTES, api_application, api_routes

__all__ = ["ROUTES", "ApiAccess", "api_application", "api_routes", "openapi_document"]
