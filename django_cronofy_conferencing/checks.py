"""System checks with stable ids; each message names the exact key to fix.

W005 CLIENT_ID missing            W006 CLIENT_SECRET missing (the project still starts)
E001 CLIENT_ID missing            E002 CLIENT_SECRET missing (``check --deploy`` only)
E003 DEFAULT_DATA_CENTER unknown  E004 ENCRYPTION_KEYS malformed
E005 DATA_CENTERS malformed       E006 RATE_LIMITS malformed
E007 a number setting is not a non-negative number
E008 RATE_LIMIT_CACHE names no cache in CACHES
E009 an API_PERMISSION_CLASSES entry does not import
E014 the task queue (TASK_QUEUE "celery") is set but Celery is not installed
W001 token keys derived from SECRET_KEY
W002 unknown key in CRONOFY_CONFERENCING (a typo?)
E010-E013, W004: APPLICATIONS (see check_applications below); E012 also for
     CLIENT_ID / CLIENT_SECRET / PREVIOUS_CLIENT_SECRETS of the wrong type (that
     application is the one in DEFAULT_DATA_CENTER)
E015 TASK_QUEUE unknown, not installed or unable to run tasks; USE_CELERY left over
E026 PUSH_LOG_DAYS is not a whole number of days, 0 or more
W014 push notifications older than twice PUSH_LOG_DAYS are kept: nothing prunes the log
E023-E025, W012-W013: the relink loop (see check_relink_loop below)
E006 also for API_SYNC_THROTTLE_RATE and DEFAULT_THROTTLE_RATES['cronofy_sync'] (one rate grammar)
E017 CRONOFY_CONFERENCING is not a dict (the other checks wait until it is)
E018 a URL setting that cannot work: LINK_REDIRECT_URL that does not resolve while the
     browser flow is installed, PUSH_NOTIFICATIONS_CALLBACK_URL that is not absolute
E019 rest_framework not in INSTALLED_APPS while the API is routed and renders HTML
E020 FLEET_BUDGET_SHARE not in (0, 1]   E021 SYNC_CONFIRM_AFTER not a number of seconds
W010 SYNC_CONFIRM_AFTER < SYNC_STALE_AFTER   W011 a budget cannot cover its fleet (database)
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from urllib.parse import urlsplit

from django.core.checks import Error, Tags, Warning, register
from django.core.exceptions import ImproperlyConfigured

from .conf import SETTINGS_NAME, app_settings

ID = "cronofy_conferencing.{}"


def needs_settings(check: Callable[..., list]) -> Callable[..., list]:
    """Run ``check`` only when ``CRONOFY_CONFERENCING`` can be read (E017 reports it when
    it cannot): one clear error instead of a traceback from every check."""

    @functools.wraps(check)
    def run(*args, **kwargs) -> list:
        return check(*args, **kwargs) if app_settings.is_usable() else []

    return run


@register("cronofy_conferencing")
def check_settings_is_a_dict(app_configs=None, **kwargs) -> list:
    """E017: ``CRONOFY_CONFERENCING`` must be a dict (or unset)."""
    if app_settings.is_usable():
        return []
    from django.conf import settings

    value = getattr(settings, SETTINGS_NAME)
    return [
        Error(
            f"{SETTINGS_NAME} must be a dict of settings, got {type(value).__name__}.",
            hint=f"For instance {SETTINGS_NAME} = {{'CLIENT_ID': '...', 'CLIENT_SECRET': '...'}}.",
            id=ID.format("E017"),
        )
    ]


NUMBER_SETTINGS = (
    "CONNECT_TIMEOUT",
    "REQUEST_TIMEOUT",
    "REQUEST_DEADLINE",
    "MAX_RESPONSE_BYTES",
    "MAX_RETRIES",
    "RETRY_BACKOFF",
    "RETRY_MAX_WAIT",
    "TOKEN_REFRESH_MARGIN",
    "SYNC_STALE_AFTER",
    "SYNC_CONCURRENCY",
    "STATE_MAX_AGE",
    "ADMIN_SYNC_MAX_ACCOUNTS",
    "PUSH_RESYNC_DEBOUNCE",
)


def _key(name: str) -> str:
    return f"{SETTINGS_NAME}['{name}']"


def missing_credentials(level: type, ids: dict[str, str]) -> list:
    """The Cronofy application's credentials that are not set, as messages of ``level``.

    A warning in development (a new project migrates, serves and runs its tests
    without them: linking, refreshes and push then fail with an error naming the
    key), an error for ``check --deploy``.
    """
    messages = []
    for name, check_id in ids.items():
        value = getattr(app_settings, name)
        if value is not None and not isinstance(value, str):
            continue  # set, but not a string: E012 says so
        if not value:
            messages.append(
                level(
                    f"{_key(name)} is not set: linking Cronofy accounts, token refreshes and "
                    "push notifications cannot work.",
                    hint=f"Copy it from your Cronofy application's dashboard into {_key(name)}; "
                    "to develop without Cronofy credentials, run `manage.py cronofy_simulator` "
                    "and paste the settings it prints.",
                    id=ID.format(check_id),
                )
            )
    return messages


@register(Tags.security, "cronofy_conferencing", deploy=True)
@needs_settings
def check_credentials_for_deployment(app_configs=None, **kwargs) -> list:
    return missing_credentials(Error, {"CLIENT_ID": "E001", "CLIENT_SECRET": "E002"})


def credential_types() -> list:
    """E012: the default application's credentials are strings, its previous secrets a
    list of strings (``CLIENT_ID: 12345`` is set, only of the wrong type)."""
    messages = []
    for name in ("CLIENT_ID", "CLIENT_SECRET"):
        value = getattr(app_settings, name)
        if value is not None and not isinstance(value, str):
            messages.append(
                Error(
                    f"{_key(name)} must be a string, got {type(value).__name__}.",
                    hint=f"Quote it: {_key(name)} = '...' (copy it from your Cronofy "
                    "application's dashboard).",
                    id=ID.format("E012"),
                )
            )
    previous = app_settings.PREVIOUS_CLIENT_SECRETS
    if previous is not None and (
        isinstance(previous, str)
        or not isinstance(previous, list | tuple)
        or not all(isinstance(item, str) for item in previous)
    ):
        messages.append(
            Error(
                f"{_key('PREVIOUS_CLIENT_SECRETS')} must be a list of strings.",
                id=ID.format("E012"),
            )
        )
    return messages


@register(Tags.security, "cronofy_conferencing")
@needs_settings
def check_settings(app_configs=None, **kwargs) -> list:
    from .cronofy.datacenters import get_data_centers
    from .cronofy.ratelimit import parse_rate
    from .fields import configured_keys

    messages: list = missing_credentials(Warning, {"CLIENT_ID": "W005", "CLIENT_SECRET": "W006"})
    messages.extend(credential_types())

    try:
        registry = get_data_centers()
    except ImproperlyConfigured as exc:
        registry = {}
        messages.append(Error(str(exc), id=ID.format("E005")))
    default = app_settings.DEFAULT_DATA_CENTER
    if registry and (not isinstance(default, str) or default not in registry):
        messages.append(
            Error(
                f"{_key('DEFAULT_DATA_CENTER')} is {default!r}, which is not a known data center.",
                hint="Use one of: " + ", ".join(sorted(registry)) + ".",
                id=ID.format("E003"),
            )
        )

    try:
        configured_keys()
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), id=ID.format("E004")))
    else:
        if app_settings.ENCRYPTION_KEYS is None:
            messages.append(
                Warning(
                    f"{_key('ENCRYPTION_KEYS')} is not set: Cronofy tokens are encrypted with a "
                    "key derived from SECRET_KEY, so changing SECRET_KEY makes them unreadable.",
                    hint="Generate a key with cryptography.fernet.Fernet.generate_key() and set "
                    f"{_key('ENCRYPTION_KEYS')} = ['<key>'].",
                    id=ID.format("W001"),
                )
            )

    rates = app_settings.RATE_LIMITS
    try:
        if not isinstance(rates, list | tuple):
            raise ImproperlyConfigured(f"{_key('RATE_LIMITS')} must be a list such as ['50/s'].")
        for rate in rates:
            parse_rate(rate)
    except ImproperlyConfigured as exc:
        messages.append(Error(str(exc), id=ID.format("E006")))
    messages.extend(throttle_rates())

    for name in NUMBER_SETTINGS:
        value = getattr(app_settings, name)
        if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
            messages.append(
                Error(f"{_key(name)} must be a non-negative number.", id=ID.format("E007"))
            )

    for name in app_settings.unknown_keys():
        messages.append(
            Warning(
                f"{_key(name)} is not a setting of django-cronofy-conferencing.",
                hint="Check the spelling against the settings reference (docs/settings.md).",
                id=ID.format("W002"),
            )
        )
    return messages


def throttle_rates() -> list:
    """E006: the per-user budget's rates follow the app's one rate grammar (a
    ``"twelve/m"`` is otherwise a 500 on every Sync now); None disables the budget."""
    from rest_framework.settings import api_settings

    from .cronofy.ratelimit import parse_rate
    from .cronofy.userlimits import SCOPE

    rates = [(_key("API_SYNC_THROTTLE_RATE"), app_settings.API_SYNC_THROTTLE_RATE)]
    host_rates = api_settings.DEFAULT_THROTTLE_RATES
    if isinstance(host_rates, dict) and SCOPE in host_rates:
        rates.append((f"REST_FRAMEWORK['DEFAULT_THROTTLE_RATES'][{SCOPE!r}]", host_rates[SCOPE]))
    messages = []
    for key, rate in rates:
        if rate is None:
            continue
        try:
            parse_rate(rate, key)
        except ImproperlyConfigured:
            messages.append(
                Error(
                    f"{key} is {rate!r}, which is no rate: every Sync now would fail.",
                    hint=f"Rates look like '12/m' (twelve a minute), '1/s' or '100/h'; "
                    f"{key} = None sets no per-user limit.",
                    id=ID.format("E006"),
                )
            )
    return messages


# -- one Cronofy application per data center (applications.py) ---------------
#
# E010 APPLICATIONS malformed (not a dict, a key that is no data center, unknown keys)
# E011 an application's CLIENT_ID or CLIENT_SECRET missing
# E012 an application value of the wrong type
# E013 an APPLICATIONS entry for DEFAULT_DATA_CENTER (CLIENT_ID/CLIENT_SECRET are that one)
# W004 linked accounts in a data center without an application (database check)


@register("cronofy_conferencing")
@needs_settings
def check_applications(app_configs=None, **kwargs) -> list:
    from .cronofy.applications import APPLICATION_KEYS
    from .cronofy.datacenters import get_data_centers

    try:
        registry = get_data_centers()
    except ImproperlyConfigured:
        return []  # E005 reports it
    entries = app_settings.APPLICATIONS
    if entries is None:
        return []
    if not isinstance(entries, dict):
        return [Error(f"{_key('APPLICATIONS')} must be a dict.", id=ID.format("E010"))]
    messages: list = []
    for dc_id, entry in entries.items():
        where = f"{_key('APPLICATIONS')}[{dc_id!r}]"
        if dc_id not in registry:
            messages.append(
                Error(
                    f"{where}: {dc_id!r} is not a known data center.",
                    hint="Use one of: " + ", ".join(sorted(registry)) + ", or add it to "
                    f"{_key('DATA_CENTERS')} first.",
                    id=ID.format("E010"),
                )
            )
            continue
        if dc_id == app_settings.DEFAULT_DATA_CENTER:
            messages.append(
                Error(
                    f"{where} is the application of DEFAULT_DATA_CENTER, which is "
                    f"{_key('CLIENT_ID')} / {_key('CLIENT_SECRET')}.",
                    hint=f"Move its credentials to {_key('CLIENT_ID')} and "
                    f"{_key('CLIENT_SECRET')} and remove {where}.",
                    id=ID.format("E013"),
                )
            )
            continue
        if not isinstance(entry, dict):
            messages.append(
                Error(
                    f"{where} must be a dict with 'CLIENT_ID' and 'CLIENT_SECRET'.",
                    id=ID.format("E010"),
                )
            )
            continue
        for key in sorted((k for k in entry if k not in APPLICATION_KEYS), key=str):
            messages.append(
                Error(
                    f"{where}[{key!r}] is not an application setting.",
                    hint="Use " + ", ".join(APPLICATION_KEYS) + ".",
                    id=ID.format("E010"),
                )
            )
        for key in ("CLIENT_ID", "CLIENT_SECRET"):
            value = entry.get(key)
            if value is not None and not isinstance(value, str):
                messages.append(Error(f"{where}['{key}'] must be a string.", id=ID.format("E012")))
            elif not value:
                messages.append(
                    Error(
                        f"{where}['{key}'] is not set.",
                        hint=f"Copy it from the dashboard of your Cronofy application in "
                        f"data center {dc_id!r}.",
                        id=ID.format("E011"),
                    )
                )
        previous = entry.get("PREVIOUS_CLIENT_SECRETS", [])
        if previous is not None and (
            isinstance(previous, str)
            or not isinstance(previous, list | tuple)
            or not all(isinstance(item, str) for item in previous)
        ):
            messages.append(
                Error(
                    f"{where}['PREVIOUS_CLIENT_SECRETS'] must be a list of strings.",
                    id=ID.format("E012"),
                )
            )
    return messages


@register(Tags.database, "cronofy_conferencing")
@needs_settings
def check_accounts_have_applications(app_configs=None, databases=None, **kwargs) -> list:
    """Runs with ``migrate`` and ``check --database``: accounts nobody can refresh."""
    from django.db import DatabaseError, router

    from .cronofy.applications import configured_applications
    from .models import LinkedAccount

    using = router.db_for_read(LinkedAccount)
    if not databases or using not in databases:
        return []
    try:
        applications = configured_applications()
        stranded = (
            LinkedAccount.objects.using(using)
            .exclude(data_center__in=list(applications))
            .values_list("data_center", flat=True)
            .distinct()
            .order_by("data_center")
        )
        orphans = list(stranded)
    except (DatabaseError, ImproperlyConfigured):
        return []  # not migrated yet, or reported by the settings checks
    return [
        Warning(
            f"Linked Cronofy accounts exist in data center {dc_id!r}, which has no Cronofy "
            "application configured: their tokens can no longer be refreshed or revoked.",
            hint=f"Add {_key('APPLICATIONS')}[{dc_id!r}] = "
            "{'CLIENT_ID': '...', 'CLIENT_SECRET': '...'}.",
            id=ID.format("W004"),
        )
        for dc_id in orphans
    ]


# -- settings that otherwise fail as 500s at run time ---------------------------------
# Each a check of its own (ids E008, E009, E014: E010-E013 are the APPLICATIONS checks).


@register("cronofy_conferencing")
@needs_settings
def check_rate_limit_cache(app_configs=None, **kwargs) -> list:
    """E008: ``RATE_LIMIT_CACHE`` must name a cache in ``CACHES``."""
    from django.conf import settings

    alias = app_settings.RATE_LIMIT_CACHE
    configured = getattr(settings, "CACHES", None) or {"default": {}}
    if isinstance(alias, str) and alias in configured:
        return []
    return [
        Error(
            f"{_key('RATE_LIMIT_CACHE')} is {alias!r}, which is not a cache in CACHES.",
            hint="Use one of: " + ", ".join(sorted(configured)) + ", or add that cache to CACHES.",
            id=ID.format("E008"),
        )
    ]


@register("cronofy_conferencing")
@needs_settings
def check_api_permission_classes(app_configs=None, **kwargs) -> list:
    """E009: every ``API_PERMISSION_CLASSES`` entry must be a dotted path that imports."""
    from django.utils.module_loading import import_string

    value = app_settings.API_PERMISSION_CLASSES
    if not isinstance(value, list | tuple):
        return [
            Error(
                f"{_key('API_PERMISSION_CLASSES')} must be a list of dotted paths.",
                hint="For instance ['rest_framework.permissions.IsAuthenticated'].",
                id=ID.format("E009"),
            )
        ]
    messages: list = []
    for entry in value:
        try:
            if not isinstance(entry, str):
                raise ImportError("not a dotted path")
            import_string(entry)
        except ImportError as exc:
            messages.append(
                Error(
                    f"{_key('API_PERMISSION_CLASSES')} entry {entry!r} cannot be imported: {exc}",
                    hint="Give the dotted path of a DRF permission class, such as "
                    "'rest_framework.permissions.IsAuthenticated'.",
                    id=ID.format("E009"),
                )
            )
    return messages


#: The queue setting, and the package each of its values needs (Django's tasks
#: framework, built in or the backport, is E015's).
QUEUE_SETTING = "TASK_QUEUE"
QUEUE_PACKAGES = {"celery": "celery"}


def _configured_queue() -> str | None:
    queue = getattr(app_settings, QUEUE_SETTING)
    return queue if isinstance(queue, str) else None


@register("cronofy_conferencing")
@needs_settings
def check_queue_installed(app_configs=None, **kwargs) -> list:
    """E014: the configured task queue's package must be installed."""
    from importlib.util import find_spec

    queue = _configured_queue()
    package = QUEUE_PACKAGES.get(queue or "")
    if package is None or find_spec(package) is not None:
        return []
    return [
        Error(
            f"{_key(QUEUE_SETTING)} asks for {queue}, but the {package!r} package is not "
            "installed.",
            hint='Install it (pip install "django-cronofy-conferencing[celery]") or set '
            f"{_key(QUEUE_SETTING)} to None.",
            id=ID.format("E014"),
        )
    ]


