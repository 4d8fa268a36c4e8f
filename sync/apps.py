from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sync.cache import signals
        from sync.ingest import checks  # noqa: F401 - registers the sources file check
        from sync.ingest.alerts import alert_raised
        from sync.ingest.source_settings import settings_created
        from sync.ops.alerts import record_ingest_alert
        from sync.ops.source_settings import schedule_created

        signals.connect()
        # Operations react to ingestion (which sits below them and imports none of them): an
        # alert a run raises is recorded, a source's settings row created is scheduled.
        alert_raised.connect(record_ingest_alert, dispatch_uid="sync.ops.record_ingest_alert")
        settings_created.connect(schedule_created, dispatch_uid="sync.ops.schedule_created")
        # The security log's receivers (logins, user and group changes).
        from sync.console import security

        security.connect()
