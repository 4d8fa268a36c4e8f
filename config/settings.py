"""Settings, read only from the environment (django-environ); README.md lists every variable.

``DJANGO_ENV`` is ``development`` (default) or ``production``. In production every required
variable must be set (a missing one is a clear startup error). In development too the settings
need ``DATABASE_URL`` / ``REDIS_URL`` / ``CELERY_BROKER_URL`` and start nothing themselves
(importing them never connects anywhere): ``./dev manage``, ``./dev demo`` and the test run
start embedded real servers under ``.run/<profile>`` and export the URLs before the settings
are read (see ``devtools/devservices.py``).
"""

from __future__ import annotations

from csp.constants import NONCE, NONE, SELF
from django.core.exceptions import ImproperlyConfigured

from config.env import ROOT, env, require_production_settings
from sync.cache.keyring import development_keys, parse_keyring
from sync.replicas import replica_databases

DJANGO_ENV = env.str("DJANGO_ENV", default="development")
PRODUCTION = DJANGO_ENV == "production"

if PRODUCTION:
    require_production_settings()
elif _missing := [
    name
    for name in ("DATABASE_URL", "REDIS_URL", "CELERY_BROKER_URL")
    if not env.str(name, default="")
]:
    msg = (
        f"{', '.join(_missing)} unset: the settings start no servers. Set them to your "
        "PostgreSQL and Redis, or use ./dev manage … (./dev demo, ./dev test) for embedded "
        "development servers."
    )
    raise ImproperlyConfigured(msg)

BASE_DIR = ROOT
DEBUG = env.bool("DEBUG", default=not PRODUCTION)
SECRET_KEY = env.str(
    "SECRET_KEY",
    default="dev-only-insecure-key-" + "x" * 40,  # never used in production (required there)
)
ALLOWED_HOSTS = env.list("ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]", "testserver"])
CSRF_TRUSTED_ORIGINS = env.list("CSRF_TRUSTED_ORIGINS", default=[])
# A JSON 403 for the JSON APIs under /api/, Django's page elsewhere.
CSRF_FAILURE_VIEW = "sync.access.api.csrf_failure"

INSTALLED_APPS = [
    # django.contrib.admin, with the console's site as admin.site (its dashboard and pages).
    "sync.console.apps.ConsoleAdminConfig",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "django_celery_beat",
    "axes",
    "health_check",
    "pgtrigger",
    "ninja",
    "sync",
    "catalog",
    "customers",
    "buyers",
    "sellers",
]

MIDDLEWARE = [
    # First: the request id tags every log line of the request, the others' too.
    "sync.access.request_id.RequestIdMiddleware",
    # Server-Timing (cache, db, total) and the slow-request log (HTTP_* below): right below
    # the request id, so it measures everything else and records with the id.
    "sync.ops.timing.ServerTimingMiddleware",
    # Brotli/gzip of JSON and HTML, never of the event stream (config/compression.py): above
    # everything that reads or writes a body.
    "config.compression.CompressionMiddleware",
    "django.middleware.security.SecurityMiddleware",
    # The Content-Security-Policy header (CONTENT_SECURITY_POLICY below).
    "csp.middleware.CSPMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    # Right after the user is known: an idle or too-old session ends before anything (the rate
    # limits per role, a view) sees its user; every 401/403 below, whoever answers it, goes to
    # the security log (sync/console/security.py).
    "sync.console.security.SessionLifetimeMiddleware",
    "sync.console.security.SecurityLogMiddleware",
    # /api/: a JSON 413 for a body too big, rate limits per role (needs the user).
    "sync.console.api_middleware.ApiGuardMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    # Last, as django-axes asks: it turns a locked-out login into a 429 page.
    "axes.middleware.AxesMiddleware",
]

# Request timing (sync/ops/timing.py, docs/api.md): the Server-Timing header on every
# non-streaming response. Requests taking at least HTTP_SLOW_REQUEST_MS and SQL statements
# taking at least HTTP_SLOW_QUERY_MS (milliseconds) are logged at WARNING and kept for the
# console's slow requests page (docs/console.md): the newest HTTP_SLOW_KEEP of each, in the
# engine's Redis for HTTP_SLOW_TTL seconds after the last one (sync/ops/slow.py).
HTTP_SERVER_TIMING = env.bool("HTTP_SERVER_TIMING", default=True)
HTTP_SLOW_REQUEST_MS = env.float("HTTP_SLOW_REQUEST_MS", default=500.0)
HTTP_SLOW_QUERY_MS = env.float("HTTP_SLOW_QUERY_MS", default=100.0)
HTTP_SLOW_KEEP = env.int("HTTP_SLOW_KEEP", default=200)
HTTP_SLOW_TTL = env.int("HTTP_SLOW_TTL", default=7 * 24 * 3600)
if HTTP_SLOW_REQUEST_MS <= 0 or HTTP_SLOW_QUERY_MS <= 0 or HTTP_SLOW_KEEP < 1 or HTTP_SLOW_TTL < 1:
    # NOTE: 0 would keep every request as slow: the list would say nothing and cost a Redis
    # write per request; a negative TTL would drop them at once.
    _msg = (
        f"HTTP_SLOW_REQUEST_MS={HTTP_SLOW_REQUEST_MS}, HTTP_SLOW_QUERY_MS={HTTP_SLOW_QUERY_MS} "
        f"(milliseconds, above 0), HTTP_SLOW_KEEP={HTTP_SLOW_KEEP}, HTTP_SLOW_TTL="
        f"{HTTP_SLOW_TTL} (at least 1): one of them is out of range"
    )
    raise ImproperlyConfigured(_msg)

