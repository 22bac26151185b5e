"""forge-nb: a Sidekiq-style job queue on the asyncio loop (Jupyter included).

Only the runtime and storage are imported here, so ``import forge_nb`` stays
fast; the notebook widgets and the dashboard load their UI libraries on use.
"""

from __future__ import annotations

from forge_nb.errors import (
    DatabaseUnavailable,
    DeadDependency,
    ForgeError,
    InvalidDatabaseUrl,
    NotAForgeDatabase,
    PayloadError,
    SchemaTooNew,
    StorageError,
    UnknownDependency,
    UnknownQueue,
    UnknownRateLimit,
)
from forge_nb.runtime import views
from forge_nb.runtime.app import App
from forge_nb.runtime.context import CancelToken, JobCtx, RateLimiter
from forge_nb.runtime.handlers import HandlerRegistry, JobFunction, JobHandler
from forge_nb.runtime.outcomes import Dead, JobDead, Throttled
from forge_nb.runtime.queue_handle import QueueHandle
from forge_nb.runtime.refs import EnqueueRequest, JobRef, JobRefList, gather
from forge_nb.runtime.routing import DefaultRouter, KindPrefixRouter
from forge_nb.runtime.version import VERSION as __version__
from forge_nb.storage import open_storage
from forge_nb.storage.base import Storage
from forge_nb.storage.records import JobRecord, ProcessRecord, QueueConfig

# The notebook views the runtime offers (`App.widget()` and the rest), by name: the runtime
# never imports the notebook layer; each provider loads on first use.
views.provide("widget", "forge_nb.notebook.widget:QueueWidget")
views.provide("dashboard", "forge_nb.notebook.serving:inline_dashboard")
views.provide("serve_dashboard", "forge_nb.notebook.serving:serve_dashboard")
views.provide("job_ref", "forge_nb.notebook.refs_view:display_ref")
views.provide("job_refs", "forge_nb.notebook.refs_view:display_refs")

__all__ = [
    "App",
    "CancelToken",
    "DatabaseUnavailable",
    "Dead",
    "DeadDependency",
    "DefaultRouter",
    "EnqueueRequest",
    "ForgeError",
    "HandlerRegistry",
    "InvalidDatabaseUrl",
    "JobCtx",
    "JobDead",
    "JobFunction",
    "JobHandler",
    "JobRecord",
    "JobRef",
    "JobRefList",
    "KindPrefixRouter",
    "NotAForgeDatabase",
    "PayloadError",
    "ProcessRecord",
    "QueueConfig",
    "QueueHandle",
    "RateLimiter",
    "SchemaTooNew",
    "Storage",
    "StorageError",
    "Throttled",
    "UnknownDependency",
    "UnknownQueue",
    "UnknownRateLimit",
    "__version__",
    "gather",
    "open_storage",
]


def load_ipython_extension(ipython: object) -> None:
    """``%load_ext forge_nb``: registers the ``%fnb`` magic (see `forge_nb.notebook.magics`)."""
    from forge_nb.notebook.magics import load

    load(ipython)
