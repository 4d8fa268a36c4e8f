"""Spreadsheet ingestion: buyers and sellers synced without losing a row (docs/ingestion.md).

Guarantees: every sheet row ends a run stored exactly as read (never truncated), unchanged,
or reported with its row number, column, value length and a category; one source runs at
a time (PostgreSQL advisory lock); a run is idempotent, cancellable between batches and
audited (``SyncRun`` with its record and error logs); verification compares sheet and
database after every run. Modules: ``source_definitions`` (sources from TOML),
``source_settings`` (each source's ``sync_config`` row: batches, recovery, alert thresholds),
``sources`` (CSV, XLSX, Google Sheets), ``schema`` (the real column limits), ``validation``,
``upsert``, ``logs``, ``retry`` (the record retry queue), ``pipeline`` (a run: lock, database,
batches, run), ``verification``, ``alerts`` (announced to the operations layer), ``tasks``.
"""