@register("cronofy_conferencing")
@needs_settings
def check_task_queue(app_configs=None, **kwargs) -> list:
    """E015: ``TASK_QUEUE`` names a queue that is installed and can run the app's tasks
    (and ``USE_CELERY``, which it replaced, is gone)."""
    from .queueing import QUEUES

    def error(message: str, hint: str) -> Error:
        return Error(message, hint=hint, id=ID.format("E015"))

    messages: list = []
    if "USE_CELERY" in app_settings.user_settings:
        messages.append(
            error(
                f"{_key('USE_CELERY')} was replaced by {_key('TASK_QUEUE')}.",
                f"Remove {_key('USE_CELERY')}; set {_key('TASK_QUEUE')} = 'celery' "
                "(or 'django', or None to sync inline).",
            )
        )
    queue = app_settings.TASK_QUEUE
    if queue not in QUEUES:
        messages.append(
            error(
                f"{_key('TASK_QUEUE')} is {queue!r}, which is not a queue the app knows.",
                "Use None (sync inline), 'celery' or 'django' (Django's tasks framework).",
            )
        )
    elif queue == "django":  # (Celery not installed: E014)
        messages.extend(_django_tasks_errors(error))
    return messages


def _django_tasks_errors(error) -> list:
    from importlib.util import find_spec

    if find_spec("django.tasks") is None and find_spec("django_tasks") is None:
        return [
            error(
                f"{_key('TASK_QUEUE')} is 'django', but Django's tasks framework is not "
                "installed (Django 6 has it; on Django 5.2 it is the django-tasks package).",
                "pip install django-tasks (the app's 'tasks' extra), "
                "and add 'django_tasks' to INSTALLED_APPS on Django 5.2.",
            )
        ]
    try:
        from .queueing.django_tasks import sync_account_task

        backend = sync_account_task.get_backend()
    except Exception as exc:  # an unknown or broken TASKS backend
        return [
            error(
                f"{_key('TASK_QUEUE')} is 'django', but the tasks backend cannot be loaded: "
                f"{type(exc).__name__}: {exc}",
                "Check the TASKS setting's 'default' backend.",
            )
        ]
    if type(backend).__name__ == "DummyBackend":
        return [
            error(
                f"{_key('TASK_QUEUE')} is 'django', but the TASKS backend is the "
                "DummyBackend, which never runs a task: no sync would happen.",
                "Use a backend with a worker (django-tasks-db, RQ, ...), or set "
                f"{_key('TASK_QUEUE')} = None to sync inline.",
            )
        ]
    return []