AUTHENTICATION_BACKENDS = [
    "axes.backends.AxesStandaloneBackend",
    "django.contrib.auth.backends.ModelBackend",
]

ROOT_URLCONF = "config.urls"
WSGI_APPLICATION = "config.wsgi.application"
ASGI_APPLICATION = "config.asgi.application"

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [ROOT / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ],
        },
    },
]

# --------------------------------------------------------------------------- services

DATABASES = {"default": env.db("DATABASE_URL")}
# NOTE: django-environ leaves a socket directory given as ?host= in OPTIONS; the application
# connects through it, but dbshell (psql) reads HOST only and reached another server's default
# socket (/var/run/postgresql) instead of the embedded one. HOST says it too (OPTIONS keeps
# it: scripts that build a URL from the settings read it there).
if (_host := DATABASES["default"].get("OPTIONS", {}).get("host", "")) and not DATABASES["default"][
    "HOST"
]:
    DATABASES["default"]["HOST"] = _host
DATABASES["default"]["CONN_MAX_AGE"] = env.int("DB_CONN_MAX_AGE", default=0)
DATABASES["default"]["CONN_HEALTH_CHECKS"] = True
# Behind PgBouncer (docs/scaling.md): DATABASE_POOLING=transaction turns off what a server
# connection shared between transactions cannot keep: server-side cursors (QuerySet.iterator)
# and the write-through's prepared statements. "session" (or unset) changes nothing.
DATABASE_POOLING = env.str("DATABASE_POOLING", default="")
if DATABASE_POOLING not in ("", "session", "transaction"):
    _msg = f"DATABASE_POOLING={DATABASE_POOLING!r}: use session or transaction (or leave it unset)"
    raise ValueError(_msg)
DATABASES["default"]["DISABLE_SERVER_SIDE_CURSORS"] = DATABASE_POOLING == "transaction"
# Read replicas (docs/scaling.md, "PostgreSQL read replicas"): comma-separated URLs, each a
# database alias (replica, replica_2 …) with the primary's connection options. Only reads
# marked stale-tolerant go there (sync/replicas.py); unset, every read is the primary's.
DATABASES.update(
    replica_databases(env.str("DATABASE_REPLICA_URL", default=""), DATABASES["default"])
)
DATABASE_REPLICAS = [name for name in DATABASES if name != "default"]
DATABASE_ROUTERS = ["sync.replicas.ReplicaRouter"] if DATABASE_REPLICAS else []
# A replica that did not answer is left alone this many seconds (its reads: the primary);
# /health/ warns when one is this many seconds behind the primary.
DATABASE_REPLICA_RETRY = env.float("DATABASE_REPLICA_RETRY", default=5.0)
DATABASE_REPLICA_LAG_WARNING = env.float("DATABASE_REPLICA_LAG_WARNING", default=30.0)
if DATABASE_REPLICA_RETRY <= 0 or DATABASE_REPLICA_LAG_WARNING <= 0:
    _msg = (
        f"DATABASE_REPLICA_RETRY={DATABASE_REPLICA_RETRY}, DATABASE_REPLICA_LAG_WARNING="
        f"{DATABASE_REPLICA_LAG_WARNING}: both are seconds above 0"
    )
    raise ImproperlyConfigured(_msg)

REDIS_URL = env.str("REDIS_URL")
# Redis socket timeouts (seconds): short, so a hung server costs one timeout (docs/sync-engine.md).
REDIS_SOCKET_TIMEOUT = env.float("REDIS_SOCKET_TIMEOUT", default=0.25)
REDIS_CONNECT_TIMEOUT = env.float("REDIS_CONNECT_TIMEOUT", default=0.25)

# NOTE: django-environ cannot parse unix:// cache URLs, so CACHES is by hand.
CACHES = {
    "default": {
        "BACKEND": "django_redis.cache.RedisCache",
        "LOCATION": REDIS_URL,
        "KEY_PREFIX": "django",
        "OPTIONS": {
            "SOCKET_TIMEOUT": REDIS_SOCKET_TIMEOUT,
            "SOCKET_CONNECT_TIMEOUT": REDIS_CONNECT_TIMEOUT,
            # Django's own cache use (sessions are in PostgreSQL) must not fail a request.
            "IGNORE_EXCEPTIONS": True,
        },
    },
}

CELERY_BROKER_URL = env.str("CELERY_BROKER_URL")
CELERY_RESULT_BACKEND = env.str("CELERY_RESULT_BACKEND", default="") or None
CELERY_TASK_SERIALIZER = "json"
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"
CELERY_WORKER_HIJACK_ROOT_LOGGER = False

# --------------------------------------------------------------------------- sync engine

