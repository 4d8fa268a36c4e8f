"""Errors of the sync engine: one base, specific subclasses, driver errors wrapped ``from e``."""


class SyncError(Exception):
    """Base of every sync-engine error."""


class NotSyncedError(SyncError, LookupError):
    """A model or label that no ``@synced`` declaration registered."""


class UndecodableEntryError(SyncError):
    """A cached payload that cannot be decoded (corrupt, tampered, or from another schema)."""


class CacheUnavailableError(SyncError):
    """The cache Redis failed or timed out, or the circuit breaker is open."""
