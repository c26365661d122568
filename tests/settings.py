"""Settings for the unit and consumer tests: in-process channel layer, eager Celery.

The end-to-end tests in ``tests/e2e`` do not use these: they start real processes with the
production settings module against real RabbitMQ and Redis. New dicts throughout, so the
production module's own values stay as they are (a test reads them).
"""

from procurement_system.settings import *  # noqa: F403

# SQLite in memory unless TEST_DATABASE_URL names another database (e.g. the local PostgreSQL).
_database = env.db("TEST_DATABASE_URL", default="sqlite://:memory:")  # noqa: F405
if _database["ENGINE"] == "django.db.backends.sqlite3":
    _database["OPTIONS"] = {"transaction_mode": "IMMEDIATE", "timeout": 20}
# Consumer tests run the ORM in worker threads; persistent connections would outlive the test DB.
_database["CONN_MAX_AGE"] = 0
DATABASES = {"default": _database}
CHANNEL_LAYERS = {"default": {"BACKEND": "channels.layers.InMemoryChannelLayer"}}
CACHES = {
    "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"},
    CELERY_RESULTS_CACHE_ALIAS: {  # noqa: F405
        "BACKEND": "django.core.cache.backends.locmem.LocMemCache",
        "LOCATION": "celery-results",
    },
}
CELERY_TASK_ALWAYS_EAGER = True
CELERY_TASK_EAGER_PROPAGATES = True
CELERY_TASK_STORE_EAGER_RESULT = True  # results of eager tasks land in the (local) backend
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]
# Static files come from the apps (finders); there is no collectstatic output in a test run.
STATIC_ROOT = None
WHITENOISE_USE_FINDERS = True
# Every transition stores its domain event, which the tests read; only the relay's own tests
# publish them, each to an exchange of its own on the real broker.
EVENTS_RELAY_ON_COMMIT = False
