"""The operations console (docs/console.md): Django admin pages, a dashboard, manual syncs
and their JSON API, over the services of ``sync.cache``, ``sync.ingest`` and ``sync.ops``.

Who may do what is decided in one place, ``sync.access.roles``; every staff action is
recorded by ``sync.console.audit``; PII is masked by ``sync.console.masking`` for anyone
without the PII role (DESIGN I6 extends to pages: no PII on a page for such a user).
"""
