"""`pip install .` smoke test: a throwaway host project uses the installed app.

.ci/run runs this with ``python -I`` in an empty directory, in a fresh venv where
the package was installed with ``pip install .`` (plus ``responses`` for the
simulated Cronofy), so the app can only come from site-packages. It follows the
README's Quick start: settings, urls, migrate, link an account, ``sync_account``.
"""

import os
import sys
from datetime import timedelta
from pathlib import Path

HOST = Path.cwd()

SETTINGS = """
from cryptography.fernet import Fernet
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

SECRET_KEY = "smoke-test-not-secret"
USE_TZ = True
ROOT_URLCONF = "host_urls"
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
DATABASES = {"default": {"ENGINE": "django.db.backends.sqlite3", "NAME": "host.sqlite3"}}
INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "rest_framework",
    "django_cronofy_conferencing",
]
MIDDLEWARE = [
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
]
TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]
STATIC_URL = "/static/"
CRONOFY_CONFERENCING = {
    "CLIENT_ID": DEFAULT_CLIENT_ID,
    "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
    "ENCRYPTION_KEYS": [Fernet.generate_key().decode()],
}
"""

URLS = """
from django.contrib import admin
from django.urls import include, path

urlpatterns = [
    path("admin/", admin.site.urls),
    path("cronofy/", include("django_cronofy_conferencing.urls")),
    path("api/cronofy/", include("django_cronofy_conferencing.api.urls")),
]
"""


def main() -> int:
    (HOST / "host_settings.py").write_text(SETTINGS)
    (HOST / "host_urls.py").write_text(URLS)
    sys.path.insert(0, str(HOST))
    os.environ["DJANGO_SETTINGS_MODULE"] = "host_settings"

    import django

    django.setup()

    import django_cronofy_conferencing as app

    location = Path(app.__file__).resolve()
    print(f"Django {django.get_version()}; app imported from {location.parent}")
    assert "site-packages" in location.parts, f"app not imported from site-packages: {location}"

    from django.apps import apps
    from django.core.management import call_command

    call_command("check")
    call_command("migrate", verbosity=0)
    # The shipped migrations match the models under this (newest allowed) Django.
    label = next(c.label for c in apps.get_app_configs() if c.name == app.__name__)
    call_command("makemigrations", label, check=True, dry_run=True)

    from django.contrib.auth import get_user_model
    from django.db import connection
    from django.urls import reverse
    from django.utils import timezone

    from django_cronofy_conferencing.models import LinkedAccount
    from django_cronofy_conferencing.sync import sync_account
    from django_cronofy_conferencing.testing import SimulatedCronofy, simulated_cronofy

    user = get_user_model().objects.create_user("newcomer", "newcomer@example.com", "pw")
    with simulated_cronofy() as sim:
        remote = sim.add_account(
            conferencing_profiles=[
                SimulatedCronofy.profile("zoom", profile_name="newcomer@example.com"),
                SimulatedCronofy.profile("ms_teams", profile_name="n@example.com", connected=False),
            ]
        )
        account = LinkedAccount.objects.create(
            user=user,
            data_center=remote.data_center,
            sub=remote.sub,
            access_token=remote.access_token,
            refresh_token=remote.refresh_token,
            token_expires_at=timezone.now() + timedelta(hours=1),
        )
        result = sync_account(account)
    print(f"sync_account -> {result}")
    assert result.created == 2, result

    profiles = {p.provider_name: p for p in account.conferencing_profiles.all()}
    assert set(profiles) == {"zoom", "ms_teams"}, profiles
    assert profiles["zoom"].profile_connected
    assert not profiles["ms_teams"].profile_connected
    assert profiles["ms_teams"].profile_relink_url.startswith("https://")

    table = connection.ops.quote_name(LinkedAccount._meta.db_table)
    column = connection.ops.quote_name(LinkedAccount._meta.get_field("access_token").column)
    with connection.cursor() as cursor:
        cursor.execute(f"SELECT {column} FROM {table}")  # noqa: S608 - names from _meta
        stored = cursor.fetchone()[0]
    assert remote.access_token not in stored, "access token stored in plain text"
    assert LinkedAccount.objects.get().access_token == remote.access_token

    from django.template.loader import get_template

    templates_dir = location.parent / "templates"
    names = sorted(p.relative_to(templates_dir).as_posix() for p in templates_dir.rglob("*.html"))
    for name in names:
        get_template(name)  # found through APP_DIRS, and compiles
    print(f"templates: {len(names)} installed and compile")

    print(f"urls: {reverse('cronofy_conferencing:connect')}")
    print("installed app works: migrate, link, sync_account, encrypted tokens")
    return 0


if __name__ == "__main__":
    sys.exit(main())
