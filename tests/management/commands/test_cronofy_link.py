"""cronofy_link: tokens from the environment or stdin, never argv, never printed."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from django_cronofy_conferencing.management.commands import cronofy_link
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db

ROOT = Path(__file__).resolve().parents[3]


class Run:
    def __init__(self, stdout: str, stderr: str) -> None:
        self.stdout, self.stderr = stdout, stderr

    @property
    def text(self) -> str:
        return self.stdout + self.stderr


@pytest.fixture(autouse=True)
def _no_token_env(monkeypatch):
    for name in (
        cronofy_link.ENV_ACCESS_TOKEN,
        cronofy_link.ENV_REFRESH_TOKEN,
        cronofy_link.ENV_EXPIRES_IN,
    ):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def run(caplog):
    caplog.set_level(logging.DEBUG, logger="django_cronofy_conferencing")

    def run(*args, stdin: str | None = None, **options) -> Run:
        out, err = io.StringIO(), io.StringIO()
        if stdin is not None:
            options["stdin"] = io.StringIO(stdin)
        call_command("cronofy_link", *args, stdout=out, stderr=err, **options)
        return Run(out.getvalue(), err.getvalue())

    return run


def set_env(monkeypatch, sim_account, expires_in=None):
    monkeypatch.setenv(cronofy_link.ENV_ACCESS_TOKEN, sim_account.access_token)
    monkeypatch.setenv(cronofy_link.ENV_REFRESH_TOKEN, sim_account.refresh_token)
    if expires_in is not None:
        monkeypatch.setenv(cronofy_link.ENV_EXPIRES_IN, str(expires_in))


def assert_no_tokens(sim, *texts: str) -> None:
    secrets = {DEFAULT_CLIENT_SECRET} | set(sim.access_tokens) | set(sim.refresh_tokens)
    for account in sim.accounts.values():
        secrets |= {account.access_token, account.refresh_token}
    for text in texts:
        for secret in secrets - {""}:
            assert secret not in text


def test_links_from_environment_variables(sim, user, run, monkeypatch, caplog):
    sim_account = sim.add_account(
        data_center="uk",
        email="jane@example.com",
        conferencing_profiles=[sim.profile("zoom"), sim.profile("ms_teams")],
    )
    set_env(monkeypatch, sim_account, expires_in=1800)
    result = run("--user", "alice", "--data-center", "uk")

    account = LinkedAccount.objects.get()
    assert (account.user, account.data_center, account.sub) == (user, "uk", sim_account.sub)
    assert account.access_token == sim_account.access_token
    assert account.refresh_token == sim_account.refresh_token
    assert account.token_expires_at > timezone.now() + timedelta(minutes=29)
    assert account.token_expires_at < timezone.now() + timedelta(minutes=31)
    assert ConferencingProfile.objects.filter(account=account).count() == 2
    assert f"Linked Cronofy account {sim_account.sub}" in result.stdout
    assert "jane@example.com" in result.stdout
    assert "for user alice" in result.stdout
    assert "2 added" in result.stdout
    assert {r.data_center for r in sim.requests} == {"uk"}
    assert_no_tokens(sim, result.text, caplog.text)


def test_user_by_id_and_default_data_center(sim, user, run, monkeypatch):
    sim_account = sim.add_account(data_center="us")
    set_env(monkeypatch, sim_account)
    run("--user", str(user.pk))
    account = LinkedAccount.objects.get()
    assert (account.user, account.data_center) == (user, "us")
    assert account.token_expires_at is None  # unknown: refreshed after a 401


def test_reads_two_lines_from_stdin(sim, user, run, caplog):
    sim_account = sim.add_account(data_center="de")
    result = run(
        "--user",
        "alice",
        "--data-center",
        "de",
        stdin=f"{sim_account.access_token}\n{sim_account.refresh_token}\n",
    )
    assert LinkedAccount.objects.get().sub == sim_account.sub
    assert_no_tokens(sim, result.text, caplog.text)


def test_reads_json_from_stdin(sim, user, run):
    sim_account = sim.add_account()
    body = json.dumps(
        {
            "access_token": sim_account.access_token,
            "refresh_token": sim_account.refresh_token,
            "expires_in": 3600,
        }
    )
    run("--user", "alice", stdin=body)
    account = LinkedAccount.objects.get()
    assert account.token_expires_at > timezone.now() + timedelta(minutes=59)


def test_prompts_without_echo_on_a_terminal(sim, user, run, monkeypatch):
    sim_account = sim.add_account()
    answers = iter([sim_account.access_token, sim_account.refresh_token])
    prompts = []

    def fake_getpass(prompt, stream=None):
        prompts.append(prompt)
        return next(answers)

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    monkeypatch.setattr(cronofy_link.getpass, "getpass", fake_getpass)
    out = io.StringIO()
    call_command("cronofy_link", "--user", "alice", stdin=Terminal(), stdout=out)
    assert prompts == ["Cronofy access token: ", "Cronofy refresh token: "]
    assert LinkedAccount.objects.get().sub == sim_account.sub


@pytest.mark.parametrize(
    "argv",
    [
        ["--access-token", "tok_ARGV_SECRET_1"],
        ["--access-token=tok_ARGV_SECRET_1"],
        ["--refresh-token", "tok_ARGV_SECRET_1"],
        ["--token", "tok_ARGV_SECRET_1"],
        ["--acc=tok_ARGV_SECRET_1"],  # no abbreviations
        ["--tok=tok_ARGV_SECRET_1"],  # would be ambiguous (--token, --tokens)
        ["--user=alice", "--tokens", "tok_ARGV_SECRET_1"],
        ["tok_ARGV_SECRET_1"],
        ["tok_ARGV_SECRET_1", "tok_ARGV_SECRET_2"],
        ["--bogus=tok_ARGV_SECRET_1"],
    ],
)
def test_refuses_tokens_in_argv_without_echoing_them(sim, user, run, monkeypatch, argv):
    sim_account = sim.add_account()
    set_env(monkeypatch, sim_account)  # even with valid tokens in the environment
    with pytest.raises(CommandError) as excinfo:
        run("--user", "alice", *argv)
    message = str(excinfo.value)
    assert "never read from the command line" in message
    assert "tok_ARGV_SECRET" not in message
    assert not LinkedAccount.objects.exists()
    assert sim.count() == 0


def test_refuses_tokens_in_argv_from_a_real_command_line(tmp_path):
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in (cronofy_link.ENV_ACCESS_TOKEN, cronofy_link.ENV_REFRESH_TOKEN)
    }
    env["DJANGO_SETTINGS_MODULE"] = "tests.settings"
    for argv in (
        ["--access-token", "tok_CLI_SECRET_9"],
        ["tok_CLI_SECRET_9"],
        ["--x=tok_CLI_SECRET_9"],
    ):
        proc = subprocess.run(
            [sys.executable, "manage.py", "cronofy_link", "--user", "alice", *argv],
            cwd=ROOT,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode != 0
        assert "never read from the command line" in proc.stderr
        assert "tok_CLI_SECRET_9" not in proc.stdout + proc.stderr


def test_help_mentions_the_environment_variables(capsys):
    with pytest.raises(SystemExit):
        call_command("cronofy_link", "--help")
    text = capsys.readouterr().out
    assert cronofy_link.ENV_ACCESS_TOKEN in text
    assert cronofy_link.ENV_REFRESH_TOKEN in text


def test_help_is_short_and_clean(capsys):
    with pytest.raises(SystemExit):
        call_command("cronofy_link", "--help")
    text = capsys.readouterr().out
    assert "stray" not in text
    assert "positional" not in text
    assert "Refused" not in text and cronofy_link.ARGV_REFUSED[:40] not in " ".join(text.split())
    for hidden in ("--access-token", "--refresh-token", "--tokens", "--pythonpath", "--version"):
        assert hidden not in text
    assert "--user USER" in text and "--data-center" in text and "--no-sync" in text
    assert len(text.splitlines()) < 30


class Terminal(io.StringIO):
    def isatty(self):
        return True


def test_ctrl_c_at_the_prompt_exits_quietly_with_130(sim, user, monkeypatch, capsys):
    def interrupted(prompt, stream=None):
        raise KeyboardInterrupt

    monkeypatch.setattr(cronofy_link.getpass, "getpass", interrupted)
    err = io.StringIO()
    with pytest.raises(SystemExit) as excinfo:
        call_command("cronofy_link", "--user", "alice", stdin=Terminal(), stderr=err)
    assert excinfo.value.code == 130
    assert "Traceback" not in err.getvalue() + capsys.readouterr().err
    assert not LinkedAccount.objects.exists()


def test_end_of_input_at_the_prompt_is_a_clear_error(sim, user, monkeypatch):
    def eof(prompt, stream=None):
        raise EOFError

    monkeypatch.setattr(cronofy_link.getpass, "getpass", eof)
    with pytest.raises(CommandError, match="No tokens given"):
        call_command("cronofy_link", "--user", "alice", stdin=Terminal())


def test_one_environment_variable_is_not_enough(sim, user, run, monkeypatch):
    sim_account = sim.add_account()
    monkeypatch.setenv(cronofy_link.ENV_ACCESS_TOKEN, sim_account.access_token)
    with pytest.raises(CommandError, match=cronofy_link.ENV_REFRESH_TOKEN) as excinfo:
        run("--user", "alice")
    assert sim_account.access_token not in str(excinfo.value)


@pytest.mark.parametrize(
    "stdin",
    ["", "only-one-line-token\n", "a\nb\nc\n", "{not json", '{"access_token": 1}', "[1, 2]"],
)
def test_bad_stdin(sim, user, run, stdin):
    with pytest.raises(CommandError) as excinfo:
        run("--user", "alice", stdin=stdin)
    assert "only-one-line-token" not in str(excinfo.value)
    assert not LinkedAccount.objects.exists()
    assert sim.count() == 0


def test_a_token_with_spaces_is_refused_without_echo(sim, user, run):
    with pytest.raises(CommandError, match="not a token") as excinfo:
        run("--user", "alice", stdin="secret with spaces\nrefresh-tok-1\n")
    assert "secret with spaces" not in str(excinfo.value)


def test_unknown_user(sim, run, monkeypatch):
    set_env(monkeypatch, sim.add_account())
    with pytest.raises(CommandError, match="No user"):
        run("--user", "nobody")


def test_unknown_data_center(sim, user, run, monkeypatch):
    set_env(monkeypatch, sim.add_account())
    with pytest.raises(CommandError, match="Unknown data center 'xx'"):
        run("--user", "alice", "--data-center", "xx")
    assert sim.count() == 0


def test_expired_access_token_is_refreshed_first(sim, user, run, monkeypatch, caplog):
    sim_account = sim.add_account(data_center="ca")
    set_env(monkeypatch, sim_account)
    sim.expire_access_token(sim_account.sub)
    result = run("--user", "alice", "--data-center", "ca")
    account = LinkedAccount.objects.get()
    assert account.access_token == sim_account.access_token  # the refreshed one
    assert account.token_expires_at is not None
    assert [(r.endpoint, r.status) for r in sim.requests][:3] == [
        ("userinfo", 401),
        ("token", 200),
        ("userinfo", 200),
    ]
    assert_no_tokens(sim, result.text, caplog.text)


def test_the_refresh_is_oauth_refresh_tokens(sim, user, run, monkeypatch):
    """One implementation of the refresh request (and of keeping a refresh token
    Cronofy did not send back)."""
    from django_cronofy_conferencing.accounts import tokens

    sim.refresh_returns_refresh_token = False
    sim_account = sim.add_account()
    set_env(monkeypatch, sim_account)
    sim.expire_access_token(sim_account.sub)
    calls = []
    real = tokens.refresh_tokens

    def spy(data_center, refresh_token, **kwargs):
        calls.append((data_center, refresh_token))
        return real(data_center, refresh_token, **kwargs)

    monkeypatch.setattr(tokens, "refresh_tokens", spy)
    run("--user", "alice")
    assert calls == [("us", sim_account.refresh_token)]
    assert LinkedAccount.objects.get().refresh_token == sim_account.refresh_token


def test_dead_tokens(sim, user, run, monkeypatch):
    sim_account = sim.add_account()
    set_env(monkeypatch, sim_account)
    sim.revoke_grant(sim_account.sub)
    with pytest.raises(CommandError, match="rejected both tokens") as excinfo:
        run("--user", "alice")
    assert_no_tokens(sim, str(excinfo.value))
    assert not LinkedAccount.objects.exists()


def test_wrong_data_center(sim, user, run, monkeypatch):
    set_env(monkeypatch, sim.add_account(data_center="uk"))
    with pytest.raises(CommandError, match="right data center"):
        run("--user", "alice", "--data-center", "us")


def test_cronofy_down(sim, user, run, monkeypatch):
    set_env(monkeypatch, sim.add_account())
    sim.fail("userinfo", status=503, times=None)
    with pytest.raises(CommandError, match="Could not link the account"):
        run("--user", "alice")
    assert not LinkedAccount.objects.exists()


def test_relink_updates(sim, user, run, monkeypatch, link_account):
    account, sim_account = link_account(user=user)
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    set_env(monkeypatch, sim_account)
    result = run("--user", "alice")
    assert result.stdout.startswith("Updated Cronofy account")
    account.refresh_from_db()
    assert account.status == LinkedAccount.Status.ACTIVE


def test_another_users_account_is_refused(sim, user, other_user, run, monkeypatch, link_account):
    account, sim_account = link_account(user=other_user)
    set_env(monkeypatch, sim_account)
    with pytest.raises(CommandError, match="already linked to another user"):
        run("--user", "alice")
    account.refresh_from_db()
    assert account.user == other_user


def test_a_failed_first_sync_is_reported_and_the_account_kept(sim, user, run, monkeypatch, caplog):
    sim_account = sim.add_account()
    set_env(monkeypatch, sim_account)
    # UserInfo answers once (to learn the sub), then Cronofy goes down.
    calls = {"n": 0}
    real_handle = sim.handle

    def handle(request, data_center=None):
        if request.path == "/v1/userinfo":
            calls["n"] += 1
            if calls["n"] > 1:
                sim.fail("userinfo", status=503, times=None)
        return real_handle(request, data_center)

    monkeypatch.setattr(sim, "handle", handle)
    result = run("--user", "alice")
    assert LinkedAccount.objects.get().last_synced_at is None
    assert "the first sync failed" in result.stderr
    assert_no_tokens(sim, result.text, caplog.text)


def test_no_sync(sim, user, run, monkeypatch):
    set_env(monkeypatch, sim.add_account(conferencing_profiles=[sim.profile("zoom")]))
    result = run("--user", "alice", "--no-sync")
    assert not ConferencingProfile.objects.exists()
    assert sim.count("userinfo") == 1  # only to learn the sub
    assert "Synced" not in result.stdout


# -- expires_in as strict as Cronofy's own answers (issue 20 §2.4) -------------------------


@pytest.mark.parametrize(
    "given, message",
    [
        ("99999999999999", "expires_in must be at most 31622400 seconds."),
        (str(2**63), "expires_in must be at most 31622400 seconds."),
        ("-1", "expires_in must not be negative."),
        ("soon", "expires_in must be a number of seconds."),
    ],
)
def test_an_expiry_no_token_has_is_refused_before_anything_is_stored(
    sim, user, run, monkeypatch, given, message
):
    sim_account = sim.add_account()
    set_env(monkeypatch, sim_account)
    monkeypatch.setenv(cronofy_link.ENV_EXPIRES_IN, given)
    with pytest.raises(CommandError, match=message):
        run("--user", "alice")
    assert not LinkedAccount.objects.exists()


def test_an_infinite_expiry_on_stdin_is_refused(sim, user, run):
    sim_account = sim.add_account()
    stdin = (
        f'{{"access_token": "{sim_account.access_token}", '
        f'"refresh_token": "{sim_account.refresh_token}", "expires_in": Infinity}}'
    )
    with pytest.raises(CommandError, match="expires_in must be a number of seconds"):
        run("--user", "alice", stdin=stdin)
    assert not LinkedAccount.objects.exists()
