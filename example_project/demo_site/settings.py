"""Settings of the example host project.

Everything comes from environment variables, with defaults that run the demo
on one machine with no credentials and no network:

=========================  =================================================================
``DJANGO_SECRET_KEY``      required when ``DJANGO_DEBUG=0``
``DJANGO_DEBUG``           ``1`` (default) or ``0``
``DJANGO_ALLOWED_HOSTS``   comma-separated; default ``127.0.0.1,localhost``
``DATABASE_URL``           ``postgres://user:password@host:5432/name`` or ``sqlite:///path``;
                           default: ``example_project/db.sqlite3``
``CACHE_URL``              ``redis://host:6379/1``: the cache shared by web and workers (the
                           app-wide Cronofy rate limit lives there); default: local memory
``CELERY_BROKER_URL``      e.g. ``redis://127.0.0.1:6379/0``: syncs are queued on Celery
``CRONOFY_CLIENT_ID``      with ``CRONOFY_CLIENT_SECRET``: talk to the real Cronofy;
``CRONOFY_CLIENT_SECRET``  without them: the simulated Cronofy (``manage.py demo``)
``CRONOFY_DATA_CENTER``    real Cronofy only: the default data center (``us``, ``uk``, ``de``,
                           ``au``, ``ca``, ``sg``); default ``us``
``CRONOFY_ENCRYPTION_KEYS``  comma-separated Fernet keys; the first encrypts
``CRONOFY_PUSH_CALLBACK_URL``  real Cronofy only: public https URL of
                           ``/cronofy/notifications/``; unset: no push notifications
``CRONOFY_SIMULATOR_URL``  simulator only: where it listens (default
                           ``http://127.0.0.1:8001``; ``manage.py demo`` sets it itself)
``SITE_URL``               simulator only: this site's origin, for the push callback
                           (default ``http://127.0.0.1:8000``)
``EMAIL_BACKEND``          where relink reminders go (``manage.py cronofy_remind``); default:
                           the console
``DEFAULT_FROM_EMAIL``     their sender; default ``meetings@example.com``
=========================  =================================================================
"""

from __future__ import annotations

import os
from importlib.util import find_spec
from pathlib import Path
from urllib.parse import unquote, urlsplit

BASE_DIR = Path(__file__).resolve().parent.parent


def env_flag(name: str, default: bool) -> bool:
    value = os.environ.get(name)
    if value is None or value == "":
        return default
    return value.strip().lower() in ("1", "true", "yes", "on")


def env_list(name: str, default: list[str]) -> list[str]:
    value = os.environ.get(name, "")
    items = [item.strip() for item in value.split(",") if item.strip()]
    return items or default


DEBUG = env_flag("DJANGO_DEBUG", True)
SECRET_KEY = os.environ.get("DJANGO_SECRET_KEY", "")
if not SECRET_KEY:
    if not DEBUG:
        raise RuntimeError("Set DJANGO_SECRET_KEY when DJANGO_DEBUG=0.")
    SECRET_KEY = "django-insecure-example-project-only-for-local-development"
ALLOWED_HOSTS = env_list("DJANGO_ALLOWED_HOSTS", ["127.0.0.1", "localhost", "[::1]"])

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "drf_spectacular",
    # Before the app: its django_cronofy_conferencing/base.html puts the app's
    # pages (errors, "add a conferencing provider") in this site's layout.
    "demo_site",
    "django_cronofy_conferencing",
]
# Swagger UI's files served locally (no CDN): the "demo" extra installs them.
HAS_SIDECAR = find_spec("drf_spectacular_sidecar") is not None
if HAS_SIDECAR:
    INSTALLED_APPS.append("drf_spectacular_sidecar")

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "demo_site.urls"
WSGI_APPLICATION = "demo_site.wsgi.application"

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
                "demo_site.views.site_context",
            ]
        },
    }
]