# -- the push notification log (operators) ----------------------------------------------


@register("cronofy_conferencing")
@needs_settings
def check_push_log_days(app_configs=None, **kwargs) -> list:
    """E026: ``PUSH_LOG_DAYS`` is a whole number of days, 0 (keep none) or more."""
    days = app_settings.PUSH_LOG_DAYS
    if isinstance(days, int) and not isinstance(days, bool) and days >= 0:
        return []
    return [
        Error(
            f"{_key('PUSH_LOG_DAYS')} must be a whole number of days, 0 or more; got {days!r}.",
            hint=f"Set {_key('PUSH_LOG_DAYS')} = 30 (the default) to keep a month of push "
            "notifications, or 0 to keep none.",
            id=ID.format("E026"),
        )
    ]


@register(Tags.database, "cronofy_conferencing")
@needs_settings
def check_push_log_pruned(app_configs=None, databases=None, **kwargs) -> list:
    """W014 (``migrate``, ``check --database``): push notifications older than twice
    ``PUSH_LOG_DAYS`` (a day at least) are still there, so nothing prunes the log."""
    from datetime import timedelta

    from django.db import DatabaseError, router
    from django.utils import timezone

    from .models import PushNotification

    using = router.db_for_read(PushNotification)
    days = app_settings.PUSH_LOG_DAYS
    if not databases or using not in databases or not isinstance(days, int | float):
        return []
    cutoff = timezone.now() - timedelta(days=max(1, 2 * days))
    try:
        stale = PushNotification.objects.using(using).filter(received_at__lt=cutoff).exists()
    except DatabaseError:
        return []  # not migrated yet
    if not stale:
        return []
    return [
        Warning(
            f"Push notifications older than {max(1, 2 * days)} days are kept, though "
            f"{_key('PUSH_LOG_DAYS')} is {days}: nothing prunes the push notification log.",
            hint="Run `manage.py cronofy_sync` regularly (it prunes the log), or schedule "
            "django_cronofy_conferencing.tasks.prune_push_notifications_task (Celery beat) "
            "or the prune_push_notifications_task of queueing.django_tasks.",
            id=ID.format("W014"),
        )
    ]