# The sync engine's Redis: a URL of one server, or a topology (sync/cache/connection.py,
# docs/scaling.md): redis+cluster://host:port,host:port/ (seed nodes of a Redis Cluster) or
# redis+sentinel://host:port,host:port/<service>/<db> (the primary Sentinel names).
SYNC_REDIS_URL = env.str("SYNC_REDIS_URL", default=REDIS_URL)
# The sentinels' own password (requirepass of the sentinel processes), when they have one.
SYNC_REDIS_SENTINEL_PASSWORD = env.str("SYNC_REDIS_SENTINEL_PASSWORD", default="")
# Seconds between each process's questions to the sentinels "which node is the primary?"
# (a process that only reads must not go on reading a demoted primary).
SYNC_REDIS_SENTINEL_CHECK = env.float("SYNC_REDIS_SENTINEL_CHECK", default=1.0)
# Replicated writes (Sentinel, or a Cluster with replicas): a write-through counts as done only
# when this many replicas acknowledged it (WAIT) within the timeout; otherwise its intents stay
# for replay, as after any failed write. 0: no WAIT (one server, or async replication accepted).
SYNC_REDIS_WAIT_REPLICAS = env.int("SYNC_REDIS_WAIT_REPLICAS", default=0)
SYNC_REDIS_WAIT_TIMEOUT_MS = env.int("SYNC_REDIS_WAIT_TIMEOUT_MS", default=100)
if SYNC_REDIS_WAIT_REPLICAS and SYNC_REDIS_WAIT_TIMEOUT_MS >= REDIS_SOCKET_TIMEOUT * 1000:
    # A WAIT longer than the socket timeout would end as a timeout that opens the breaker.
    msg = (
        f"SYNC_REDIS_WAIT_TIMEOUT_MS ({SYNC_REDIS_WAIT_TIMEOUT_MS}) must be shorter than "
        f"REDIS_SOCKET_TIMEOUT ({REDIS_SOCKET_TIMEOUT} s)"
    )
    raise ImproperlyConfigured(msg)
