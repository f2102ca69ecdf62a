"""Tokens and the client secret never show up: repr, str, exceptions, stored errors, logs.

Each scenario drives ``sync_account`` (or OAuth) through one path, success or
failure, with Cronofy echoing the secrets back where it can, then scans every
text a developer or an operator could see.
"""

from __future__ import annotations

import json
import logging
import traceback

import pytest
import requests

from django_cronofy_conferencing.accounts import linking
from django_cronofy_conferencing.cronofy.client import get_client
from django_cronofy_conferencing.cronofy.tokens import parse_token_response
from django_cronofy_conferencing.exceptions import CronofyError
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db


def texts_of_exception(exc: BaseException) -> list[str]:
    found = [str(exc), repr(exc), "".join(traceback.format_exception(exc))]
    found += [str(a) for a in exc.args]
    for name in ("body", "error"):
        if hasattr(exc, name):
            found.append(str(getattr(exc, name)))
    return found


def texts_of_logs(caplog) -> list[str]:
    found = [caplog.text]
    for record in caplog.records:
        found.append(record.getMessage())
        if record.exc_info:
            found.append("".join(traceback.format_exception(*record.exc_info)))
    return found


def assert_no_secret(texts: list[str], secrets: set[str]) -> None:
    assert secrets, "nothing to scan for"
    for text in texts:
        for secret in secrets:
            assert secret not in text, f"a secret leaked into: {text[:200]!r}"


def echo(*values: str) -> str:
    """An error body in which Cronofy repeats what it was sent."""
    return json.dumps(
        {
            "error": "server_error",
            "error_description": f"could not handle {' '.join(values)}",
            "echo": {"access_token": values[0], "client_secret": DEFAULT_CLIENT_SECRET},
        }
    )


def _expired(account):
    LinkedAccount.objects.filter(pk=account.pk).update(token_expires_at="2000-01-01T00:00:00Z")
    account.refresh_from_db()


def userinfo_body(sim_account, *profiles: dict) -> str:
    """A userinfo body for ``sim_account`` with the given (malformed) conferencing profiles."""
    return json.dumps({"sub": sim_account.sub, "cronofy.data": {"conferencing_profiles": profiles}})


SCENARIOS = {
    "success": lambda sim, sa, account: None,
    "refresh-then-success": lambda sim, sa, account: _expired(account),
    "401-refresh-retry": lambda sim, sa, account: sim.expire_access_token(sa.sub),
    "401-twice": lambda sim, sa, account: sim.fail(
        "userinfo", status=401, times=2, body=echo(sa.access_token)
    ),
    "invalid-grant": lambda sim, sa, account: (sim.revoke_grant(sa.sub), _expired(account)),
    "token-400-echo": lambda sim, sa, account: (
        sim.fail(
            "token",
            status=400,
            body=json.dumps(
                {
                    "error": "invalid_client",
                    "error_description": f"bad {DEFAULT_CLIENT_SECRET} / {sa.refresh_token}",
                }
            ),
        ),
        _expired(account),
    ),
    "token-500-echo": lambda sim, sa, account: (
        sim.fail("token", status=500, times=None, body=echo(sa.refresh_token, sa.access_token)),
        _expired(account),
    ),
    "token-response-malformed": lambda sim, sa, account: (
        sim.fail(
            "token",
            status=200,
            body=json.dumps({"access_token": 5, "refresh_token": sa.refresh_token}),
        ),
        _expired(account),
    ),
    "userinfo-500-echo": lambda sim, sa, account: sim.fail(
        "userinfo", status=500, times=None, body=echo(sa.access_token, sa.refresh_token)
    ),
    "userinfo-502-html-echo": lambda sim, sa, account: sim.fail(
        "userinfo", status=502, times=None, body=f"<p>Bearer {sa.access_token}</p>"
    ),
    "userinfo-429-echo": lambda sim, sa, account: sim.fail(
        "userinfo", status=429, headers={"Retry-After": "600"}, body=echo(sa.access_token)
    ),
    "userinfo-422-echo": lambda sim, sa, account: sim.fail(
        "userinfo", status=422, body=echo(sa.access_token)
    ),
    "timeout": lambda sim, sa, account: sim.fail(
        "userinfo",
        exception=requests.ReadTimeout(f"read timed out Bearer {sa.access_token}"),
        times=None,
    ),
    "connection-error-echo": lambda sim, sa, account: sim.fail(
        "userinfo",
        exception=requests.ConnectionError(f"reset while sending {sa.access_token}"),
        times=None,
    ),
    "not-json-echo": lambda sim, sa, account: sim.fail(
        "userinfo", status=200, body=f"oops {sa.access_token} {DEFAULT_CLIENT_SECRET}"
    ),
    "malformed-echo": lambda sim, sa, account: sim.fail(
        "userinfo",
        status=200,
        body=userinfo_body(
            sa,
            {"provider_name": "zoom", "profile_id": sa.access_token, "profile_connected": True},
            {"provider_name": "zoom", "profile_id": sa.access_token, "profile_connected": True},
        ),
    ),
    "malformed-relink-echo": lambda sim, sa, account: sim.fail(
        "userinfo",
        status=200,
        body=userinfo_body(
            sa,
            {
                "provider_name": "zoom",
                "profile_id": "pro_1",
                "profile_connected": False,
                "profile_relink_url": f"http://x/?t={sa.refresh_token}",
            },
        ),
    ),
}