# -- the relink loop: RELINK_REMINDERS and PRODUCT_NAME -------------------------------
#
# E023 RELINK_REMINDERS is not None or a dict, has an unknown key, or EMAIL is not a bool
# E024 RELINK_REMINDERS['DAYS'] is not a non-empty list of different whole days (>= 0)
# E025 RELINK_REMINDERS['PAGE_URL'] / ['FROM_EMAIL'] or PRODUCT_NAME of the wrong shape
# W012 reminder emails would come from Django's placeholder DEFAULT_FROM_EMAIL
# W013 reminder emails would carry no link to the "My conferencing" page


@register("cronofy_conferencing")
@needs_settings
def check_relink_loop(app_configs=None, **kwargs) -> list:
    from django.conf import settings

    from .accounts.reminders import REMINDER_KEYS, absolute_http_url, derived_page_url

    messages: list = []
    product = app_settings.PRODUCT_NAME
    if product is not None and not isinstance(product, str):
        messages.append(
            Error(
                f"{_key('PRODUCT_NAME')} must be a string (the name users see, such as "
                "'Cronofy') or None.",
                id=ID.format("E025"),
            )
        )
    value = app_settings.RELINK_REMINDERS
    if value is None:
        return messages
    key = _key("RELINK_REMINDERS")
    if not isinstance(value, dict):
        return [
            *messages,
            Error(
                f"{key} must be None (no reminders) or a dict such as {{'DAYS': [0, 1, 3, 7]}}.",
                id=ID.format("E023"),
            ),
        ]
    for name in sorted((k for k in value if k not in REMINDER_KEYS), key=str):
        messages.append(
            Error(
                f"{key}[{name!r}] is not a reminder setting.",
                hint="Use " + ", ".join(REMINDER_KEYS) + ".",
                id=ID.format("E023"),
            )
        )
    email = value.get("EMAIL", True)
    if not isinstance(email, bool):
        messages.append(
            Error(
                f"{key}['EMAIL'] must be True or False.",
                hint="False sends no email: only the relink_reminder_due signal.",
                id=ID.format("E023"),
            )
        )
    days = value.get("DAYS")
    if (
        not isinstance(days, list | tuple)
        or not days
        or any(isinstance(d, bool) or not isinstance(d, int) or d < 0 for d in days)
        or len(set(days)) != len(days)
    ):
        messages.append(
            Error(
                f"{key}['DAYS'] must be a non-empty list of different whole numbers of days "
                f"(0 or more); got {days!r}.",
                hint="For instance [0, 1, 3, 7]: the day it disconnected, then 1, 3 and 7 days on.",
                id=ID.format("E024"),
            )
        )
    from_email = value.get("FROM_EMAIL")
    if from_email is not None and (not isinstance(from_email, str) or not from_email.strip()):
        messages.append(
            Error(f"{key}['FROM_EMAIL'] must be an email address.", id=ID.format("E025"))
        )
    page_url = value.get("PAGE_URL")
    if page_url is not None and not absolute_http_url(page_url):
        messages.append(
            Error(
                f"{key}['PAGE_URL'] must be the absolute http(s) URL of the My conferencing "
                f"page; got {page_url!r}.",
                hint="For instance 'https://example.com/cronofy/'.",
                id=ID.format("E025"),
            )
        )
    if email is True:
        if not from_email and settings.DEFAULT_FROM_EMAIL == "webmaster@localhost":
            messages.append(
                Warning(
                    f"{key} emails users, but DEFAULT_FROM_EMAIL is Django's placeholder "
                    "'webmaster@localhost': the reminders would come from it.",
                    hint=f"Set DEFAULT_FROM_EMAIL, or {key}['FROM_EMAIL'].",
                    id=ID.format("W012"),
                )
            )
        if not page_url and not derived_page_url():
            messages.append(
                Warning(
                    f"{key} emails users, but {key}['PAGE_URL'] is not set and "
                    f"{_key('PUSH_NOTIFICATIONS_CALLBACK_URL')} gives no site address to "
                    "build it from: the emails will carry the relink link only.",
                    hint=f"Set {key}['PAGE_URL'] to the absolute URL of the My conferencing "
                    "page, e.g. 'https://example.com/cronofy/'.",
                    id=ID.format("W013"),
                )
            )
    return messages


