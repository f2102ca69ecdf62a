"""A database failure on the statement that writes tokens: the exception report is clean.

When the database fails while tokens are being stored (a restarted PostgreSQL,
a killed backend), Django reports the error with every frame's local
variables: its technical 500 page, the ``AdminEmailHandler`` mail (with
``DEBUG=False``), an error tracker. ``sensitive_variables`` on the app's own
functions cannot mask the frames of Django's ORM (``QuerySet.create``'s
``kwargs``, ``Model._save_table``'s ``values``), so the ORM must never be handed
a plain token; nor may the request that carried the OAuth code show it.

Each test makes the database refuse the token write for real (a trigger on the
accounts table that fails the statement: a user function raising on SQLite,
``RAISE EXCEPTION`` with ``admin_shutdown``'s SQLSTATE on PostgreSQL), drives one
path to the failure, renders what Django would report, and scans it.
"""

from __future__ import annotations

import io
import logging
import re
import sys
from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.core import mail
from django.core.management import call_command
from django.db import DatabaseError, connection
from django.test import Client, override_settings
from django.urls import reverse
from django.utils import timezone
from django.utils.log import AdminEmailHandler
from django.views.debug import ExceptionReporter

from django_cronofy_conferencing.accounts.tokens import refresh_access_token
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from tests.secret_scan import SecretScanner

# A real transaction per test: the failed statement must not poison a test-wide one.
pytestmark = pytest.mark.django_db(transaction=True)

TABLE = LinkedAccount._meta.db_table
OUTAGE = "terminating connection due to administrator command"


def _outage() -> None:
    raise RuntimeError(OUTAGE)


@contextmanager
def token_writes_fail():
    """Until the block ends, every INSERT into the accounts table, and every UPDATE
    of its token columns, fails in the database itself."""
    connection.ensure_connection()
    with connection.cursor() as cursor:
        if connection.vendor == "sqlite":
            connection.connection.create_function("cronofy_test_outage", 0, _outage)
            body = "BEGIN SELECT cronofy_test_outage(); END"
            cursor.execute(f"CREATE TRIGGER cronofy_test_insert BEFORE INSERT ON {TABLE} {body}")
            cursor.execute(
                f"CREATE TRIGGER cronofy_test_update BEFORE UPDATE OF access_token, "
                f"refresh_token ON {TABLE} {body}"
            )
        else:
            cursor.execute(
                "CREATE FUNCTION cronofy_test_outage() RETURNS trigger AS $$ BEGIN "
                f"RAISE EXCEPTION '{OUTAGE}' USING ERRCODE = '57P01'; END $$ LANGUAGE plpgsql"
            )
            cursor.execute(
                f"CREATE TRIGGER cronofy_test_outage BEFORE INSERT OR UPDATE OF access_token, "
                f"refresh_token ON {TABLE} FOR EACH ROW EXECUTE FUNCTION cronofy_test_outage()"
            )
    try:
        yield
    finally:
        with connection.cursor() as cursor:
            if connection.vendor == "sqlite":
                cursor.execute("DROP TRIGGER IF EXISTS cronofy_test_insert")
                cursor.execute("DROP TRIGGER IF EXISTS cronofy_test_update")
            else:
                cursor.execute(f"DROP TRIGGER IF EXISTS cronofy_test_outage ON {TABLE}")
                cursor.execute("DROP FUNCTION IF EXISTS cronofy_test_outage()")


@pytest.fixture
def mail_handler():
    """Django's ``AdminEmailHandler`` (with its HTML part) on ``django.request``, ADMINS set."""
    handler = AdminEmailHandler(include_html=True)
    logger = logging.getLogger("django.request")
    logger.addHandler(handler)
    with override_settings(DEBUG=False, ADMINS=[("Ops", "ops@example.com")]):
        yield handler
    logger.removeHandler(handler)


def reports(request, exc_info) -> list[str]:
    """What Django shows of this error: the technical 500 page and its text version."""
    assert exc_info and exc_info[0] is not None, "no exception was raised"
    with override_settings(DEBUG=False):
        reporter = ExceptionReporter(request, *exc_info)
        return [reporter.get_traceback_text(), reporter.get_traceback_html()]


def mails() -> list[str]:
    found = []
    for message in mail.outbox:
        found += [message.subject, message.body]
        found += [content for content, _ in getattr(message, "alternatives", [])]
    return found


def _where(text: str, at: int) -> str:
    """The frame and variable a leak sits in (tags dropped), for the failure message."""
    frame = text.rfind('class="fname"', 0, at)
    before = re.sub(r"<[^>]+>|\s+", " ", text[max(frame, at - 600, 0) : at])
    return before[-300:]


def assert_clean(scanner: SecretScanner, texts: list[str]) -> None:
    secrets = scanner.secrets()
    assert len(secrets) >= 3
    for index, text in enumerate(texts):
        assert text
        for secret in secrets:
            at = text.find(secret)
            assert at < 0, f"a secret is in text {index}, after: {_where(text, at)}"