@pytest.mark.parametrize("name", list(SCENARIOS))
def test_no_secret_anywhere(
    name, link_account, sim, scanner, caplog, django_capture_on_commit_callbacks
):
    caplog.set_level(logging.DEBUG)
    account, sim_account = link_account(conferencing_profiles=[sim.profile()])
    SCENARIOS[name](sim, sim_account, account)
    scanner.add(account.access_token, account.refresh_token)

    texts: list[str] = []
    with django_capture_on_commit_callbacks(execute=True):
        try:
            result = sync_account(account)
        except CronofyError as exc:
            texts += texts_of_exception(exc)
        else:
            texts += [repr(result), str(result)]

    account.refresh_from_db()
    scanner.add(account.access_token, account.refresh_token)  # after any refresh
    texts += [repr(account), str(account), account.last_sync_error, repr(get_client("us"))]
    texts += texts_of_logs(caplog)
    assert caplog.records  # the scan saw the logs
    assert_no_secret(texts, scanner.secrets())


def test_refresh_and_exchange_paths(sim, scanner, caplog):
    caplog.set_level(logging.DEBUG)
    client = get_client("us")
    texts: list[str] = []
    sim_account = sim.add_account()

    body = client.request_token(
        {"grant_type": "refresh_token", "refresh_token": sim_account.refresh_token},
        idempotent=True,
    )
    tokens = parse_token_response(body, expect_sub=False)
    texts += [repr(tokens), str(tokens), repr(client)]

    for code in ("no-such-code-12345", sim_account.refresh_token):
        try:
            linking.exchange_code("us", code, "https://example.com/cb")
        except CronofyError as exc:
            texts += texts_of_exception(exc)
            scanner.add(code)
        else:  # pragma: no cover
            pytest.fail("a bad code was accepted")
    texts += texts_of_logs(caplog)
    assert_no_secret(texts, scanner.secrets())


def test_the_scan_can_fail():
    with pytest.raises(AssertionError, match="a secret leaked"):
        assert_no_secret(["here is sekrit-value-1"], {"sekrit-value-1"})


# -- Django's HTML exception report (issue #10 item 2) ----------------------------------


