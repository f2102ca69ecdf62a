"""Settings for the test suite: SQLite by default, PostgreSQL when DATABASE_URL is set."""

import importlib.util
import os
from urllib.parse import unquote, urlsplit

from django_cronofy_conferencing.testing import (
    DEFAULT_CLIENT_ID,
    DEFAULT_CLIENT_SECRET,
    simulated_applications,
)

SECRET_KEY = "tests-not-secret"
DEBUG = False
USE_TZ = True
TIME_ZONE = "UTC"
ALLOWED_HOSTS = ["*"]
ROOT_URLCONF = "tests.urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"


# One test database per test run, so concurrent runs never clobber each other;
# subprocesses started by a test inherit the suffix and find the same database.
os.environ.setdefault("TEST_DB_SUFFIX", f"_{os.getpid()}")


def database_from_url(url: str) -> dict:
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")) or "test",
            "USER": unquote(parts.username or "") or "postgres",
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "127.0.0.1",
            "PORT": str(parts.port or 5432),
            "TEST": {"NAME": "test_cronofy_conferencing" + os.environ.get("TEST_DB_SUFFIX", "")},
        }
    if parts.scheme == "sqlite":
        name = parts.path or ":memory:"
        database = {"ENGINE": "django.db.backends.sqlite3", "NAME": name}
        if name != ":memory:":
            # A file, also for the test database: the threaded sync tests need
            # SQLite's real file locking (tests/sync/test_concurrency.py).
            database["TEST"] = {"NAME": name}
            # No fsync per commit (the locking is unchanged): fast on any disk.
            database["OPTIONS"] = {"init_command": "PRAGMA synchronous=OFF"}
        return database
    raise ValueError(f"Unsupported DATABASE_URL scheme {parts.scheme!r}")


DATABASES = {
    "default": database_from_url(os.environ["DATABASE_URL"])
    if os.environ.get("DATABASE_URL")
    else {"ENGINE": "django.db.backends.sqlite3", "NAME": ":memory:"}
}

CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
# Processes started by the fleet sync integration tests (cronofy_sync commands, a
# Celery worker) share the rate limit through Redis: CRONOFY_CACHE_URL, with a
# key prefix per test (CRONOFY_CACHE_PREFIX).
if os.environ.get("CRONOFY_CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["CRONOFY_CACHE_URL"],
        "KEY_PREFIX": os.environ.get("CRONOFY_CACHE_PREFIX", ""),
    }

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    "django_cronofy_conferencing",
]

# Django's tasks framework with the ORM-based backend (django-tasks-db, the test
# extra): installed so the test database has its table; the db_worker processes of
# tests/integration/test_django_tasks_worker.py get CRONOFY_TASKS_BACKEND=db.
if importlib.util.find_spec("django_tasks_db"):
    if importlib.util.find_spec("django.tasks") is None:  # Django 5.2: the backport
        INSTALLED_APPS.append("django_tasks")
    INSTALLED_APPS.append("django_tasks_db")
if os.environ.get("CRONOFY_TASKS_BACKEND") == "db":
    TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}

MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]

TEMPLATES = [
    {
        "BACKEND": "django.template.backends.django.DjangoTemplates",
        "DIRS": [],
        "APP_DIRS": True,
        "OPTIONS": {
            "context_processors": [
                "django.template.context_processors.request",
                "django.contrib.auth.context_processors.auth",
                "django.contrib.messages.context_processors.messages",
            ]
        },
    }
]

REST_FRAMEWORK = {
    # Only for the schema test: the app itself never requires drf-spectacular.
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-cronofy-conferencing (tests)",
    "VERSION": "0",
}

# Fast hashing: the suite creates many users (the default PBKDF2 takes ~0.3 s a user).
PASSWORD_HASHERS = ["django.contrib.auth.hashers.MD5PasswordHasher"]

STATIC_URL = "/static/"
LOGIN_URL = "/accounts/login/"

CRONOFY_CONFERENCING = {
    "CLIENT_ID": DEFAULT_CLIENT_ID,
    "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    # One application per data center, as with the real Cronofy (the simulator's own).
    "APPLICATIONS": simulated_applications(["uk", "de", "au", "ca", "sg"]),
    "ENCRYPTION_KEYS": [
        "GI0i4TOcO9BJJV725ma6TI48G5GMQ3oVAM4A9O6nfXA=",
        "krKe7-bffkEKRJBlJYr8kvWBOQpLKq2H0BkIkW8rkiU=",
    ],
    "RATE_LIMITS": [],
    "RETRY_BACKOFF": 0.5,
}
# The same processes reach the HTTP simulator (testing.HTTPServerAdapter) of the
# test that started them as the data center "sim", under the test's rate limits.
if os.environ.get("CRONOFY_SIM_API_URL"):
    CRONOFY_CONFERENCING["APPLICATIONS"].update(simulated_applications(["sim"]))
    CRONOFY_CONFERENCING["DATA_CENTERS"] = {
        "sim": {
            "api_url": os.environ["CRONOFY_SIM_API_URL"],
            "app_url": os.environ.get("CRONOFY_SIM_APP_URL", os.environ["CRONOFY_SIM_API_URL"]),
        }
    }
if os.environ.get("CRONOFY_TASK_QUEUE"):
    CRONOFY_CONFERENCING["TASK_QUEUE"] = os.environ["CRONOFY_TASK_QUEUE"]
if os.environ.get("CRONOFY_RATE_LIMITS"):
    CRONOFY_CONFERENCING["RATE_LIMITS"] = os.environ["CRONOFY_RATE_LIMITS"].split(",")

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "loggers": {"django_cronofy_conferencing": {"level": "DEBUG"}},
}