def database_from_url(url: str) -> dict:
    """``postgres://user:password@host:port/name`` or ``sqlite:///relative-or-/absolute``."""
    parts = urlsplit(url)
    if parts.scheme in ("postgres", "postgresql"):
        return {
            "ENGINE": "django.db.backends.postgresql",
            "NAME": unquote(parts.path.lstrip("/")),
            "USER": unquote(parts.username or ""),
            "PASSWORD": unquote(parts.password or ""),
            "HOST": parts.hostname or "",
            "PORT": str(parts.port or ""),
            # No persistent connections: ``runserver`` (and any server with a thread
            # per request) would keep one open per thread that ever ran, and a burst
            # of requests exhausts PostgreSQL's max_connections (500s for everyone).
            # Raise it (DATABASE_CONN_MAX_AGE) only behind a server with a bounded
            # number of threads, e.g. gunicorn with fixed --workers/--threads.
            "CONN_MAX_AGE": int(os.environ.get("DATABASE_CONN_MAX_AGE", "0")),
            "CONN_HEALTH_CHECKS": True,
        }
    if parts.scheme == "sqlite":
        # sqlite:///relative/path or sqlite:////absolute/path (as dj-database-url reads them)
        name = unquote(parts.path)[1:]
        return {"ENGINE": "django.db.backends.sqlite3", "NAME": name or BASE_DIR / "db.sqlite3"}
    raise ValueError(f"DATABASE_URL: unsupported scheme {parts.scheme!r} (postgres or sqlite)")


DATABASES = {
    "default": (
        database_from_url(os.environ["DATABASE_URL"])
        if os.environ.get("DATABASE_URL")
        else {"ENGINE": "django.db.backends.sqlite3", "NAME": BASE_DIR / "db.sqlite3"}
    )
}
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

# One cache for every process: the app-wide Cronofy rate limit
# (CRONOFY_CONFERENCING["RATE_LIMIT_CACHE"]) is shared through it.
CACHES = {"default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache"}}
if os.environ.get("CACHE_URL"):
    CACHES["default"] = {
        "BACKEND": "django.core.cache.backends.redis.RedisCache",
        "LOCATION": os.environ["CACHE_URL"],
    }

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator"},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
]
LOGIN_URL = "login"
LOGIN_REDIRECT_URL = "home"
LOGOUT_REDIRECT_URL = "login"

LANGUAGE_CODE = "en-us"
TIME_ZONE = "UTC"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = BASE_DIR / "staticfiles"

if not DEBUG:
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = env_flag("DJANGO_SECURE_COOKIES", True)

# Relink reminders (`manage.py cronofy_remind`) print to the console unless told otherwise.
EMAIL_BACKEND = os.environ.get("EMAIL_BACKEND", "django.core.mail.backends.console.EmailBackend")
DEFAULT_FROM_EMAIL = os.environ.get("DEFAULT_FROM_EMAIL", "meetings@example.com")

# -- Django REST framework and the OpenAPI schema --------------------------------------

REST_FRAMEWORK = {
    # The session only (the end-user page, the browsable API, Swagger UI): DRF's
    # SessionAuthentication enforces CSRF, while HTTP Basic would let any site's
    # form POST to the API with credentials a browser remembered. A host whose
    # scripts need another scheme should add a token scheme, not Basic.
    "DEFAULT_AUTHENTICATION_CLASSES": [
        "rest_framework.authentication.SessionAuthentication",
    ],
    "DEFAULT_PERMISSION_CLASSES": ["rest_framework.permissions.IsAuthenticated"],
    "DEFAULT_PAGINATION_CLASS": "rest_framework.pagination.PageNumberPagination",
    "PAGE_SIZE": 50,
    "DEFAULT_SCHEMA_CLASS": "drf_spectacular.openapi.AutoSchema",
    # Every API action and browser view that calls Cronofy spends from one
    # per-user budget (scope cronofy_sync).
    "DEFAULT_THROTTLE_RATES": {"cronofy_sync": "12/m"},
}

SPECTACULAR_SETTINGS = {
    "TITLE": "django-cronofy-conferencing example API",
    "DESCRIPTION": (
        "The logged-in user's linked Cronofy accounts and conferencing profiles "
        "(django_cronofy_conferencing.api)."
    ),
    "VERSION": "1.0.0",
    "SERVE_INCLUDE_SCHEMA": False,
    "COMPONENT_SPLIT_REQUEST": True,
}
if HAS_SIDECAR:
    SPECTACULAR_SETTINGS.update(
        SWAGGER_UI_DIST="SIDECAR", SWAGGER_UI_FAVICON_HREF="SIDECAR", REDOC_DIST="SIDECAR"
    )

# -- Background syncs (optional): Celery, or Django's tasks framework --------------------
#
# CELERY_BROKER_URL=redis://... : TASK_QUEUE "celery" (`celery -A demo_site worker`).
# DEMO_TASK_QUEUE=django        : TASK_QUEUE "django" on django-tasks-db (when installed:
#                                 `manage.py db_worker`); the ImmediateBackend otherwise.

