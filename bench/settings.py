"""Settings of the django-cacheops comparison (bench only): the project's, plus cacheops.

Only ``bench/cacheops_read.py`` runs on these, in a process of its own: cacheops patches every
manager and queryset and hooks every save, which must not tax the engine's own figures.
"""

from config.settings import *  # noqa: F403
from config.settings import INSTALLED_APPS, SYNC_REDIS_URL

INSTALLED_APPS = [*INSTALLED_APPS, "cacheops"]

# The same Redis server (and socket) as the sync engine's cache.
CACHEOPS_REDIS = SYNC_REDIS_URL
# Cache Part.objects.get(); what repository.get() does for a synced model.
CACHEOPS = {"catalog.part": {"ops": {"get"}, "timeout": 3600}}