def assert_outage_reported(texts: list[str]) -> None:
    """The report is still about the database failure (the scan looked at the right thing)."""
    assert any(OUTAGE in text or "OperationalError" in text for text in texts)


# -- the OAuth callback: link_account creates or updates the account ----------


def _callback_url(client, sim, sim_account) -> str:
    response = client.post(reverse("cronofy_conferencing:connect"))
    assert response.status_code == 302
    return sim.authorize(response["Location"], account=sim_account)


@pytest.mark.parametrize("relink", [False, True], ids=["new account", "relink"])
def test_callback_database_failure_reports_no_token_or_code(
    sim, user, link_account, scanner, mail_handler, relink
):
    if relink:
        _, sim_account = link_account(user=user)
    else:
        sim_account = sim.add_account()
    client = Client(raise_request_exception=False)
    client.force_login(user)
    back = _callback_url(client, sim, sim_account)
    code = back.split("code=")[1].split("&")[0]
    scanner.add(code)
    mail.outbox.clear()

    with token_writes_fail():
        response = client.get(back)

    assert response.status_code == 500
    assert sim.count("token", status=200) == 1  # the code was exchanged: new tokens exist
    texts = reports(response.wsgi_request, response.exc_info) + mails()
    assert len(mail.outbox) >= 1
    assert_outage_reported(texts)
    assert_clean(scanner, [*texts, response.content.decode()])


# -- a token refresh storing the new tokens -----------------------------------


def _expiring(account: LinkedAccount) -> None:
    LinkedAccount.objects.filter(pk=account.pk).update(
        token_expires_at=timezone.now() - timedelta(minutes=1)
    )
    account.refresh_from_db()


@pytest.mark.parametrize("rejected", [False, True], ids=["expiring", "after a 401"])
def test_refresh_database_failure_reports_no_token(sim, link_account, scanner, rejected):
    account, sim_account = link_account()
    if rejected:
        sim.expire_access_token(sim_account.sub)
    else:
        _expiring(account)

    with token_writes_fail():
        try:
            sync_account(account)
        except DatabaseError:
            exc_info = sys.exc_info()
        else:
            pytest.fail("the token write did not fail")

    assert sim.count("token", status=200) == 1
    texts = reports(None, exc_info)
    assert_outage_reported(texts)
    assert_clean(scanner, texts)


def test_refresh_access_token_database_failure_reports_no_token(sim, link_account, scanner):
    account, _ = link_account()
    _expiring(account)
    with token_writes_fail(), pytest.raises(DatabaseError) as excinfo:
        refresh_access_token(account)
    texts = reports(None, (excinfo.type, excinfo.value, excinfo.tb))
    assert_outage_reported(texts)
    assert_clean(scanner, texts)


# -- the admin's Sync now, when the refresh answer cannot be stored -----------


def test_admin_sync_now_database_failure_reports_no_token(
    sim, link_account, scanner, mail_handler, django_user_model
):
    admin = django_user_model.objects.create_superuser("admin", "admin@example.com", None)
    account, _ = link_account()
    _expiring(account)
    client = Client(raise_request_exception=False)
    client.force_login(admin)
    mail.outbox.clear()

    with token_writes_fail():
        response = client.post(
            reverse("admin:cronofy_conferencing_linkedaccount_changelist"),
            {"action": "sync_now", "_selected_action": [account.pk]},
        )

    assert response.status_code == 500
    assert sim.count("token", status=200) == 1
    texts = reports(response.wsgi_request, response.exc_info) + mails()
    assert len(mail.outbox) >= 1
    assert_outage_reported(texts)
    assert_clean(scanner, [*texts, response.content.decode()])


# -- cronofy_link --------------------------------------------------------------


@pytest.mark.parametrize("dead_access_token", [False, True], ids=["as given", "refreshed"])
def test_cronofy_link_database_failure_reports_no_token(
    sim, user, scanner, capsys, dead_access_token
):
    sim_account = sim.add_account()
    scanner.add(sim_account.access_token, sim_account.refresh_token)
    if dead_access_token:
        sim.expire_access_token(sim_account.sub)
    stdin = io.StringIO(f"{sim_account.access_token}\n{sim_account.refresh_token}\n")
    out, err = io.StringIO(), io.StringIO()

    with token_writes_fail():
        try:
            call_command("cronofy_link", "--user", "alice", stdin=stdin, stdout=out, stderr=err)
        except Exception:
            exc_info = sys.exc_info()
        else:
            pytest.fail("the token write did not fail")

    texts = reports(None, exc_info)
    printed = [text for text in (out.getvalue(), err.getvalue()) if text]
    assert_clean(scanner, [*texts, str(exc_info[1]), *printed])
    assert "database" in str(exc_info[1]).lower()
    assert not LinkedAccount.objects.exists()
