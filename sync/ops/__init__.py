"""Operations: alerts, their rules, configuration (the beat schedule), run statistics and
health checks, and retention of the logs (DESIGN §5 "Alerts", §7; issue 5).

Every figure is computed from database state (``sync_audit_logs``, ``retry_queue``,
``sync_retry_queue``), so a rule sees what any process did, and a restart loses nothing.

Self-watching (issue 17): process heartbeats (``heartbeat``) and the no-worker watchdog that
runs outside the workers (``watchdog``), and the live consistency sampler (``sampler``).
"""
