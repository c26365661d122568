"""Settings for the procurement pickup platform.

Every value that differs between machines comes from the environment (12-factor, as in
cookiecutter-django); the defaults are the embedded development set-up that ``make run`` starts:
SQLite, RabbitMQ and Redis on localhost.
"""

from pathlib import Path

import environ
from django.core.exceptions import ImproperlyConfigured
from kombu import Exchange, Queue

BASE_DIR = Path(__file__).resolve().parent.parent

env = environ.Env()

# GENERAL
# https://docs.djangoproject.com/en/5.2/ref/settings/
# ------------------------------------------------------------------------------
DEBUG = env.bool("DJANGO_DEBUG", default=True)
SECRET_KEY = env(
    "DJANGO_SECRET_KEY",
    default="django-insecure-development-key-only-for-make-run-never-in-production",
)
ALLOWED_HOSTS = env.list("DJANGO_ALLOWED_HOSTS", default=["localhost", "127.0.0.1", "[::1]"])
TIME_ZONE = "UTC"
USE_TZ = True
LANGUAGE_CODE = "en-us"
USE_I18N = True
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# SECURITY
# https://docs.djangoproject.com/en/5.2/howto/deployment/checklist/
# ------------------------------------------------------------------------------
# With DJANGO_DEBUG=false the site is HTTPS-only by default and ``manage.py check --deploy`` is
# clean; ``make run`` (debug, plain HTTP) has every switch off. Secrets come from the
# environment only: the development key above is refused outside debug mode.
if not DEBUG and SECRET_KEY.startswith("django-insecure-"):
    raise ImproperlyConfigured(
        "DJANGO_DEBUG is false but DJANGO_SECRET_KEY is unset or the development key; set it to "
        "a long random string, e.g. python -c 'import secrets; print(secrets.token_urlsafe(50))'."
    )
SECURE_SSL_REDIRECT = env.bool("DJANGO_SECURE_SSL_REDIRECT", default=not DEBUG)
# Health and readiness checks (the container's, a load balancer's) probe over plain HTTP, and
# Prometheus scrapes /metrics the same way (see METRICS_TOKEN).
SECURE_REDIRECT_EXEMPT = [r"^health/$", r"^ready/$", r"^metrics$"]
SECURE_HSTS_SECONDS = env.int("DJANGO_SECURE_HSTS_SECONDS", default=0 if DEBUG else 31536000)
SECURE_HSTS_INCLUDE_SUBDOMAINS = env.bool(
    "DJANGO_SECURE_HSTS_INCLUDE_SUBDOMAINS", default=not DEBUG
)
SECURE_HSTS_PRELOAD = env.bool("DJANGO_SECURE_HSTS_PRELOAD", default=not DEBUG)
SESSION_COOKIE_SECURE = env.bool("DJANGO_SESSION_COOKIE_SECURE", default=not DEBUG)
CSRF_COOKIE_SECURE = env.bool("DJANGO_CSRF_COOKIE_SECURE", default=not DEBUG)
# Only behind a proxy that terminates TLS and sets X-Forwarded-Proto itself, replacing the
# client's: the app then takes that header's word that the request came over HTTPS.
BEHIND_TLS_PROXY = env.bool("DJANGO_BEHIND_TLS_PROXY", default=False)
SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https") if BEHIND_TLS_PROXY else None
# Other origins (scheme://host) whose pages may send unsafe requests with the session.
CSRF_TRUSTED_ORIGINS = env.list("DJANGO_CSRF_TRUSTED_ORIGINS", default=[])

# APPS
# ------------------------------------------------------------------------------
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "channels",
    "rest_framework",
    "rest_framework.authtoken",
    "django_filters",
    "drf_spectacular",
    "drf_spectacular_sidecar",
    "django_celery_results",
    "django_celery_beat",
    # request.htmx, and htmx itself served from the package's static files (no CDN)
    "django_htmx",
    "vendors",
    "pickups",
    "notifications",
]

