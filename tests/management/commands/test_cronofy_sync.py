"""manage.py cronofy_sync: selection, dry run, output, exit status, threads."""

from __future__ import annotations

import io
import re
from datetime import timedelta

import pytest
from django.core.management import CommandError, call_command
from django.db import connection
from django.test.utils import CaptureQueriesContext
from django.utils import timezone

from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount
from django_cronofy_conferencing.testing import DEFAULT_CLIENT_SECRET

pytestmark = pytest.mark.django_db


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True


def run(*args, **kwargs) -> tuple[str, str]:
    out, err = kwargs.pop("stdout", io.StringIO()), io.StringIO()
    args = args if any(a.startswith("--concurrency") for a in args) else (*args, "--concurrency=1")
    call_command("cronofy_sync", *args, stdout=out, stderr=err, **kwargs)
    return out.getvalue(), err.getvalue()


def run_failing(*args, **kwargs) -> tuple[CommandError, str, str]:
    out, err = io.StringIO(), io.StringIO()
    with pytest.raises(CommandError) as excinfo:
        call_command("cronofy_sync", *args, "--concurrency=1", stdout=out, stderr=err, **kwargs)
    return excinfo.value, out.getvalue(), err.getvalue()


def synced_at(account, **delta) -> LinkedAccount:
    LinkedAccount.objects.filter(pk=account.pk).update(
        last_synced_at=timezone.now() - timedelta(**delta)
    )
    account.refresh_from_db()
    return account