SYNC_KEY_PREFIX = env.str("SYNC_KEY_PREFIX", default="syncops")
# Tier 2/3 keys (sync/cache/keyring.py): "id:base64key[,id:base64key…]" of 32-byte AES keys
# (the first encrypts, all decrypt) and a base64 HMAC key for blind indexes. Required in
# production; development generates its own once per run directory. Validated here, so a
# malformed key stops the process at startup.
_dev_keys = (
    {}
    if PRODUCTION
    or (env.str("SYNC_ENCRYPTION_KEYS", default="") and env.str("SYNC_HMAC_KEY", default=""))
    else (development_keys(ROOT / ".run" / env.str("SYNCOPS_SERVICES_PROFILE", default="dev")))
)
SYNC_ENCRYPTION_KEYS = env.str("SYNC_ENCRYPTION_KEYS", default="") or _dev_keys.get(
    "SYNC_ENCRYPTION_KEYS", ""
)
SYNC_HMAC_KEY = env.str("SYNC_HMAC_KEY", default="") or _dev_keys.get("SYNC_HMAC_KEY", "")
parse_keyring(SYNC_ENCRYPTION_KEYS, SYNC_HMAC_KEY)
# Phone numbers without a country prefix are normalised with this one (blind indexes).
SYNC_PHONE_DEFAULT_COUNTRY_CODE = env.str("SYNC_PHONE_DEFAULT_COUNTRY_CODE", default="1")
# The write-through's statements are server-side prepared (planned once per connection); turn
# off behind a PgBouncer in transaction-pooling mode, which cannot keep prepared statements.
SYNC_PREPARED_STATEMENTS = env.bool(
    "SYNC_PREPARED_STATEMENTS", default=DATABASE_POOLING != "transaction"
)
# Big pipelines (warming, verification, replay batches, rotation) wait this long for replies.
SYNC_BULK_SOCKET_TIMEOUT = env.float("SYNC_BULK_SOCKET_TIMEOUT", default=5.0)
# Degraded mode: after a Redis timeout/connection error the breaker sends callers straight to
# PostgreSQL for this many seconds, then lets one probe through.
SYNC_BREAKER_COOLDOWN = env.float("SYNC_BREAKER_COOLDOWN", default=1.0)
# How often each process re-reads the outage fence (DESIGN I9), seconds.
SYNC_FENCE_REFRESH = env.float("SYNC_FENCE_REFRESH", default=0.1)
# The staleness bound (DESIGN I9): a key whose pending intent is older than this many seconds
# is read from PostgreSQL until replay writes it, whether or not any worker runs.
SYNC_STALENESS_BOUND = env.float("SYNC_STALENESS_BOUND", default=5.0)
# Fill leases on a cache miss: how long one filler holds it, how long others wait for it.
SYNC_LEASE_MS = env.int("SYNC_LEASE_MS", default=2000)
SYNC_LEASE_WAIT = env.float("SYNC_LEASE_WAIT", default=0.05)
# Replay of sync_retry_queue: batch, claim lease, backoff (base · 2^attempts, capped, jittered)
# and the attempt after which an intent is dead (and alerted on).
SYNC_REPLAY_BATCH = env.int("SYNC_REPLAY_BATCH", default=1000)
SYNC_REPLAY_LEASE = env.float("SYNC_REPLAY_LEASE", default=30.0)
SYNC_REPLAY_BACKOFF_BASE = env.float("SYNC_REPLAY_BACKOFF_BASE", default=1.0)
SYNC_REPLAY_BACKOFF_CAP = env.float("SYNC_REPLAY_BACKOFF_CAP", default=300.0)
SYNC_REPLAY_MAX_ATTEMPTS = env.int("SYNC_REPLAY_MAX_ATTEMPTS", default=15)
SYNC_REPLAY_INTERVAL = env.float("SYNC_REPLAY_INTERVAL", default=5.0)
# Tombstones outlive the longest replay backoff many times over (a late write cannot resurrect).
SYNC_TOMBSTONE_TTL = env.int("SYNC_TOMBSTONE_TTL", default=24 * 3600)
SYNC_WARM_BATCH = env.int("SYNC_WARM_BATCH", default=2000)
# The automatic warm of a cache Redis that came back empty (sync/cache/autowarm.py): how
# often a worker checks, its pace (rows/s, 0: unpaced), how long its lock outlives a worker
# that died, and the least time between two starts while none finishes.
SYNC_WARM_CHECK_INTERVAL = env.float("SYNC_WARM_CHECK_INTERVAL", default=5.0)
SYNC_WARM_RATE = env.int("SYNC_WARM_RATE", default=20000)
SYNC_WARM_LOCK = env.float("SYNC_WARM_LOCK", default=30.0)
SYNC_WARM_RETRY = env.float("SYNC_WARM_RETRY", default=30.0)
# Popular rows warm first (sync/cache/popularity.py): this share of cache-first reads is
# counted in the cache Redis (one pipelined round trip each; 0: none), a model's window of
# counts keeps its SYNC_POPULAR_KEEP most read rows (twice that before it is trimmed), and
# every SYNC_POPULAR_SNAPSHOT_INTERVAL seconds beat folds the window into PostgreSQL
# (sync_popular_keys, scores halved every SYNC_POPULAR_HALF_LIFE seconds), which the
# automatic warm reads to write those rows before all the others.
SYNC_POPULAR_SAMPLE_RATE = env.float("SYNC_POPULAR_SAMPLE_RATE", default=0.05)
SYNC_POPULAR_KEEP = env.int("SYNC_POPULAR_KEEP", default=1000)
SYNC_POPULAR_SNAPSHOT_INTERVAL = env.float("SYNC_POPULAR_SNAPSHOT_INTERVAL", default=60.0)
SYNC_POPULAR_HALF_LIFE = env.float("SYNC_POPULAR_HALF_LIFE", default=3600.0)
if (
    not 0.0 <= SYNC_POPULAR_SAMPLE_RATE <= 1.0
    or SYNC_POPULAR_KEEP < 1
    or SYNC_POPULAR_HALF_LIFE <= 0
):
    _msg = (
        f"SYNC_POPULAR_SAMPLE_RATE={SYNC_POPULAR_SAMPLE_RATE} (0 to 1), SYNC_POPULAR_KEEP="
        f"{SYNC_POPULAR_KEEP} (at least 1), SYNC_POPULAR_HALF_LIFE={SYNC_POPULAR_HALF_LIFE} "
        "(seconds, above 0): one of them is out of range"
    )
    raise ImproperlyConfigured(_msg)

# The catalog API's public reads: cache-first through the sync repository; False reads
# PostgreSQL only (the benchmark's baseline, or an operator's switch).
CATALOG_CACHE_READS = env.bool("CATALOG_CACHE_READS", default=True)
# The symbol the storefront shows before a price (docs/storefront.md).
CATALOG_CURRENCY_SYMBOL = env.str("CATALOG_CURRENCY_SYMBOL", default="€")
if not CATALOG_CURRENCY_SYMBOL.strip() or len(CATALOG_CURRENCY_SYMBOL) > 8:
    _msg = f"CATALOG_CURRENCY_SYMBOL={CATALOG_CURRENCY_SYMBOL!r}: a symbol of 1 to 8 characters"
    raise ImproperlyConfigured(_msg)

CELERY_BEAT_SCHEDULE = {
    "sync-replay": {"task": "sync.tasks.replay", "schedule": SYNC_REPLAY_INTERVAL},
    "sync-verify-hourly": {"task": "sync.tasks.verify", "schedule": 3600.0},
    # A cold cache Redis starts warming by itself; a check no worker took is dropped
    # (django-celery-beat's scheduler knows the option as expire_seconds, whole seconds).
    "sync-warm-check": {
        "task": "sync.tasks.warm_check",
        "schedule": SYNC_WARM_CHECK_INTERVAL,
        "options": {"expire_seconds": max(1, round(SYNC_WARM_CHECK_INTERVAL))},
    },
    # The read counts of the cache Redis into PostgreSQL, where a flush does not reach them.
    "sync-popular-snapshot": {
        "task": "sync.tasks.popular_snapshot",
        "schedule": SYNC_POPULAR_SNAPSHOT_INTERVAL,
        "options": {"expire_seconds": max(1, round(SYNC_POPULAR_SNAPSHOT_INTERVAL))},
    },
}