MIDDLEWARE = [
    # First, so that it counts and times every response, redirects and refusals included.
    "procurement_system.metrics.http_metrics",
    # Each request's log lines carry its user and the pickup it touches (the correlation id).
    "procurement_system.observability.request_log_context",
    "django.middleware.security.SecurityMiddleware",
    # Static files (the admin's CSS and JS) straight from the app: uvicorn serves no files itself.
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django_htmx.middleware.HtmxMiddleware",
    "procurement_system.middleware.browser_timezone",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "procurement_system.urls"
ASGI_APPLICATION = "procurement_system.asgi.application"
# The WebSocket routes the ASGI application serves (the benchmark's stack adds one).
WEBSOCKET_URLPATTERNS = "procurement_system.routing.websocket_urlpatterns"
WSGI_APPLICATION = None

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        # Project-wide overrides of library templates (the API docs pages).
        "DIRS": [BASE_DIR / "templates"],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
                # FLOWER_URL, for the admin's links to Flower.
                "procurement_system.context_processors.operations",
            ],
        },
    },
]

STATIC_URL = "static/"
STATIC_ROOT = env("DJANGO_STATIC_ROOT", default=str(BASE_DIR / "var" / "static"))
# https://whitenoise.readthedocs.io/en/stable/django.html
# In development files come from the apps as they are; in production from collectstatic's output.
WHITENOISE_USE_FINDERS = DEBUG
STORAGES = {
    "default": {"BACKEND": "django.core.files.storage.FileSystemStorage"},
    "staticfiles": {
        "BACKEND": "whitenoise.storage.CompressedManifestStaticFilesStorage"
        if not DEBUG
        else "django.contrib.staticfiles.storage.StaticFilesStorage"
    },
}

# DATABASES
# https://docs.djangoproject.com/en/5.2/ref/databases/
# ------------------------------------------------------------------------------
# SQLite is the embedded default; PostgreSQL when DATABASE_URL says so.
DATABASES = {"default": env.db("DATABASE_URL", default=f"sqlite:///{BASE_DIR / 'db.sqlite3'}")}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Several processes (uvicorn, workers, beat) write to one file. WAL lets readers run beside
    # the writer, and IMMEDIATE transactions take the write lock at BEGIN, so two transactions
    # that read-then-write a pickup are serialized instead of failing with "database is locked"
    # halfway through. This is SQLite's equivalent of the row locks PostgreSQL gives us.
    DATABASES["default"].setdefault("OPTIONS", {}).update(
        {
            "transaction_mode": "IMMEDIATE",
            "timeout": 20,
            "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=NORMAL;",
        }
    )
else:
    DATABASES["default"]["CONN_MAX_AGE"] = env.int("CONN_MAX_AGE", default=60)

# CACHES
# https://docs.djangoproject.com/en/5.2/topics/cache/#database-caching
# ------------------------------------------------------------------------------
CELERY_RESULTS_CACHE_ALIAS = "celery_results"
CACHES = {
    # Shared by every process (API throttling counts); Redis is there for the channel layer.
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": env("CACHE_URL", default="redis://127.0.0.1:6379/1"),
        "KEY_PREFIX": env("CHANNEL_LAYER_PREFIX", default="asgi"),
    },
    CELERY_RESULTS_CACHE_ALIAS: {
        "BACKEND": "django.core.cache.backends.db.DatabaseCache",
        "LOCATION": "celery_results_cache",
        # Culling removes 1/CULL_FREQUENCY of the entries once MAX_ENTRIES is reached, whatever
        # their age. Size the table well above what a day of results holds so that results
        # leave by expiry (CELERY_RESULT_EXPIRES), not by early culling.
        "TIMEOUT": env.int("CELERY_RESULT_EXPIRES", default=86400),
        "OPTIONS": {"MAX_ENTRIES": env.int("CELERY_RESULTS_MAX_ENTRIES", default=1_000_000)},
    },
}

# AUTH
# ------------------------------------------------------------------------------
AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
]
LOGIN_URL = "/accounts/login/"
# Where signing in leads when no page asked for it: the home page, which sends vendor members to
# the portal, operators to the admin and customers to their pickups.
LOGIN_REDIRECT_URL = "/"
LOGOUT_REDIRECT_URL = "/accounts/login/"

