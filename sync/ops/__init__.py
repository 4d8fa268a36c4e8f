"""Operations: alerts (``alerts``), their rules (``rules``, run by ``checks.ops_check``), the
beat schedule of the per-source settings (``source_settings``), run statistics (``stats``),
the service checks (``health``), the Prometheus gauges and scrape (``metrics``), the security
log (``security_log``) and retention of the logs (``retention``); docs/operations.md.

Every figure is computed from database state (``sync_audit_logs``, ``retry_queue``,
``sync_retry_queue``), so a rule sees what any process did, and a restart loses nothing.

Self-watching: process heartbeats (``heartbeat``) and the no-worker watchdog that runs outside
the workers (``watchdog``), and the live consistency sampler (``sampler``).

Operations sit above ingestion and the engine and below the console (docs/architecture.md):
ingestion's alerts and new settings rows reach them as signals (``sync.ingest.alerts``,
``sync.ingest.source_settings``) connected in ``SyncConfig.ready``.
"""