# --------------------------------------------------------------------------- mail, metrics

EMAIL_CONFIG = env.email_url("EMAIL_URL", default="consolemail://")
vars().update(EMAIL_CONFIG)
DEFAULT_FROM_EMAIL = env.str("DEFAULT_FROM_EMAIL", default="syncops@localhost")
SERVER_EMAIL = DEFAULT_FROM_EMAIL
SYNC_ALERT_RECIPIENTS = env.list("SYNC_ALERT_RECIPIENTS", default=[])

# /health/: each check's budget, seconds; the checks run in parallel, so this bounds the answer.
HEALTH_CHECK_TIMEOUT = env.float("HEALTH_CHECK_TIMEOUT", default=0.8)
# /metrics: staff session, or "Authorization: Bearer <METRICS_TOKEN>" for a scraper.
METRICS_TOKEN = env.str("METRICS_TOKEN", default="")

# --------------------------------------------------------------------------- the rest

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]

AXES_FAILURE_LIMIT = env.int("AXES_FAILURE_LIMIT", default=5)
AXES_COOLOFF_TIME = env.float("AXES_COOLOFF_HOURS", default=0.25)
AXES_RESET_ON_SUCCESS = True
# Locked: a username from one address. Not the address alone (a whole office behind one proxy
# would be locked by one person's typos), not the username alone (anyone could lock anyone
# out); a spray over many users or addresses raises the login_failures alert instead.
AXES_LOCKOUT_PARAMETERS = [["username", "ip_address"]]
# The client's address by the project's one rule (sync/access/client_ip.py, docs/security.md).
AXES_CLIENT_IP_CALLABLE = "sync.access.client_ip.client_ip"
# How many proxies of ours stand in front of the web server: X-Forwarded-For is believed for
# exactly these hops. 0: the peer address (REMOTE_ADDR), the header is ignored. The ASGI
# server must not rewrite the peer itself (uvicorn --no-proxy-headers, docs/security.md).
TRUSTED_PROXY_COUNT = env.int("TRUSTED_PROXY_COUNT", default=0)
if TRUSTED_PROXY_COUNT < 0:
    _msg = f"TRUSTED_PROXY_COUNT={TRUSTED_PROXY_COUNT}: use 0 (no proxy) or the number of proxies"
    raise ImproperlyConfigured(_msg)

# Sessions (sync/console/security.py): in PostgreSQL with the user id indexed, so a password
# change, a deactivation or a removed staff flag deletes all of the user's sessions at once.
# A session ends after SESSION_IDLE_TIMEOUT seconds without a request and, whatever the
# activity, SESSION_ABSOLUTE_LIFETIME seconds after the login.
SESSION_ENGINE = "sync.console.session_store"
SESSION_IDLE_TIMEOUT = env.int("SESSION_IDLE_TIMEOUT", default=30 * 60)
SESSION_ABSOLUTE_LIFETIME = env.int("SESSION_ABSOLUTE_LIFETIME", default=12 * 3600)
SESSION_COOKIE_AGE = SESSION_ABSOLUTE_LIFETIME  # neither cookie nor row outlives the session
SESSION_COOKIE_HTTPONLY = True
# The security log's alert (sync/ops/security_log.py): this many failed logins within this
# many minutes, over all users and addresses.
SECURITY_ALERT_LOGIN_FAILURES = env.int("SECURITY_ALERT_LOGIN_FAILURES", default=20)
SECURITY_ALERT_WINDOW_MINUTES = env.float("SECURITY_ALERT_WINDOW_MINUTES", default=10.0)

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True
# The console's one format (sync/console/formats.py) for Django's own rendering too:
# 2026-12-06 20:54:21 and 4,140 (form inputs are not localized: no commas in them).
FORMAT_MODULE_PATH = ["config.formats"]
USE_THOUSAND_SEPARATOR = True

STATIC_URL = "static/"
STATIC_ROOT = env.path("STATIC_ROOT", default=str(ROOT / ".run" / "static"))
# NOTE: only when it exists: git keeps no empty directory, and a missing one is a warning
# (staticfiles.W004) that would fail `check --deploy --fail-level WARNING` on a fresh clone.
STATICFILES_DIRS = [path for path in [ROOT / "static"] if path.is_dir()]
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

if PRODUCTION:
    SECURE_SSL_REDIRECT = env.bool("SECURE_SSL_REDIRECT", default=True)
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_HSTS_SECONDS = env.int("SECURE_HSTS_SECONDS", default=31536000)
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    SECURE_HSTS_PRELOAD = True
    SESSION_COOKIE_SECURE = True
    CSRF_COOKIE_SECURE = True