# DJANGO REST FRAMEWORK
# https://www.django-rest-framework.org/api-guide/settings/
# ------------------------------------------------------------------------------
REST_FRAMEWORK = {
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.TokenAuthentication",
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    "DEFAULT_RENDERER_CLASSES": ["rest_framework.renderers.JSONRenderer"],
    "DEFAULT_PARSER_CLASSES": ["rest_framework.parsers.JSONParser"],
    "EXCEPTION_HANDLER": "procurement_system.rest.exception_handler",
    # Per-user (per-client address when anonymous) rates, counted in the shared default cache so
    # every web process sees the same count.
    "DEFAULT_THROTTLE_CLASSES": [
        "rest_framework.throttling.UserRateThrottle",
        "rest_framework.throttling.AnonRateThrottle",
    ],
    # Trust X-Forwarded-For only from as many proxies as there really are in front of the app;
    # otherwise a client could name a new address per request and never be throttled.
    "NUM_PROXIES": env.int("NUM_PROXIES", default=0),
    "DEFAULT_THROTTLE_RATES": {
        "user": env("API_THROTTLE_USER", default="600/min"),
        "anon": env("API_THROTTLE_ANON", default="60/min"),
    },
}
# https://drf-spectacular.readthedocs.io/en/latest/settings.html
SPECTACULAR_SETTINGS = {
    "TITLE": "Procurement pickup platform API",
    "DESCRIPTION": "Pickups of goods and scrap: customers request, vendors collect. The same "
    "rules and error codes as the WebSocket API.",
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
    # Swagger UI and ReDoc from the app's own files: no CDN. ReDoc's bundle is served without
    # the logo it would fetch from Redocly (procurement_system/api_docs.py), and Swagger UI does
    # not send the schema to swagger.io's validator for its badge.
    "SWAGGER_UI_DIST": "SIDECAR",
    "SWAGGER_UI_FAVICON_HREF": "SIDECAR",
    "SWAGGER_UI_SETTINGS": {"deepLinking": True, "validatorUrl": None},
    "REDOC_DIST": "/api/redoc",
}

# CHANNELS
# https://channels.readthedocs.io/en/stable/topics/channel_layers.html
# ------------------------------------------------------------------------------
REDIS_URL = env("REDIS_URL", default="redis://127.0.0.1:6379/0")
CHANNEL_LAYERS = {
    "default": {
        "BACKEND": "procurement_system.channel_layer.PooledRedisChannelLayer",
        "CONFIG": {
            "hosts": [
                {
                    "address": REDIS_URL,
                    # Bounded pool that waits for a free connection instead of raising
                    # MaxConnectionsError when a thousand sockets connect at once.
                    "max_connections": env.int("CHANNEL_LAYER_MAX_CONNECTIONS", default=200),
                    "timeout": env.float("CHANNEL_LAYER_POOL_TIMEOUT", default=10.0),
                    # No read timeout. redis-py 8 reads with a 5 s timeout by default, the same
                    # 5 s that channels-redis blocks in BZPOPMIN, which now and again kills a
                    # consumer; and any timeout wraps each command in asyncio.wait_for, which
                    # on Python 3.11 can swallow the cancel of a closing socket's receive loop,
                    # leaving it polling Redis for the life of the process. BZPOPMIN has its own
                    # timeout; keepalive and a health check notice a dead connection instead.
                    "socket_timeout": None,
                    "socket_keepalive": True,
                    "health_check_interval": 30,
                    "socket_connect_timeout": 5,
                }
            ],
            "prefix": env("CHANNEL_LAYER_PREFIX", default="asgi"),
            # Per web process, not per socket: channels-redis keeps one Redis queue for all the
            # sockets of a process, so it must hold a burst to every one of them (an event to
            # 10,000 sockets, several times over) or the excess is dropped.
            "capacity": env.int("CHANNEL_LAYER_CAPACITY", default=50_000),
            "expiry": 60,
        },
    }
}
# How long a worker waits for the channel layer to take one notification push before it logs
# the push as failed and moves on (the stored row is the truth; sockets catch up from it).
NOTIFICATION_PUSH_TIMEOUT_SECONDS = env.float("NOTIFICATION_PUSH_TIMEOUT_SECONDS", default=5.0)

# Threads a web process runs its sockets' database work in (procurement_system.database); each
# holds a database connection, so web processes x threads must stay under the server's
# max_connections.
WEB_DATABASE_THREADS = env.int("WEB_DATABASE_THREADS", default=8)
# The web process's garbage collector (procurement_system.asgi): thresholds (empty: CPython's
# own, 700,10,10), and whether the objects made at startup are left out of collections. With
# thousands of sockets a process holds millions of objects, and with CPython's thresholds a full
# collection stalled every socket for one to three seconds, every few seconds, at 10,000 sockets;
# the benchmark runs with 50000,20,100 and the freeze. They are not the default: collections that
# rare left the dropped database connections of request threads open for longer, and the
# PostgreSQL test run ran out of connections ("too many clients").
WEB_GC_THRESHOLDS = tuple(env.list("WEB_GC_THRESHOLDS", cast=int, default=[]))
WEB_GC_FREEZE = env.bool("WEB_GC_FREEZE", default=False)