@pytest.fixture
def fleet(sim, link_account, user):
    """never synced, stale, fresh, needs reauthorization, revoked (owned by ``user``)."""
    never, _ = link_account(user=user, conferencing_profiles=[sim.profile("zoom")])
    stale, _ = link_account(conferencing_profiles=[sim.profile("ms_teams")])
    synced_at(stale, hours=2)
    fresh, _ = link_account(conferencing_profiles=[sim.profile("go_to")])
    synced_at(fresh, minutes=5)
    reauth, _ = link_account(user=user)
    revoked, _ = link_account()
    LinkedAccount.objects.filter(pk=reauth.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    LinkedAccount.objects.filter(pk=revoked.pk).update(status=LinkedAccount.Status.REVOKED)
    return {"never": never, "stale": stale, "fresh": fresh, "reauth": reauth, "revoked": revoked}


def synced_subs(sim) -> list[str]:
    return sorted(r.sub for r in sim.requests if r.endpoint == "userinfo")


def test_default_syncs_the_due_accounts(sim, fleet):
    out, err = run()
    assert synced_subs(sim) == sorted([fleet["never"].sub, fleet["stale"].sub])
    assert re.search(
        r"^Synced 2 of 2 Cronofy accounts in \d+\.\ds: 2 changed, 0 unchanged, 0 failed\.$",
        out.strip(),
    ), out
    assert err == ""
    assert "\r" not in out  # not a terminal: no progress line
    assert ConferencingProfile.objects.count() == 2

    # Now nothing is due: it says why (all recently synced), and how to sync them anyway.
    out, _ = run()
    assert out.strip() == (
        "0 due of 3 active Cronofy accounts (5 linked): each was synced less than 3600 s ago "
        "(SYNC_STALE_AFTER); --all syncs them anyway."
    )
    assert len(synced_subs(sim)) == 2


def test_unchanged_accounts_are_counted(sim, fleet):
    run()
    out, _ = run("--stale-after", "0")
    assert "Synced 3 of 3 Cronofy accounts" in out
    assert "1 changed, 2 unchanged, 0 failed" in out  # fresh's go_to profile was new


def test_stale_after(sim, fleet):
    run("--stale-after", "60")
    assert synced_subs(sim) == sorted(fleet[k].sub for k in ("never", "stale", "fresh"))


def test_all_syncs_every_active_account(sim, fleet):
    out, _ = run("--all")
    assert synced_subs(sim) == sorted(fleet[k].sub for k in ("never", "stale", "fresh"))
    assert "Synced 3 of 3" in out


def test_account_selects_accounts_due_or_not(sim, fleet):
    out, err = run("--account", str(fleet["fresh"].pk), "--account", str(fleet["revoked"].pk))
    assert synced_subs(sim) == [fleet["fresh"].sub]
    assert "Synced 1 of 1 Cronofy account " in out
    assert f"Skipped account {fleet['revoked'].pk} " in err
    assert "revoked" in err


def test_account_with_stale_after_syncs_only_the_due_ones(sim, fleet):
    run(
        "--account",
        str(fleet["fresh"].pk),
        "--account",
        str(fleet["stale"].pk),
        "--stale-after=600",
    )
    assert synced_subs(sim) == [fleet["stale"].sub]


def test_unknown_account_is_an_error(sim, fleet):
    error, _, _ = run_failing("--account", "999999", "--account", str(fleet["never"].pk))
    assert "999999" in str(error)
    assert sim.requests == []


@pytest.mark.parametrize("how", ["username", "id"])
def test_user_by_username_or_id(sim, fleet, user, how):
    value = user.username if how == "username" else str(user.pk)
    _, err = run("--user", value)
    assert synced_subs(sim) == [fleet["never"].sub]
    assert "reauthorization required" in err


def test_user_and_account_add_up(sim, fleet, user):
    run("--user", user.username, "--account", str(fleet["fresh"].pk))
    assert synced_subs(sim) == sorted([fleet["never"].sub, fleet["fresh"].sub])


def test_unknown_user_is_an_error(sim, fleet):
    error, _, _ = run_failing("--user", "nobody")
    assert "nobody" in str(error)


@pytest.mark.parametrize(
    "args",
    [
        ("--all", "--account", "1"),
        ("--all", "--stale-after", "5"),
        ("--concurrency", "0"),
        ("--stale-after", "-1"),
        ("--chunk-size", "0"),
    ],
)
def test_bad_combinations_are_errors(sim, fleet, args):
    with pytest.raises(CommandError):
        call_command("cronofy_sync", *args, stdout=io.StringIO(), stderr=io.StringIO())
    assert sim.requests == []


def test_dry_run_lists_and_calls_nothing(sim, fleet):
    out, _ = run("--dry-run")
    assert sim.requests == []
    lines = out.strip().splitlines()
    assert lines[-1] == "Would sync 2 accounts (dry run: nothing was called)."
    assert lines[0].startswith("Due: 1 never synced, 0 with a confirmed push channel")
    assert "1 without (older than SYNC_STALE_AFTER)" in lines[0]
    assert lines[1].startswith(f"{fleet['never'].pk} (")
    assert "last synced: never" in lines[1]
    assert lines[2].startswith(f"{fleet['stale'].pk} (")
    assert LinkedAccount.objects.filter(last_synced_at__isnull=False).count() == 2
    out, _ = run("--dry-run", "--account", str(fleet["fresh"].pk))
    assert out.strip().endswith("Would sync 1 account (dry run: nothing was called).")


def test_failures_exit_with_status_1_and_a_summary_by_reason(sim, fleet, link_account):
    broken, broken_sim = link_account()
    sim.revoke_grant(broken_sim.sub)
    sim.fail("userinfo", status=503, times=None, sub=fleet["stale"].sub)
    error, out, err = run_failing()
    assert error.returncode == 1
    assert str(error) == "2 of 3 Cronofy accounts failed to sync (run with -v 2 for the errors)."
    assert "Synced 1 of 3 Cronofy accounts" in out
    assert "2 failed (CronofyUnavailable: 1, InvalidGrant: 1)." in out
    assert err == ""
    broken.refresh_from_db()
    assert broken.status == LinkedAccount.Status.REAUTHORIZATION_REQUIRED


def test_verbosity_2_shows_each_error_redacted(sim, fleet):
    sim.fail(
        "userinfo",
        status=500,
        body=f'{{"leak": "{fleet["stale"].access_token}", "secret": "{DEFAULT_CLIENT_SECRET}"}}',
        times=None,
        sub=fleet["stale"].sub,
    )
    error, out, err = run_failing("-v", "2")
    assert f"Account {fleet['stale'].pk} (" in err
    assert "CronofyUnavailable" in err
    assert str(error) == "1 of 2 Cronofy accounts failed to sync."
    for text in (out, err, str(error)):
        assert fleet["stale"].access_token not in text
        assert DEFAULT_CLIENT_SECRET not in text


def test_verbosity_2_lists_every_account(sim, fleet):
    out, _ = run("-v", "2")
    assert f"Account {fleet['never'].pk} (" in out
    assert "synced: changed" in out


def test_no_account_linked_yet():
    out, _ = run()
    assert out.strip() == "No Cronofy accounts are linked yet."


def test_selected_accounts_that_cannot_be_synced(sim, fleet):
    out, err = run("--account", str(fleet["revoked"].pk))
    assert out.strip() == "None of the selected accounts could be synced (3 active of 5 linked)."
    assert "Skipped account" in err


def test_one_line_per_failure_without_logging_configured(sim, fleet, capsys):
    """A host project with no LOGGING for the app: the command's line is the only one."""
    import logging

    library = logging.getLogger("django_cronofy_conferencing")
    library.propagate = False  # as in a project without handlers: Python's last resort prints
    try:
        sim.revoke_grant(fleet["stale"].sub)
        sim.expire_access_token(fleet["stale"].sub)
        error, _out, err = run_failing("-v", "2")
    finally:
        library.propagate = True
    printed = err + capsys.readouterr().err
    failure_lines = [line for line in printed.splitlines() if str(fleet["stale"].pk) in line]
    assert len(failure_lines) == 1, printed
    assert failure_lines[0].startswith(f"Account {fleet['stale'].pk} (")
    assert str(error) == "1 of 2 Cronofy accounts failed to sync."


def test_verbosity_0_is_silent_on_success(sim, fleet):
    assert run("-v", "0") == ("", "")


def test_progress_on_a_terminal_only(sim, fleet, monkeypatch):
    from django_cronofy_conferencing.management.commands import cronofy_sync

    monkeypatch.setattr(cronofy_sync, "PROGRESS_INTERVAL", 0)
    tty = TTY()
    out, _ = run(stdout=tty)
    assert "\rSyncing Cronofy accounts: 0/2, 0 failed" in out
    assert "2/2, 0 failed" in out
    assert "\r\x1b[K" in out  # the line is cleared before the summary
    assert out.rstrip().endswith("2 changed, 0 unchanged, 0 failed.")


def test_accounts_are_read_in_chunks(sim, link_account):
    for _ in range(5):
        link_account()
    with CaptureQueriesContext(connection) as queries:
        run("--chunk-size", "2")
    reads = [
        q["sql"]
        for q in queries.captured_queries
        if 'FROM "cronofy_conferencing_linkedaccount"' in q["sql"]
        and "LIMIT 2" in q["sql"]
        and "FOR UPDATE" not in q["sql"]
    ]
    # The never-synced class in chunks of 2 (2 + 2 + 1), and one read for each of the
    # sweep's other classes (failing, disconnected, the rest: sync.order), all empty.
    assert len(reads) == 6
    assert len(synced_subs(sim)) == 5


@pytest.mark.django_db(transaction=True)
def test_threads(sim, link_account):
    accounts = [link_account(conferencing_profiles=[sim.profile("zoom")])[0] for _ in range(24)]
    sim.fail("userinfo", delay=0.01, times=None)
    out, _ = run("--concurrency", "6")
    assert "Synced 24 of 24 Cronofy accounts" in out
    assert ConferencingProfile.objects.count() == 24
    assert sorted(synced_subs(sim)) == sorted(a.sub for a in accounts)


# -- --queue: hand the accounts to TASK_QUEUE ------------------------------------------


def test_queue_needs_a_configured_queue(sim, link_account):
    link_account()
    with pytest.raises(CommandError, match=r"--queue needs a queue.*\['TASK_QUEUE'\]"):
        run("--queue")
    assert sim.requests == []


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_queue_hands_the_due_accounts_to_the_queue_and_calls_nothing(sim, link_account):
    pytest.importorskip("django_tasks_db")
    from tests.conftest import enqueued, queue, tasks_backend

    due = [link_account()[0] for _ in range(3)]
    fresh, _ = link_account()
    LinkedAccount.objects.filter(pk=fresh.pk).update(last_synced_at=timezone.now())
    with queue("django", TASKS=tasks_backend("dummy.DummyBackend")):
        from django_cronofy_conferencing.queueing.django_tasks import sync_account_task

        backend = sync_account_task.get_backend()
        backend.clear()
        out, _err = run("--queue")
        args = enqueued(backend)
        backend.clear()
    assert "Queued 3 Cronofy accounts for sync (django)." in out
    assert sorted(a[0] for a in args) == sorted(a.pk for a in due)
    assert sim.requests == []


# -- saying why nothing was synced (issue 20 §4) ------------------------------------------


@pytest.fixture
def dead_fleet(link_account):
    """Two accounts whose grants are gone: one needs reauthorization, one was revoked."""
    reauth, _ = link_account()
    revoked, _ = link_account()
    LinkedAccount.objects.filter(pk=reauth.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    LinkedAccount.objects.filter(pk=revoked.pk).update(status=LinkedAccount.Status.REVOKED)


@pytest.mark.parametrize("args", [(), ("--all",), ("--stale-after", "0")])
def test_when_every_account_is_dead_it_says_why_nothing_is_due(sim, dead_fleet, args):
    out, err = run(*args)
    assert out.strip() == (
        "Nothing to sync: none of the 2 linked Cronofy accounts is active (1 needs "
        "reauthorization, 1 revoked). Their users must connect Cronofy again; no sync can "
        "work until they do."
    )
    assert err == "" and sim.count() == 0


def test_nothing_due_names_the_stale_after_it_used(sim, fleet):
    run("--all")
    out, _ = run("--stale-after", "7200")
    assert out.strip().endswith(
        "each was synced less than 7200 s ago (--stale-after); --all syncs them anyway."
    )


@pytest.mark.parametrize(
    "value", [str(2**63), "9" * 30, "0", "-1", "\u0661", "\u00b2"], ids=lambda v: repr(v)
)
def test_an_account_option_that_is_no_id_is_refused_by_the_parser(sim, fleet, value):
    """Past a 64-bit key SQLite raised OverflowError (a traceback); an Arabic-Indic one
    was read as account 1."""
    with pytest.raises(CommandError, match="invalid account id value"):
        run("--account", value)
    assert sim.count() == 0