# Content-Security-Policy (django-csp, docs/security.md): scripts, styles, images, fonts and
# requests from this origin only, no inline script unless it carries the request's nonce
# (``request.csp_nonce``), no inline style attribute, no plugins, no framing. The admin, the
# console's script and the API docs (django-ninja's bundled Swagger UI, served from our static
# files, no CDN) all run under it. CSP_REPORT_URI: where browsers report violations.
# NOTE: not a setting of that name: django-csp 4 takes CSP_* settings for its old format.
_csp_report_uri = env.str("CSP_REPORT_URI", default="")
CONTENT_SECURITY_POLICY = {
    "DIRECTIVES": {
        "default-src": [SELF],
        "script-src": [SELF, NONCE],
        "style-src": [SELF],
        "img-src": [SELF, "data:"],
        "font-src": [SELF],
        "connect-src": [SELF],
        "object-src": [NONE],
        "base-uri": [SELF],
        "form-action": [SELF],
        "frame-ancestors": [NONE],
        **({"report-uri": [_csp_report_uri]} if _csp_report_uri else {}),
    },
}

# The event system (/api/events, docs/api.md; the console's "Event system" page): each SSE
# process refreshes its figures in Redis every SYNC_EVENTS_STATS_INTERVAL seconds; the engine's
# ops check raises event_latency when a live process's commit-to-delivery p99 (last minute)
# reaches SYNC_EVENTS_LATENCY_ALERT_MS, and event_lag when its reader is
# SYNC_EVENTS_LAG_ALERT_SECONDS behind the stream (docs/operations.md).
SYNC_EVENTS_STATS_INTERVAL = env.float("SYNC_EVENTS_STATS_INTERVAL", default=5.0)
SYNC_EVENTS_LATENCY_ALERT_MS = env.float("SYNC_EVENTS_LATENCY_ALERT_MS", default=1000.0)
SYNC_EVENTS_LAG_ALERT_SECONDS = env.float("SYNC_EVENTS_LAG_ALERT_SECONDS", default=30.0)
if (
    SYNC_EVENTS_STATS_INTERVAL <= 0
    or SYNC_EVENTS_LATENCY_ALERT_MS <= 0
    or SYNC_EVENTS_LAG_ALERT_SECONDS <= 0
):
    # NOTE: 0 would raise the alerts for every healthy process, or never refresh the figures.
    _msg = (
        f"SYNC_EVENTS_STATS_INTERVAL={SYNC_EVENTS_STATS_INTERVAL}, SYNC_EVENTS_LATENCY_ALERT_MS="
        f"{SYNC_EVENTS_LATENCY_ALERT_MS}, SYNC_EVENTS_LAG_ALERT_SECONDS="
        f"{SYNC_EVENTS_LAG_ALERT_SECONDS} (each above 0): one of them is out of range"
    )
    raise ImproperlyConfigured(_msg)

LOG_LEVEL = env.str("LOG_LEVEL", default="INFO")
# "json": one JSON object per line (python-json-logger), what a log shipper wants; "plain": for
# a terminal. Both carry the request id and go through redact_pii.
LOG_FORMAT = env.str("LOG_FORMAT", default="json" if PRODUCTION else "plain")
if LOG_FORMAT not in {"json", "plain"}:
    _msg = f"LOG_FORMAT={LOG_FORMAT!r}: use json or plain"
    raise ImproperlyConfigured(_msg)
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {
        "plain": {"format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"},
        "json": {
            "()": "pythonjsonlogger.json.JsonFormatter",
            "fmt": "%(asctime)s %(levelname)s %(name)s %(request_id)s %(message)s",
            "rename_fields": {"asctime": "time", "levelname": "level", "name": "logger"},
        },
    },
    # DESIGN I6: every record that leaves the process (ours, Django's, Celery's) is redacted.
    "filters": {
        "redact_pii": {"()": "sync.redaction.RedactPiiFilter"},
        "request_id": {"()": "sync.access.request_id.RequestIdFilter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["redact_pii", "request_id"],
        },
    },
    "root": {"handlers": ["console"], "level": "WARNING"},
    "loggers": {
        "sync": {"level": LOG_LEVEL},
        "catalog": {"level": LOG_LEVEL},
        "config": {"level": LOG_LEVEL},
        # The ASGI server's own loggers (its access lines carry paths and query strings):
        # through the same redacting handler instead of the handlers uvicorn installs.
        "uvicorn": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.error": {"handlers": ["console"], "level": "INFO", "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "level": "INFO", "propagate": False},
        # Django's own loggers: its DEFAULT_LOGGING gives "django" a handler of its own
        # (printing "Not Found: <path>" and tracebacks unredacted under DEBUG; mailing them
        # to ADMINS otherwise) and "django.server" another: none, they reach the root's.
        "django": {"handlers": [], "level": "INFO", "propagate": True},
        "django.server": {"handlers": [], "level": "INFO", "propagate": True},
    },
}

# --------------------------------------------------------------------------- API guard