# WEBSOCKET LIMITS
# ------------------------------------------------------------------------------
# Largest WebSocket frame a consumer accepts; larger frames close the socket with 1009.
WEBSOCKET_MAX_FRAME_BYTES = 64 * 1024
# Frames one socket may send: WEBSOCKET_RATE a second sustained, WEBSOCKET_BURST at once (a
# token bucket; 0 turns it off). A frame over it answers ``rate_limited``; more than
# WEBSOCKET_MAX_REFUSED refused within WEBSOCKET_REFUSED_WINDOW_SECONDS closes the socket (4429).
WEBSOCKET_RATE = env.float("WEBSOCKET_RATE", default=20.0)
WEBSOCKET_BURST = env.int("WEBSOCKET_BURST", default=40)
WEBSOCKET_MAX_REFUSED = env.int("WEBSOCKET_MAX_REFUSED", default=20)
WEBSOCKET_REFUSED_WINDOW_SECONDS = env.float("WEBSOCKET_REFUSED_WINDOW_SECONDS", default=10.0)
# Sockets one user may hold open at once, over every web process (counted in the channel
# layer's Redis; 0 turns it off); one more closes with 4409. An open socket stops counting this
# many seconds after its process stopped refreshing it (a crash).
WEBSOCKET_MAX_PER_USER = env.int("WEBSOCKET_MAX_PER_USER", default=20)
WEBSOCKET_SLOT_TTL_SECONDS = env.int("WEBSOCKET_SLOT_TTL_SECONDS", default=120)

# CELERY
# https://docs.celeryq.dev/en/stable/userguide/configuration.html
# ------------------------------------------------------------------------------
CELERY_BROKER_URL = env("CELERY_BROKER_URL", default="amqp://guest:guest@127.0.0.1:5672//")
# Results go to a DatabaseCache table (created by ``manage.py createcachetable``).
CELERY_RESULT_BACKEND = "django-cache"
CELERY_CACHE_BACKEND = CELERY_RESULTS_CACHE_ALIAS
CELERY_RESULT_EXPIRES = env.int("CELERY_RESULT_EXPIRES", default=86400)
CELERY_RESULT_EXTENDED = True
# JSON only: a pickle message from the network could run code in the worker.
CELERY_ACCEPT_CONTENT = ["json"]
CELERY_TASK_SERIALIZER = "json"
CELERY_RESULT_SERIALIZER = "json"
CELERY_TIMEZONE = TIME_ZONE
CELERY_TASK_TRACK_STARTED = True
# Acknowledge after the task ran, and requeue it when the worker process dies, so a crash
# mid-task redelivers the message; tasks are written to be idempotent for that reason.
CELERY_TASK_ACKS_LATE = True
CELERY_TASK_REJECT_ON_WORKER_LOST = True
CELERY_WORKER_PREFETCH_MULTIPLIER = env.int("CELERY_WORKER_PREFETCH_MULTIPLIER", default=4)
CELERY_BROKER_CONNECTION_RETRY_ON_STARTUP = True
# Publisher confirms: a publish returns only once RabbitMQ has the message, so a message cannot
# vanish in a socket buffer when the broker goes away just after.
CELERY_BROKER_TRANSPORT_OPTIONS = {"confirm_publish": True}
# Celery's Django fixup closes the database connections around every task unless this is set;
# procurement_system.celery recycles them by CONN_MAX_AGE instead, as Django does per request.
# The fixup still closes them every this many tasks.
CELERY_DB_REUSE_MAX = 1000
# When the broker is down, a publish gives up within about CONNECTION_TIMEOUT x (1 + retries)
# seconds instead of holding a request: the change is committed and requeue_stalled_task sends
# the work later (see PlatformTask).
CELERY_BROKER_CONNECTION_TIMEOUT = env.float("CELERY_BROKER_CONNECTION_TIMEOUT", default=2.0)
CELERY_TASK_PUBLISH_RETRY_POLICY = {
    "max_retries": 1,
    "interval_start": 0,
    "interval_step": 0.2,
    "interval_max": 0.5,
}
CELERY_WORKER_SEND_TASK_EVENTS = True
CELERY_TASK_SEND_SENT_EVENT = True
CELERY_BEAT_SCHEDULER = "django_celery_beat.schedulers:DatabaseScheduler"

