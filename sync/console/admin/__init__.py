"""The console's admin pages for the sync engine's tables, registered on import.

``sync/admin.py`` imports this package (Django's autodiscovery looks there); the domain apps
register their own models in their ``admin.py`` on ``sync.console.admin_base``.
"""

from sync.console.admin import ops, queues, runs, security

__all__ = ["ops", "queues", "runs", "security"]