def html_report_of(call) -> str:
    """The HTML report a forced error in ``call`` produces: the technical 500 page with
    DEBUG off, as ``AdminEmailHandler`` mails it (the frames' local variables included)."""
    import sys

    from django.views.debug import ExceptionReporter

    try:
        call()
    except Exception:
        exc_type, exc_value, tb = sys.exc_info()
    else:
        raise AssertionError("the forced error did not happen")
    return ExceptionReporter(None, exc_type, exc_value, tb, is_email=True).get_traceback_html()


class Forced(Exception):
    pass


def _raise_forced(*args, **kwargs):
    raise Forced("forced")


@pytest.fixture
def transport_breaks(monkeypatch):
    """Every request dies inside requests, below the app's frames. (``Session.send``:
    ``responses`` patches ``HTTPAdapter.send``, and undoing a patch of it out of order
    would leave the mock installed for every later test.)"""
    monkeypatch.setattr(requests.Session, "send", _raise_forced)


def _secrets_of(sim, account=None) -> set[str]:
    found = {DEFAULT_CLIENT_SECRET}
    for sa in sim.accounts.values():
        found |= {sa.access_token, sa.refresh_token}
    found |= set(sim.codes)
    if account is not None:
        found |= {account.access_token, account.refresh_token}
    return {s for s in found if s}


def _assert_clean(html: str, secrets: set[str]) -> None:
    assert "Local Vars" in html  # a real report, with frames
    assert "Forced" in html or "AttributeError" in html
    for secret in secrets:
        where = html.find(secret)
        assert where < 0, f"a secret is in the HTML exception report: {html[where - 300 : where]}"
    assert "Bearer " not in html


@pytest.mark.parametrize("where", ["transport", "after-the-answer"])
def test_refresh_error_report_has_no_secret(sim, link_account, monkeypatch, where):
    """Before: the refresh token, the client secret and the Authorization header were in
    the frames of tokens and client. After: none of them."""
    from django_cronofy_conferencing.accounts import tokens

    account, _ = link_account()
    _expired(account)
    if where == "transport":
        monkeypatch.setattr(requests.Session, "send", _raise_forced)
    else:
        monkeypatch.setattr(tokens, "expires_at", _raise_forced)
    html = html_report_of(lambda: sync_account(account))
    _assert_clean(html, _secrets_of(sim, account))


@pytest.mark.parametrize("where", ["transport", "after-the-answer"])
def test_code_exchange_error_report_has_no_secret(sim, monkeypatch, where):
    sim_account = sim.add_account()
    redirect = sim.authorize(
        linking.authorization_url("us", redirect_uri="https://example.com/cb", state="s"),
        account=sim_account,
    )
    code = redirect.split("code=")[1].split("&")[0]
    if where == "transport":
        monkeypatch.setattr(requests.Session, "send", _raise_forced)
    else:
        # Fails inside parse_token_response itself (a patched function's own frame
        # would hold the body it was given: a frame of this test, not of the app).
        from django_cronofy_conferencing.cronofy import tokens as token_payloads

        monkeypatch.setattr(token_payloads, "_PRINTABLE_ASCII", None)
    # The code is looked up inside the call: a local of this test would be in the report.
    html = html_report_of(
        lambda: linking.exchange_code("us", next(iter(sim.codes)), "https://example.com/cb")
    )
    _assert_clean(html, _secrets_of(sim) | {code})


def test_revoke_error_report_has_no_secret(sim, link_account, transport_breaks):
    account, _ = link_account()
    html = html_report_of(lambda: linking.unlink(account))
    _assert_clean(html, _secrets_of(sim, account))


@pytest.mark.parametrize("where", ["transport", "after-the-answer"])
def test_userinfo_error_report_has_no_secret(sim, link_account, monkeypatch, where):
    from django_cronofy_conferencing.sync import service as sync

    account, _ = link_account()
    if where == "transport":
        monkeypatch.setattr(requests.Session, "send", _raise_forced)
    else:
        monkeypatch.setattr(sync, "parse_userinfo", _raise_forced)
    html = html_report_of(lambda: sync_account(account))
    _assert_clean(html, _secrets_of(sim, account))