# Queue names may carry a prefix so that several stacks (a test run beside ``make run``)
# share one RabbitMQ without taking each other's tasks.
CELERY_QUEUE_PREFIX = env("CELERY_QUEUE_PREFIX", default="")
QUEUE_ASSIGNMENTS = f"{CELERY_QUEUE_PREFIX}assignments"
QUEUE_NOTIFICATIONS = f"{CELERY_QUEUE_PREFIX}notifications"
QUEUE_MAINTENANCE = f"{CELERY_QUEUE_PREFIX}maintenance"
QUEUE_DEAD_LETTER = f"{CELERY_QUEUE_PREFIX}dead_letter"
# A topic exchange (each queue bound by its own name): Celery's native delayed delivery, which
# quorum queues need for countdowns and retries with backoff, does not work with direct ones.
TASKS_EXCHANGE = f"{CELERY_QUEUE_PREFIX}celery_tasks"
_tasks_exchange = Exchange(TASKS_EXCHANGE, type="topic", durable=True)
DEAD_LETTER_EXCHANGE = Exchange(QUEUE_DEAD_LETTER, type="direct", durable=True)
# A message delivered this many times without being acknowledged (its worker died each time: a
# poison message) is moved to the dead-letter queue instead of looping.
TASK_DELIVERY_LIMIT = env.int("TASK_DELIVERY_LIMIT", default=5)
# Quorum queues: replicated on a RabbitMQ cluster, and they count deliveries, which is what
# makes the delivery limit possible. https://www.rabbitmq.com/docs/quorum-queues
CELERY_TASK_QUEUES = [
    Queue(
        name,
        _tasks_exchange,
        routing_key=name,
        durable=True,
        queue_arguments={
            "x-queue-type": "quorum",
            "x-delivery-limit": TASK_DELIVERY_LIMIT,
            "x-dead-letter-exchange": DEAD_LETTER_EXCHANGE.name,
            "x-dead-letter-routing-key": QUEUE_DEAD_LETTER,
        },
    )
    for name in (QUEUE_ASSIGNMENTS, QUEUE_NOTIFICATIONS, QUEUE_MAINTENANCE)
]
# Where dead messages wait for an operator; no worker consumes it. Declared by every worker at
# start (procurement_system.celery), so nothing dead-lettered is dropped for want of a queue.
DEAD_LETTER_QUEUE = Queue(
    QUEUE_DEAD_LETTER,
    DEAD_LETTER_EXCHANGE,
    routing_key=QUEUE_DEAD_LETTER,
    durable=True,
    queue_arguments={"x-queue-type": "quorum"},
)
CELERY_TASK_DEFAULT_QUEUE = QUEUE_MAINTENANCE
CELERY_TASK_DEFAULT_EXCHANGE = _tasks_exchange.name
CELERY_TASK_DEFAULT_ROUTING_KEY = QUEUE_MAINTENANCE
# Everything that moves a pickup towards a vendor (or out of the queue of work) runs on
# ``assignments``, which has workers of its own; delivery work on ``notifications``; the rest
# (cleanup, digests) on ``maintenance``, so no backlog there can delay an offer.
_QUEUE_OF_TASK = {
    "pickups.tasks.assign_vendor_task": QUEUE_ASSIGNMENTS,
    "pickups.tasks.expire_offers_task": QUEUE_ASSIGNMENTS,
    "pickups.tasks.retry_unassigned_task": QUEUE_ASSIGNMENTS,
    "pickups.tasks.retry_unassigned_for_vendor_task": QUEUE_ASSIGNMENTS,
    "pickups.tasks.expire_pickups_task": QUEUE_ASSIGNMENTS,
    "pickups.tasks.requeue_stalled_task": QUEUE_ASSIGNMENTS,
    "notifications.tasks.push_notifications_task": QUEUE_NOTIFICATIONS,
    "notifications.tasks.send_notification_task": QUEUE_NOTIFICATIONS,
    "pickups.tasks.issue_receipt_task": QUEUE_NOTIFICATIONS,
    "pickups.tasks.send_vendor_digests_task": QUEUE_MAINTENANCE,
    "pickups.tasks.purge_location_points_task": QUEUE_MAINTENANCE,
    "notifications.tasks.purge_read_notifications_task": QUEUE_MAINTENANCE,
    "procurement_system.tasks.purge_task_results_task": QUEUE_MAINTENANCE,
    # Domain events are delivery work too: relayed beside the notifications, never behind a
    # long cleanup; their purge is maintenance.
    "pickups.tasks.relay_events_task": QUEUE_NOTIFICATIONS,
    "pickups.tasks.purge_published_events_task": QUEUE_MAINTENANCE,
}
CELERY_TASK_ROUTES = {
    name: {"queue": queue, "routing_key": queue} for name, queue in _QUEUE_OF_TASK.items()
}
# Flower, the Celery monitor, as the operators' browsers reach it: the admin links each pickup's
# assignment task there ({FLOWER_URL}/task/<id>). Empty: no links.
FLOWER_URL = env("FLOWER_URL", default="http://127.0.0.1:5555")

