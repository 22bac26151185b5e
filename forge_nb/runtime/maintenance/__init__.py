"""The leader's periodic work, one task per file; `DEFAULT_TASKS` is the list it runs.

A new kind of cluster-wide housekeeping is a new `MaintenanceTask` here: a name, how
often it runs, and ``run``. Only the process holding the leader lease runs them
(`forge_nb.runtime.leader`), so each runs once per interval across the cluster.
"""

from __future__ import annotations

from forge_nb.runtime.maintenance.base import MaintenanceTask
from forge_nb.runtime.maintenance.cascade import DependencyCascade
from forge_nb.runtime.maintenance.counts import CountFolding
from forge_nb.runtime.maintenance.cron import CronFiring
from forge_nb.runtime.maintenance.expiry import JobExpiry
from forge_nb.runtime.maintenance.metrics import METRICS_RETENTION_S, MetricsPurge, MetricsRollUp
from forge_nb.runtime.maintenance.rate_limit_sweep import RateLimitSweep
from forge_nb.runtime.maintenance.retention import JobRetention


def default_tasks() -> list[MaintenanceTask]:
    """A fresh set of the leader's tasks, in the order they run within one step."""
    return [
        CronFiring(),
        DependencyCascade(),
        JobExpiry(),
        JobRetention(),
        MetricsPurge(),
        MetricsRollUp(),
        CountFolding(),
        RateLimitSweep(),
    ]


__all__ = [
    "METRICS_RETENTION_S",
    "CountFolding",
    "CronFiring",
    "DependencyCascade",
    "JobExpiry",
    "JobRetention",
    "MaintenanceTask",
    "MetricsPurge",
    "MetricsRollUp",
    "RateLimitSweep",
    "default_tasks",
]