# Rate limits per role on every API under /api/ (sync/console/ratelimit.py, docs/security.md),
# counted in the cache Redis (REDIS_URL); "<n>/<second|minute|hour|day>" or "<n> per <k> minute".
# When that Redis is unreachable, requests pass unlimited (fail open, DESIGN I1) and for
# API_RATELIMIT_FAIL_OPEN_COOLDOWN seconds nobody waits on it again.
API_RATELIMIT_ENABLED = env.bool("API_RATELIMIT_ENABLED", default=True)
API_RATELIMIT_ANONYMOUS = env.str("API_RATELIMIT_ANONYMOUS", default="120/minute")  # per IP
API_RATELIMIT_VIEWER = env.str("API_RATELIMIT_VIEWER", default="600/minute")  # per user
API_RATELIMIT_OPERATOR = env.str("API_RATELIMIT_OPERATOR", default="1200/minute")  # per user
API_RATELIMIT_EVENTS = env.str("API_RATELIMIT_EVENTS", default="30/minute")  # SSE connects
API_RATELIMIT_FAIL_OPEN_COOLDOWN = env.float("API_RATELIMIT_FAIL_OPEN_COOLDOWN", default=5.0)
# Request bodies (form fields and JSON, not file uploads) above this are refused: a JSON 413
# under /api/ (sync/console/api_middleware.py). Django's own default, 2.5 MiB.
DATA_UPLOAD_MAX_MEMORY_SIZE = env.int("DATA_UPLOAD_MAX_MEMORY_SIZE", default=2_621_440)

# --------------------------------------------------------------------------- ingestion

# Spreadsheet sources (column mapping, target, key pattern): a TOML file, re-read per run.
SYNC_INGEST_SOURCES_FILE = env.str(
    "SYNC_INGEST_SOURCES_FILE", default=str(ROOT / "config" / "ingest_sources.toml")
)
# Defaults for what a source leaves out: rows per batch (one transaction, one cancel check),
# re-sync of gaps found by verification. NOTE: 1000, not 100: each batch is one commit (a WAL
# flush) and one round trip; at 100 they were most of a run's time (bench/ingest.py: new rows
# 0.34x the same-work floor at 100, 0.78x at 1000), and a batch of 1000 still takes well under
# a second (a cancel waits for it) and a few MB.
SYNC_INGEST_BATCH_SIZE = env.int("SYNC_INGEST_BATCH_SIZE", default=1000)
SYNC_INGEST_AUTO_RECOVERY = env.bool("SYNC_INGEST_AUTO_RECOVERY", default=True)
# A batch waits this long for a row lock before its rows count as retryable failures.
SYNC_INGEST_LOCK_TIMEOUT_MS = env.int("SYNC_INGEST_LOCK_TIMEOUT_MS", default=5000)
# Network faults of a source and lost database connections: retries within a run, with
# exponential backoff (base · 2^attempt seconds, jittered).
SYNC_INGEST_NETWORK_RETRIES = env.int("SYNC_INGEST_NETWORK_RETRIES", default=3)
SYNC_INGEST_NETWORK_BACKOFF = env.float("SYNC_INGEST_NETWORK_BACKOFF", default=0.5)
SYNC_INGEST_DB_RETRIES = env.int("SYNC_INGEST_DB_RETRIES", default=3)
SYNC_INGEST_DB_BACKOFF = env.float("SYNC_INGEST_DB_BACKOFF", default=0.2)
# Record retry queue (retry_queue): backoff between runs, attempts before permanently_failed.
SYNC_INGEST_RETRY_MAX_ATTEMPTS = env.int("SYNC_INGEST_RETRY_MAX_ATTEMPTS", default=5)
SYNC_INGEST_RETRY_BACKOFF_BASE = env.float("SYNC_INGEST_RETRY_BACKOFF_BASE", default=300.0)
SYNC_INGEST_RETRY_BACKOFF_CAP = env.float("SYNC_INGEST_RETRY_BACKOFF_CAP", default=6 * 3600.0)
SYNC_INGEST_RETRY_INTERVAL = env.float("SYNC_INGEST_RETRY_INTERVAL", default=300.0)
# Verification: rows compared field by field; gaps above this raise an alert.
SYNC_INGEST_SAMPLE_SIZE = env.int("SYNC_INGEST_SAMPLE_SIZE", default=20)
SYNC_INGEST_GAP_ALERT_THRESHOLD = env.int("SYNC_INGEST_GAP_ALERT_THRESHOLD", default=0)
# Google Sheets (the `sheets` extra): API endpoint, rows per request, timeout, and either a
# service-account JSON file or an API key (public sheets).
SYNC_INGEST_SHEETS_API_URL = env.str(
    "SYNC_INGEST_SHEETS_API_URL", default="https://sheets.googleapis.com/v4/spreadsheets"
)
SYNC_INGEST_SHEETS_CHUNK_ROWS = env.int("SYNC_INGEST_SHEETS_CHUNK_ROWS", default=5000)
SYNC_INGEST_SHEETS_TIMEOUT = env.float("SYNC_INGEST_SHEETS_TIMEOUT", default=30.0)
SYNC_INGEST_SHEETS_CREDENTIALS = env.str("SYNC_INGEST_SHEETS_CREDENTIALS", default="")
SYNC_INGEST_SHEETS_API_KEY = env.str("SYNC_INGEST_SHEETS_API_KEY", default="")
# XLSX: "auto" reads with python-calamine where it reads what openpyxl reads (openpyxl for the
# rest: formulas, error values, date and zero-padded formats; docs/ingestion.md), "openpyxl"
# always with openpyxl.
SYNC_INGEST_XLSX_READER = env.str("SYNC_INGEST_XLSX_READER", default="auto")
if SYNC_INGEST_XLSX_READER not in {"auto", "openpyxl"}:
    _msg = f"SYNC_INGEST_XLSX_READER={SYNC_INGEST_XLSX_READER!r}: use auto or openpyxl"
    raise ImproperlyConfigured(_msg)