# EMAIL
# https://docs.djangoproject.com/en/5.2/topics/email/
# ------------------------------------------------------------------------------
# Email is on when EMAIL_URL names a server (smtp://user:pass@host:587, or consolemail:// to
# print them); without it the daily digests are notifications only.
EMAIL_ENABLED = "EMAIL_URL" in env
EMAIL_CONFIG = env.email_url("EMAIL_URL", default="dummymail://")
vars().update(EMAIL_CONFIG)  # EMAIL_BACKEND, EMAIL_HOST, ... as django-environ documents
DEFAULT_FROM_EMAIL = env("DEFAULT_FROM_EMAIL", default="Pickups <noreply@localhost>")

# DOMAIN
# ------------------------------------------------------------------------------
PICKUP_MAX_ITEMS = 20
PICKUP_MAX_WINDOW_DAYS = 30
PICKUP_LIST_LIMIT = 100
NOTIFICATION_REPLAY_BATCH = 200
# The currency of vendors' prices and of receipts (ISO 4217).
PICKUP_CURRENCY = env("PICKUP_CURRENCY", default="EUR")

# LIFECYCLE (the periodic tasks; their schedules are rows that ``setup_periodic_tasks`` creates
# from these defaults and operators then change in the admin)
# ------------------------------------------------------------------------------
# How long a vendor has to accept an offer before it moves on to the next vendor.
OFFER_TIMEOUT_SECONDS = env.int("OFFER_TIMEOUT_SECONDS", default=120)
# Unassigned pickups are retried after BASE, 2*BASE, 4*BASE, ... seconds, at most MAX apart.
UNASSIGNED_RETRY_BASE_SECONDS = env.int("UNASSIGNED_RETRY_BASE_SECONDS", default=30)
UNASSIGNED_RETRY_MAX_SECONDS = env.int("UNASSIGNED_RETRY_MAX_SECONDS", default=900)
# The most pickups one run of a sweep (offers, retries, expiry) changes; the rest wait for the
# next run, so one run never holds a worker for long.
LIFECYCLE_BATCH_SIZE = env.int("LIFECYCLE_BATCH_SIZE", default=500)
# Default schedules of the periodic tasks.
SCHEDULE_OFFER_SWEEP_SECONDS = env.int("SCHEDULE_OFFER_SWEEP_SECONDS", default=5)
SCHEDULE_RETRY_SWEEP_SECONDS = env.int("SCHEDULE_RETRY_SWEEP_SECONDS", default=10)
SCHEDULE_EXPIRY_SWEEP_SECONDS = env.int("SCHEDULE_EXPIRY_SWEEP_SECONDS", default=60)
SCHEDULE_STALL_SWEEP_SECONDS = env.int("SCHEDULE_STALL_SWEEP_SECONDS", default=15)
# Work whose message should have run by now: a pickup pending this long, or completed this long
# without a receipt, has its task published again (the tasks are idempotent).
STALLED_AFTER_SECONDS = env.int("STALLED_AFTER_SECONDS", default=30)
SCHEDULE_CLEANUP_MINUTES = env.int("SCHEDULE_CLEANUP_MINUTES", default=60)
SCHEDULE_DIGEST_HOUR = env.int("SCHEDULE_DIGEST_HOUR", default=6)  # daily, UTC
# Cleanup: what is old, and how much one statement deletes.
NOTIFICATION_RETENTION_DAYS = env.int("NOTIFICATION_RETENTION_DAYS", default=30)  # read ones
LOCATION_RETENTION_HOURS = env.int("LOCATION_RETENTION_HOURS", default=48)
CLEANUP_BATCH_SIZE = env.int("CLEANUP_BATCH_SIZE", default=1000)
CLEANUP_MAX_BATCHES = env.int("CLEANUP_MAX_BATCHES", default=100)

