from django.apps import AppConfig


class SyncConfig(AppConfig):
    name = "sync"
    verbose_name = "Sync engine"
    default_auto_field = "django.db.models.BigAutoField"

    def ready(self) -> None:
        from sync.cache import signals
        from sync.ingest import checks  # noqa: F401 - registers the sources file check

        signals.connect()
        # The security log's receivers (logins, user and group changes; issue 16).
        from sync.console import security

        security.connect()