# -- what a newcomer's project gets wrong, found at startup instead of as a 500 --------


def _browser_flow_routed() -> bool:
    """Whether the host routes the browser flow (``django_cronofy_conferencing.urls``),
    whose callback redirects to ``LINK_REDIRECT_URL``."""
    from django.urls import NoReverseMatch, reverse

    try:
        reverse("cronofy_conferencing:callback")
    except NoReverseMatch:
        return False
    return True


@register(Tags.urls, "cronofy_conferencing")
@needs_settings
def check_url_settings(app_configs=None, **kwargs) -> list:
    """E018: ``LINK_REDIRECT_URL`` resolves (a URL name, a path or a URL) where the
    browser flow is routed; ``PUSH_NOTIFICATIONS_CALLBACK_URL`` is blank or absolute."""
    from django.shortcuts import resolve_url
    from django.urls import NoReverseMatch

    messages = []
    redirect = app_settings.LINK_REDIRECT_URL
    if not isinstance(redirect, str) or not redirect:
        messages.append(
            Error(
                f"{_key('LINK_REDIRECT_URL')} must be a URL name, a path or a URL, got "
                f"{redirect!r}.",
                hint="The packaged page is 'cronofy_conferencing:profiles'.",
                id=ID.format("E018"),
            )
        )
    else:
        try:
            routed = _browser_flow_routed()
            if routed:
                resolve_url(redirect)
        except NoReverseMatch:
            messages.append(
                Error(
                    f"{_key('LINK_REDIRECT_URL')} is {redirect!r}, which is no URL name in "
                    "your URLconf (nor a path or a URL): every linking would end in a 500.",
                    hint="Use the name of one of your views, a path such as '/account/', or "
                    "include('django_cronofy_conferencing.urls') for the packaged page "
                    "'cronofy_conferencing:profiles'.",
                    id=ID.format("E018"),
                )
            )
        except Exception:  # noqa: S110 - a URLconf that does not import: Django's urls check
            pass
    callback = app_settings.PUSH_NOTIFICATIONS_CALLBACK_URL
    if callback:
        parts = urlsplit(callback) if isinstance(callback, str) else None
        if parts is None or parts.scheme not in ("https", "http") or not parts.hostname:
            messages.append(
                Error(
                    f"{_key('PUSH_NOTIFICATIONS_CALLBACK_URL')} must be an absolute URL "
                    f"(Cronofy calls it from the internet), got {callback!r}.",
                    hint="For instance 'https://example.com/cronofy/notifications/' (the "
                    "push receiver's URL on your public host), or '' for no push channels.",
                    id=ID.format("E018"),
                )
            )
    return messages