# LIVE TRACKING
# ------------------------------------------------------------------------------
# A vendor's position on one pickup is taken at most once per this many seconds (whole seconds:
# the shared cache's expiry has one-second resolution).
LOCATION_MIN_INTERVAL_SECONDS = env.int("LOCATION_MIN_INTERVAL_SECONDS", default=1)
# Pickups one socket may follow at once with ``subscribe``.
TRACKING_MAX_SUBSCRIPTIONS = 20

# DOMAIN EVENTS (every pickup transition, published for other systems: docs/events.rst)
# ------------------------------------------------------------------------------
# The durable topic exchange the events go to, with routing keys ``pickup.<event>``; it carries
# the queue prefix, like the task exchange, so stacks sharing one RabbitMQ stay apart.
EVENTS_EXCHANGE = env("EVENTS_EXCHANGE", default=f"{CELERY_QUEUE_PREFIX}procurement.events")
EVENTS_BROKER_URL = env("EVENTS_BROKER_URL", default=CELERY_BROKER_URL)
# Connecting gives up after this many seconds, and so does a publish the broker holds back (a
# resource alarm): the event waits for the next run.
EVENTS_CONNECTION_TIMEOUT = env.float("EVENTS_CONNECTION_TIMEOUT", default=2.0)
# Relay right after each transition commits; otherwise only the periodic run publishes them.
EVENTS_RELAY_ON_COMMIT = env.bool("EVENTS_RELAY_ON_COMMIT", default=True)
EVENTS_RELAY_BATCH_SIZE = env.int("EVENTS_RELAY_BATCH_SIZE", default=500)
SCHEDULE_EVENTS_RELAY_SECONDS = env.int("SCHEDULE_EVENTS_RELAY_SECONDS", default=5)
# Published events are deleted this many days later; unpublished ones are kept.
EVENTS_RETENTION_DAYS = env.int("EVENTS_RETENTION_DAYS", default=7)

# LOGGING
# https://docs.djangoproject.com/en/5.2/topics/logging/
# ------------------------------------------------------------------------------
# One handler for every process (web, workers, beat): JSON lines in production, readable lines in
# development, each with the log context (correlation id, pickup, user, task) of
# procurement_system/observability.py.
LOG_LEVEL = env("LOG_LEVEL", default="INFO")
LOG_FORMAT = env("LOG_FORMAT", default="text" if DEBUG else "json")
if LOG_FORMAT not in ("json", "text"):
    raise ImproperlyConfigured(f"LOG_FORMAT must be json or text, not {LOG_FORMAT!r}.")
# dictConfig, and Python's warnings logged like the rest.
LOGGING_CONFIG = "procurement_system.observability.configure_logging"
LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"context": {"()": "procurement_system.observability.LogContextFilter"}},
    "formatters": {
        "json": {"()": "procurement_system.observability.JsonFormatter"},
        "text": {"()": "procurement_system.observability.TextFormatter"},
    },
    "handlers": {
        "console": {
            "class": "logging.StreamHandler",
            "formatter": LOG_FORMAT,
            "filters": ["context"],
        }
    },
    "root": {"handlers": ["console"], "level": LOG_LEVEL},
    "loggers": {
        # pika narrates every connection at INFO.
        "pika": {"level": "WARNING"},
        # uvicorn brings handlers of its own; its lines go through ours instead, in our format.
        "uvicorn": {"handlers": ["console"], "propagate": False},
        "uvicorn.access": {"handlers": ["console"], "propagate": False},
    },
}

# MONITORING (/health/, /ready/ and /metrics: docs/monitoring.rst)
# ------------------------------------------------------------------------------
# Each readiness check gives up after this many seconds; /ready/ answers within about one more.
READY_CHECK_TIMEOUT_SECONDS = env.float("READY_CHECK_TIMEOUT_SECONDS", default=1.0)
# /metrics wants "Authorization: Bearer <token>" when set; unset, it answers only requests from
# this machine (the loopback address).
METRICS_TOKEN = env("METRICS_TOKEN", default="")
