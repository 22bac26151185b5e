"""Exceptions users can catch. Each carries a message that says what to do."""

from __future__ import annotations


class ForgeError(Exception):
    """Base class of every forge-nb error."""


class StorageError(ForgeError):
    """The database refused or failed an operation."""


class DatabaseUnavailable(StorageError):
    """The database cannot be reached (the message names the URL without its password)."""


class InvalidDatabaseUrl(ForgeError, ValueError):
    """The database URL is malformed or names an unsupported scheme."""


class NotAForgeDatabase(StorageError):
    """The database holds tables that forge-nb did not create; it is left untouched."""


class SchemaTooNew(StorageError):
    """The database was migrated by a newer forge-nb than this one; it is left untouched."""


class UnknownQueue(ForgeError, ValueError):
    """An admin call named a queue the database does not know."""


class UnknownRateLimit(ForgeError, ValueError):
    """A rate-limit scope was used before `App.ensure_rate_limit` created it."""


class PayloadError(ForgeError, ValueError):
    """A payload is not a JSON object of finite numbers, strings, lists and objects."""


class UnknownDependency(ForgeError, ValueError):
    """A job's ``depends_on`` names a job that does not exist: nothing was enqueued."""


class DeadDependency(ForgeError, ValueError):
    """A job cannot be retried while one of its dependencies is dead: it would wait forever."""

    def __init__(self, job_id: object, dependency_id: object) -> None:
        super().__init__(
            f"cannot retry job {job_id}: its dependency {dependency_id} is dead; "
            "retry that job first (its dependents wait again)"
        )