@register(Tags.urls, "cronofy_conferencing")
@needs_settings
def check_rest_framework_installed(app_configs=None, **kwargs) -> list:
    """E019: the API is routed and DRF renders HTML (the browsable API), whose templates
    come from ``rest_framework`` in ``INSTALLED_APPS``; without it every browser visit
    to the API is a 500 (``TemplateDoesNotExist``)."""
    from django.apps import apps
    from django.urls import NoReverseMatch, reverse

    if apps.is_installed("rest_framework"):
        return []
    try:
        reverse("cronofy_conferencing_api:account-list")
    except NoReverseMatch:
        return []  # the API is not routed: nothing of DRF's renders
    except Exception:
        return []  # a URLconf that does not import: Django's urls check says so
    try:
        from rest_framework.renderers import BrowsableAPIRenderer, TemplateHTMLRenderer
        from rest_framework.settings import api_settings

        renderers = list(api_settings.DEFAULT_RENDERER_CLASSES)
    except ImportError:
        return []  # a renderer that does not import: DRF says so on the first request
    html = [
        r.__name__
        for r in renderers
        if isinstance(r, type) and issubclass(r, BrowsableAPIRenderer | TemplateHTMLRenderer)
    ]
    if not html:
        return []
    return [
        Error(
            "'rest_framework' is not in INSTALLED_APPS, but the Cronofy API is routed and "
            f"renders HTML ({', '.join(html)}): its pages would be a 500 (their templates "
            "are in rest_framework).",
            hint="Add 'rest_framework' to INSTALLED_APPS (or render JSON only: "
            "REST_FRAMEWORK['DEFAULT_RENDERER_CLASSES'] = "
            "['rest_framework.renderers.JSONRenderer']).",
            id=ID.format("E019"),
        )
    ]


