"""Django settings for the fleet sync benchmark (benchmarks/fleet_sync.py).

Everything comes from the environment the benchmark sets for its processes:
``BENCH_DATABASE_URL`` (PostgreSQL, or ``sqlite:////path/to/file``), ``BENCH_REDIS_URL``
and ``BENCH_CACHE_PREFIX``
(the rate limit's shared cache), ``BENCH_SIM_URL`` (the HTTP simulator, data
center "sim") and ``BENCH_RATE_LIMITS`` (comma-separated, "" for none).
"""

import os
from urllib.parse import unquote, urlsplit

from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

SECRET_KEY = "benchmark-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

_url = os.environ.get("BENCH_DATABASE_URL", "postgres://postgres@127.0.0.1:5432/cronofy_bench")
_db = urlsplit(_url)
if _db.scheme == "sqlite":
    # A file (the sync's threads share it); no fsync per commit, as in the tests.
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.sqlite3",
            "NAME": _db.path,
            "OPTIONS": {"init_command": "PRAGMA synchronous=OFF"},
        }
    }
else:
    DATABASES = {
        "default": {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(_db.path.lstrip("/")) or "cronofy_bench",
            "USER": unquote(_db.username or "") or "postgres",
            "PASSWORD": unquote(_db.password or ""),
            "HOST": _db.hostname or "127.0.0.1",
            "PORT": str(_db.port or 5432),
        }
    }

CACHES = {
    "default": {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/14"),
        "KEY_PREFIX": os.environ.get("BENCH_CACHE_PREFIX", "cronofy-bench"),
    }
}

INSTALLED_APPS = [
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django_cronofy_conferencing",
]

_rates = os.environ.get("BENCH_RATE_LIMITS", "")
CRONOFY_CONFERENCING = {
    "CLIENT_ID": DEFAULT_CLIENT_ID,
    "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "ENCRYPTION_KEYS": ["GI0i4TOcO9BJJV725ma6TI48G5GMQ3oVAM4A9O6nfXA="],
    "DATA_CENTERS": {
        "sim": {
            "api_url": os.environ.get("BENCH_SIM_URL", "http://127.0.0.1:9"),
            "app_url": os.environ.get("BENCH_SIM_URL", "http://127.0.0.1:9"),
        }
    },
    "RATE_LIMITS": [r for r in _rates.split(",") if r],
    "RATE_LIMIT_CACHE": "default",
}

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "loggers": {"django_cronofy_conferencing": {"handlers": ["console"], "level": "ERROR"}},
}
