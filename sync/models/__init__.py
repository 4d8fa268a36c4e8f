"""Every model of the sync app, from one place.

Django registers the models of ``sync.models``; each module of this package holds the tables of
one subsystem, and this module re-exports them:

* ``engine``: the abstract ``SyncedModel``, the outbox (``SyncIntent``), the fence, the
  cache verification log and the popular keys' snapshot: the tables the cache engine
  (``sync.cache``) owns.
* ``ingest``: spreadsheet runs, their record log, error log, retries and uploads.
* ``ops``: per-source configuration, alerts, alert mail and health metrics.
* ``observe``: consistency samples and process heartbeats.
* ``console``: the staff action log (and the console permissions it carries).
* ``security``: the security event log and staff sessions.
"""

from sync.models.console import StaffAction
from sync.models.engine import (
    REPLAY_GRACE,
    CacheVerification,
    DatabaseAssignedBigIntegerField,
    PopularKey,
    StatementRequestId,
    SyncedModel,
    SyncFence,
    SyncIntent,
)
from sync.models.ingest import ErrorLog, RecordLog, RecordRetry, SyncRun, SyncUpload
from sync.models.observe import ConsistencySample, ProcessHeartbeat
from sync.models.ops import AlertMail, SyncAlert, SyncConfig, SyncHealthMetric, SyncMetric
from sync.models.security import SecurityEvent, UserSession

__all__ = [
    "REPLAY_GRACE",
    "AlertMail",
    "CacheVerification",
    "ConsistencySample",
    "DatabaseAssignedBigIntegerField",
    "ErrorLog",
    "PopularKey",
    "ProcessHeartbeat",
    "RecordLog",
    "RecordRetry",
    "SecurityEvent",
    "StaffAction",
    "StatementRequestId",
    "SyncAlert",
    "SyncConfig",
    "SyncFence",
    "SyncHealthMetric",
    "SyncIntent",
    "SyncMetric",
    "SyncRun",
    "SyncUpload",
    "SyncedModel",
    "UserSession",
]