CELERY_BROKER_URL = os.environ.get("CELERY_BROKER_URL", "")
TASK_QUEUE = os.environ.get("DEMO_TASK_QUEUE") or ("celery" if CELERY_BROKER_URL else None)
if TASK_QUEUE == "django":
    from importlib.util import find_spec

    if find_spec("django.tasks") is None:  # Django 5.2: the django-tasks backport
        INSTALLED_APPS.append("django_tasks")
    if find_spec("django_tasks_db"):
        INSTALLED_APPS.append("django_tasks_db")
        TASKS = {"default": {"BACKEND": "django_tasks_db.DatabaseBackend"}}
CELERY_TASK_ACKS_LATE = True
CELERY_WORKER_PREFETCH_MULTIPLIER = 1
CELERY_BEAT_SCHEDULE = {
    # Queue a sync of every account that is due (older than SYNC_STALE_AFTER).
    "cronofy-sync-due-accounts": {
        "task": "django_cronofy_conferencing.tasks.sync_due_accounts_task",
        "schedule": 300.0,
    },
}

# -- django-cronofy-conferencing ------------------------------------------------------------

# Real Cronofy when the application's credentials are given, the simulator otherwise.
CRONOFY_REAL = bool(os.environ.get("CRONOFY_CLIENT_ID") and os.environ.get("CRONOFY_CLIENT_SECRET"))

if CRONOFY_REAL:
    CRONOFY_CONFERENCING = {
        "CLIENT_ID": os.environ["CRONOFY_CLIENT_ID"],
        "CLIENT_SECRET": os.environ["CRONOFY_CLIENT_SECRET"],
        "DEFAULT_DATA_CENTER": os.environ.get("CRONOFY_DATA_CENTER") or "us",
        # Push notifications need a public https URL Cronofy can reach.
        "PUSH_NOTIFICATIONS_CALLBACK_URL": os.environ.get("CRONOFY_PUSH_CALLBACK_URL", ""),
    }
    if os.environ.get("CRONOFY_ENCRYPTION_KEYS"):
        CRONOFY_CONFERENCING["ENCRYPTION_KEYS"] = env_list("CRONOFY_ENCRYPTION_KEYS", [])
    # Without ENCRYPTION_KEYS, a key is derived from SECRET_KEY and `check` warns.
else:
    from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    SIMULATOR_URL = os.environ.get("CRONOFY_SIMULATOR_URL", "http://127.0.0.1:8001").rstrip("/")
    SITE_URL = os.environ.get("SITE_URL", "http://127.0.0.1:8000").rstrip("/")
    CRONOFY_CONFERENCING = {
        "CLIENT_ID": DEFAULT_CLIENT_ID,
        "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        # A data center of its own, served on loopback by `manage.py demo`.
        "DATA_CENTERS": {
            "sim": {
                "api_url": SIMULATOR_URL,
                "app_url": SIMULATOR_URL,
                "label": "Simulated Cronofy (local)",
            }
        },
        "DEFAULT_DATA_CENTER": "sim",
        "ENCRYPTION_KEYS": env_list(
            "CRONOFY_ENCRYPTION_KEYS",
            # A published key, only ever used for simulated tokens.
            ["uhixvJhwy8-Kn1UBLXKqltiKuoa5-uOKlvqy3oiXzhU="],
        ),
        "PUSH_NOTIFICATIONS_CALLBACK_URL": f"{SITE_URL}/cronofy/notifications/",
        # The simulator answers at once: no need to pace requests.
        "RATE_LIMITS": [],
        # `manage.py cronofy_remind` emails (here: prints) a reminder on the day a
        # profile disconnects, then 1, 3 and 7 days on, until it is relinked. The page's
        # URL in them comes from PUSH_NOTIFICATIONS_CALLBACK_URL's origin.
        "RELINK_REMINDERS": {"DAYS": [0, 1, 3, 7]},
    }

CRONOFY_CONFERENCING["TASK_QUEUE"] = TASK_QUEUE

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"}},
    "handlers": {"console": {"class": "logging.StreamHandler", "formatter": "plain"}},
    "loggers": {
        "django_cronofy_conferencing": {"handlers": ["console"], "level": "INFO"},
        "demo_site": {"handlers": ["console"], "level": "INFO"},
    },
}