# A run of at least this many rows reads, validates and encodes its batches in a second
# process (docs/ingestion.md, "The reader process"); 0 (the default): never. NOTE: off, as
# measured on two cores shared with PostgreSQL (bench/README.md): the other core is busy
# already, and a read-ahead thread in the run's process was faster (CSV and XLSX).
SYNC_INGEST_READER_PROCESS_ROWS = env.int("SYNC_INGEST_READER_PROCESS_ROWS", default=0)
if SYNC_INGEST_READER_PROCESS_ROWS < 0:
    _msg = (
        f"SYNC_INGEST_READER_PROCESS_ROWS={SYNC_INGEST_READER_PROCESS_ROWS}: a number of rows "
        "(0 or more; 0 reads in the run's own process)"
    )
    raise ImproperlyConfigured(_msg)
CELERY_BEAT_SCHEDULE["sync-retry-records"] = {
    "task": "sync.ingest.tasks.retry_records",
    "schedule": SYNC_INGEST_RETRY_INTERVAL,
}

# --------------------------------------------------------------------------- operations

# Alerts, thresholds and schedules live in sync_config (docs/operations.md); these are the
# process-level knobs. Alert mail: at most one per (type, source) per this many seconds.
SYNC_ALERT_MAIL_INTERVAL = env.float("SYNC_ALERT_MAIL_INTERVAL", default=3600.0)
# Retention: where expired log rows are archived (gzip JSON Lines), rows per file.
SYNC_ARCHIVE_DIR = env.str("SYNC_ARCHIVE_DIR", default=str(ROOT / ".run" / "archive"))
SYNC_ARCHIVE_BATCH = env.int("SYNC_ARCHIVE_BATCH", default=5000)
# Sheets uploaded in the console (docs/ingestion.md): the largest file taken, and the days
# its (encrypted) content is kept with its runs before the daily retention task empties it.
SYNC_UPLOAD_MAX_BYTES = env.int("SYNC_UPLOAD_MAX_BYTES", default=10 * 1024 * 1024)
SYNC_UPLOAD_RETENTION_DAYS = env.int("SYNC_UPLOAD_RETENTION_DAYS", default=30)
CELERY_BEAT_SCHEDULE["sync-archive-logs"] = {
    "task": "sync.tasks.archive_logs",
    "schedule": 24 * 3600.0,
}

# --------------------------------------------------------------------------- self-watching

# Heartbeats of workers, beat and web processes (sync_process_heartbeats), seconds apart; a
# worker silent for SYNC_WORKER_STALE_AFTER seconds is dead for the watchdog, which runs in
# every web process every SYNC_WATCHDOG_INTERVAL seconds (0: off) and in beat.
SYNC_HEARTBEAT_INTERVAL = env.float("SYNC_HEARTBEAT_INTERVAL", default=5.0)
SYNC_WORKER_STALE_AFTER = env.float("SYNC_WORKER_STALE_AFTER", default=30.0)
SYNC_WATCHDOG_INTERVAL = env.float("SYNC_WATCHDOG_INTERVAL", default=10.0)
# The consistency sampler (sync/ops/sampler.py, a beat task): every SYNC_SAMPLER_INTERVAL
# seconds it samples up to SYNC_SAMPLER_RECENT recent writes per synced model and
# SYNC_SAMPLER_RANDOM random rows, keeps samples SYNC_SAMPLER_RETENTION seconds, and alerts
# (consistency_slo) when the share consistent within 10 s over SYNC_SAMPLER_SLO_WINDOW seconds
# (with at least SYNC_SAMPLER_MIN_SAMPLES samples) is below SYNC_CONSISTENCY_SLO.
SYNC_SAMPLER_INTERVAL = env.float("SYNC_SAMPLER_INTERVAL", default=2.0)
SYNC_SAMPLER_RECENT = env.int("SYNC_SAMPLER_RECENT", default=20)
SYNC_SAMPLER_RANDOM = env.int("SYNC_SAMPLER_RANDOM", default=5)
SYNC_SAMPLER_RETENTION = env.float("SYNC_SAMPLER_RETENTION", default=3600.0)
SYNC_SAMPLER_SLO_WINDOW = env.float("SYNC_SAMPLER_SLO_WINDOW", default=300.0)
SYNC_SAMPLER_MIN_SAMPLES = env.int("SYNC_SAMPLER_MIN_SAMPLES", default=20)
SYNC_CONSISTENCY_SLO = env.float("SYNC_CONSISTENCY_SLO", default=0.9999)
CELERY_BEAT_SCHEDULE["sync-consistency-sampler"] = {
    "task": "sync.tasks.sample_consistency",
    "schedule": SYNC_SAMPLER_INTERVAL,
}
# OpenTelemetry traces (config/tracing.py): off unless this names an OTLP/HTTP endpoint.
TRACING_OTLP_ENDPOINT = env.str("TRACING_OTLP_ENDPOINT", default="")
TRACING_SERVICE_NAME = env.str("TRACING_SERVICE_NAME", default="syncops")