# -- freshness within Cronofy's budget (issue 21) --------------------------------------
#
# E020 FLEET_BUDGET_SHARE is not a number in (0, 1]
# E021 SYNC_CONFIRM_AFTER is not a non-negative number of seconds
# W010 SYNC_CONFIRM_AFTER shorter than SYNC_STALE_AFTER (accounts with push polled more)
# W011 an application's budget cannot cover its fleet (database check: budget_outlook)


@register("cronofy_conferencing")
@needs_settings
def check_freshness_settings(app_configs=None, **kwargs) -> list:
    messages: list = []
    share = app_settings.FLEET_BUDGET_SHARE
    if isinstance(share, bool) or not isinstance(share, int | float) or not 0 < share <= 1:
        messages.append(
            Error(
                f"{_key('FLEET_BUDGET_SHARE')} must be a number above 0 and at most 1 "
                f"(the share of RATE_LIMITS background work may use); got {share!r}.",
                hint="The default 0.8 leaves a fifth of each application's budget to users.",
                id=ID.format("E020"),
            )
        )
    confirm = app_settings.SYNC_CONFIRM_AFTER
    if isinstance(confirm, bool) or not isinstance(confirm, int | float) or confirm < 0:
        messages.append(
            Error(
                f"{_key('SYNC_CONFIRM_AFTER')} must be a non-negative number of seconds; "
                f"got {confirm!r}.",
                hint="The default 86400 polls accounts with a confirmed push channel daily.",
                id=ID.format("E021"),
            )
        )
        return messages
    stale = app_settings.SYNC_STALE_AFTER
    if isinstance(stale, int | float) and not isinstance(stale, bool) and confirm < stale:
        messages.append(
            Warning(
                f"{_key('SYNC_CONFIRM_AFTER')} ({confirm}) is shorter than "
                f"{_key('SYNC_STALE_AFTER')} ({stale}): accounts whose push channel Cronofy "
                "confirmed would be polled more often than those without one.",
                hint=f"Set {_key('SYNC_CONFIRM_AFTER')} to at least {_key('SYNC_STALE_AFTER')}.",
                id=ID.format("W010"),
            )
        )
    return messages


@register(Tags.database, "cronofy_conferencing")
@needs_settings
def check_budget_covers_fleet(app_configs=None, databases=None, **kwargs) -> list:
    """W011 (with ``migrate`` and ``check --database``): a fleet its budget cannot cover."""
    from django.db import DatabaseError, router

    from .models import LinkedAccount

    if not databases or router.db_for_read(LinkedAccount) not in databases:
        return []
    try:
        from .sync.budget import budget_outlook

        outlooks = budget_outlook()
    except (DatabaseError, ImproperlyConfigured):
        return []  # not migrated yet, or reported by the settings checks
    return [
        Warning(
            f"The fleet falls behind its windows: {outlook.describe()}",
            hint=f"Ask Cronofy to raise the limit (then {_key('RATE_LIMITS')}), confirm "
            "push channels (manage.py cronofy_channels --repair), or lengthen "
            f"{_key('SYNC_STALE_AFTER')} / {_key('SYNC_CONFIRM_AFTER')}.",
            id=ID.format("W011"),
        )
        for outlook in outlooks
        if not outlook.covered
    ]
