"""The Django admin: find, filter, inspect, sync and unlink accounts without seeing a token.

Every admin page goes through ``ScanningClient`` (``tests.secret_scan``), which
fails the test if a token, a stored ciphertext or the staff_client secret appears.
"""

from __future__ import annotations

import re
import warnings
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet
from django.contrib.admin.models import DELETION, LogEntry
from django.contrib.auth import get_user_model
from django.db import connection
from django.test import override_settings
from django.test.utils import CaptureQueriesContext
from django.urls import reverse
from django.utils import timezone

from django_cronofy_conferencing.fields import EncryptedValue
from django_cronofy_conferencing.models import ConferencingProfile, LinkedAccount

pytestmark = pytest.mark.django_db

ACCOUNTS = "admin:cronofy_conferencing_linkedaccount_changelist"
PROFILES = "admin:cronofy_conferencing_conferencingprofile_changelist"


def account_change(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_change", args=[pk])


def account_delete(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_linkedaccount_delete", args=[pk])


def profile_change(pk: int) -> str:
    return reverse("admin:cronofy_conferencing_conferencingprofile_change", args=[pk])


def app_settings_with(**extra):
    from django.conf import settings

    return override_settings(CRONOFY_CONFERENCING={**settings.CRONOFY_CONFERENCING, **extra})


def messages_of(response) -> list[str]:
    return [str(m) for m in response.context["messages"]]


def results(response) -> list:
    return list(response.context["cl"].result_list)


def post_action(staff_client, action: str, ids, **extra):
    data = {"action": action, "_selected_action": [str(i) for i in ids], "index": 0, **extra}
    return staff_client.post(reverse(ACCOUNTS), data, follow=True)


# -- the account changelist --------------------------------------------------------


def test_account_changelist_columns(staff_client, accounts):
    _alice, _bob = accounts
    response = staff_client.get(reverse(ACCOUNTS))
    assert response.status_code == 200
    html = response.content.decode()
    assert "alice@cronofy.example" in html and "bob@cronofy.example" in html
    assert "1 / 2 connected" in html  # Alice: zoom connected, teams not
    assert "0 / 0 connected" in html
    assert 'class="cronofy-status cronofy-status-active"' in html
    assert 'class="cronofy-status cronofy-status-reauthorization_required"' in html
    assert "Reauthorization required" in html
    headers = [h.lower() for h in re.findall(r'<div class="text"><(?:a|span)[^>]*>([^<]+)<', html)]
    for column in (
        "user",
        "email",
        "data center",
        "status",
        "conferencing profiles",
        "last synced at",
        "consecutive failures",
    ):
        assert column in headers, headers


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"status__exact": "active"}, {"alice"}),
        ({"status__exact": "reauthorization_required"}, {"bob"}),
        ({"data_center__exact": "uk"}, {"bob"}),
        ({"account_type__exact": "service_account"}, {"bob"}),
        ({"q": "alice@cronofy"}, {"alice"}),  # email
        ({"q": "bob"}, {"bob"}),  # username and email
        ({"q": "alice@example.com"}, {"alice"}),  # the user's email
    ],
)
def test_account_filters_and_search(staff_client, accounts, params, expected):
    alice, _bob = accounts
    response = staff_client.get(reverse(ACCOUNTS), params)
    assert response.status_code == 200
    names = {"alice" if a.pk == alice.pk else "bob" for a in results(response)}
    assert names == expected


def test_account_search_by_sub(staff_client, accounts):
    alice, _bob = accounts
    response = staff_client.get(reverse(ACCOUNTS), {"q": alice.sub})
    assert [a.pk for a in results(response)] == [alice.pk]


def test_account_search_with_a_user_model_without_email_field(staff_client, accounts, monkeypatch):
    from django_cronofy_conferencing.admin import LinkedAccountAdmin

    User = get_user_model()
    monkeypatch.setattr(User, "EMAIL_FIELD", "no_such_field")
    fields = LinkedAccountAdmin(LinkedAccount, None).get_search_fields(None)
    assert fields == ["email", "sub", "user__username"]


# -- the account change form ---------------------------------------------------------


def test_account_change_form_shows_no_token(staff_client, accounts):
    alice, _bob = accounts
    alice.token_expires_at = timezone.now() + timedelta(minutes=42)
    LinkedAccount.objects.filter(pk=alice.pk).update(token_expires_at=alice.token_expires_at)
    response = staff_client.get(account_change(alice.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert "access_token" not in html and "refresh_token" not in html
    assert "Tokens stored" in html
    assert 'alt="True"' in html  # the stored-tokens boolean icon
    assert "Token expires at" in html
    # View-only: no form field for anything, no save button.
    assert 'name="_save"' not in html
    assert not re.search(r"<(textarea|select)\b", html)
    inputs = re.findall(r"<input\b[^>]*>", html)
    # Only the CSRF token, the navigation filter and the read-only inline's bookkeeping.
    assert all('type="hidden"' in i or 'id="nav-filter"' in i for i in inputs), inputs
    names = re.findall(r'name="([^"]+)"', " ".join(inputs))
    assert [n for n in names if "token" in n] == ["csrfmiddlewaretoken"] * names.count(
        "csrfmiddlewaretoken"
    )
    # The profiles inline, read-only, with a safe relink link.
    assert "alice@zoom.example" in html and "alice@teams.example" in html
    assert 'target="_blank" rel="noopener noreferrer"' in html


def test_account_change_form_has_no_token_fields():
    from django.contrib import admin

    model_admin = admin.site._registry[LinkedAccount]
    form = model_admin.get_form(None, None, change=True, fields=None)
    assert "access_token" not in form.base_fields
    assert "refresh_token" not in form.base_fields
    flat = [f for _, opts in model_admin.fieldsets for f in opts["fields"]]
    assert "access_token" not in flat and "refresh_token" not in flat


def test_accounts_cannot_be_added_or_edited(staff_client, accounts):
    alice, _bob = accounts
    assert (
        staff_client.get(reverse("admin:cronofy_conferencing_linkedaccount_add")).status_code == 403
    )
    response = staff_client.post(account_change(alice.pk), {"email": "changed@example.com"})
    assert response.status_code == 403
    alice.refresh_from_db()
    assert alice.email == "alice@cronofy.example"


def test_a_token_that_cannot_be_decrypted_does_not_break_the_admin(staff_client, accounts):
    alice, _bob = accounts
    LinkedAccount.objects.filter(pk=alice.pk).update(access_token="not-a-fernet-token")
    assert staff_client.get(reverse(ACCOUNTS)).status_code == 200
    assert staff_client.get(account_change(alice.pk)).status_code == 200


# -- "Sync now" ------------------------------------------------------------------------


def test_sync_now_syncs_each_account_and_reports(staff_client, accounts, sim):
    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(status=LinkedAccount.Status.ACTIVE)
    before = sim.count("userinfo")
    response = post_action(staff_client, "sync_now", [alice.pk, bob.pk])
    assert response.status_code == 200
    msgs = messages_of(response)
    assert len(msgs) == 2
    # Each message starts with a word, not the email (the admin capitalises a message's
    # first letter), and names the data center in words.
    assert (
        "Synced alice@cronofy.example (United States): 0 created, 0 updated, 0 removed, "
        "2 unchanged."
    ) in msgs
    assert any(m.startswith("Synced bob@cronofy.example (United Kingdom): 0 created") for m in msgs)
    assert sim.count("userinfo") == before + 2


def test_sync_now_reports_failures_per_account(staff_client, accounts, sim):
    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(status=LinkedAccount.Status.ACTIVE)
    sim.fail("userinfo", status=503, times=None, sub=bob.sub)
    response = post_action(staff_client, "sync_now", [alice.pk, bob.pk])
    msgs = messages_of(response)
    assert any(m.startswith("Synced alice@cronofy.example (United States)") for m in msgs)
    failed = [m for m in msgs if m.startswith("Sync of bob@cronofy.example (United Kingdom)")]
    assert len(failed) == 1
    levels = {str(m): m.level_tag for m in response.context["messages"]}
    assert levels[failed[0]] == "error"


def test_sync_now_skips_accounts_that_must_be_reconnected(staff_client, accounts, sim):
    """A sync cannot fix a dead grant: it would replace the account's useful error with a
    worse one and count a failure. The operator is pointed to the reconnect link."""
    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(
        last_sync_error="Cronofy refused the grant on POST /oauth/token (uk): invalid_grant.",
        consecutive_failures=1,
    )
    before = sim.count()
    response = post_action(staff_client, "sync_now", [alice.pk, bob.pk])
    msgs = messages_of(response)
    assert len(msgs) == 2
    assert any(m.startswith("Synced alice@cronofy.example") for m in msgs)
    skipped = [m for m in response.context["messages"] if str(m).startswith("Not synced: 1")]
    assert [m.level_tag for m in skipped] == ["warning"]
    assert "reconnect link" in str(skipped[0])
    assert sim.count() == before + 1  # alice's UserInfo only
    bob.refresh_from_db()
    assert bob.consecutive_failures == 1
    assert bob.last_sync_error.startswith("Cronofy refused the grant")


def test_sync_now_with_cronofy_down(staff_client, accounts, sim):
    alice, _bob = accounts
    sim.fail(
        "userinfo", status=503, times=None, body='{"client_secret": "sim_client_secret_0123456789"}'
    )
    response = post_action(staff_client, "sync_now", [alice.pk])
    [msg] = messages_of(response)
    # In words, what to do, and the technical detail folded (redacted).
    assert msg.startswith(
        "Sync of alice@cronofy.example (United States) failed: Cronofy could not be reached."
    )
    assert "Usually temporary: the next sync tries again." in msg
    assert "<details><summary>Technical detail</summary><code>Cronofy failed with HTTP 503" in msg
    assert "sim_client_secret" not in msg
    assert alice.conferencing_profiles.count() == 2


def test_sync_now_beyond_the_limit_syncs_in_batches(staff_client, accounts, sim):
    """Never refused: without a queue, batches of ADMIN_SYNC_MAX_ACCOUNTS, one message."""
    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(status=LinkedAccount.Status.ACTIVE)
    before = sim.count("userinfo")
    with app_settings_with(ADMIN_SYNC_MAX_ACCOUNTS=1):
        response = post_action(staff_client, "sync_now", [alice.pk, bob.pk])
    [message] = response.context["messages"]
    assert str(message) == "Synced 2 of 2 selected accounts."
    assert message.level_tag == "success"
    assert sim.count("userinfo") == before + 2


def test_sync_now_in_batches_stops_when_its_time_is_up(
    staff_client, accounts, sim, link_account, monkeypatch
):
    """Out of time after the first batch: the message says how many are left and how to
    go on; the least recently synced went first."""
    from django_cronofy_conferencing.admin import LinkedAccountAdmin

    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(
        status=LinkedAccount.Status.ACTIVE, last_synced_at=None
    )
    carol, _ = link_account(email="carol@cronofy.example")
    sim.fail("userinfo", status=503, times=None, sub=bob.sub)
    ticks = iter([0.0, 100.0, 200.0])
    monkeypatch.setattr(LinkedAccountAdmin, "clock", staticmethod(lambda: next(ticks)))
    with app_settings_with(ADMIN_SYNC_MAX_ACCOUNTS=2):
        response = post_action(staff_client, "sync_now", [alice.pk, bob.pk, carol.pk])
    [message] = response.context["messages"]
    assert message.level_tag == "warning"
    text = str(message)
    assert text.startswith(
        "Synced 1 of 3 selected accounts; 1 failed (Cronofy could not be reached: 1)."
    )
    assert "1 are left" in text and "Choose Sync now again" in text
    # Never synced (bob, carol) before the last synced (alice).
    assert LinkedAccount.objects.get(pk=carol.pk).last_synced_at is not None
    assert LinkedAccount.objects.get(pk=bob.pk).consecutive_failures == 1
    assert LinkedAccount.objects.get(pk=alice.pk).last_synced_at == alice.last_synced_at


@pytest.mark.django_db(transaction=True)  # enqueued on commit: no test transaction around it
def test_sync_now_queues_beyond_the_limit_with_celery(staff_client, accounts, sim, monkeypatch):
    from django_cronofy_conferencing import tasks

    alice, bob = accounts
    LinkedAccount.objects.filter(pk=bob.pk).update(status=LinkedAccount.Status.ACTIVE)
    queued = []
    monkeypatch.setattr(
        tasks.sync_account_task, "delay", lambda pk, lane: queued.append((pk, lane))
    )
    before = len(sim.requests)
    with app_settings_with(ADMIN_SYNC_MAX_ACCOUNTS=1, TASK_QUEUE="celery"):
        response = post_action(staff_client, "sync_now", [alice.pk, bob.pk])
    assert sorted(queued) == sorted([(alice.pk, "user"), (bob.pk, "user")])
    assert messages_of(response) == ["Queued 2 accounts for sync (TASK_QUEUE)."]
    assert len(sim.requests) == before


def test_sync_now_within_the_limit_is_synchronous_even_with_celery(
    staff_client, accounts, sim, monkeypatch
):
    from django_cronofy_conferencing import tasks

    alice, _bob = accounts
    queued = []
    monkeypatch.setattr(tasks.sync_account_task, "delay", queued.append)
    with app_settings_with(TASK_QUEUE="celery"):
        response = post_action(staff_client, "sync_now", [alice.pk])
    assert queued == []
    assert messages_of(response)[0].startswith("Synced alice@cronofy.example")


# -- "Unlink" and delete ------------------------------------------------------------------


def test_delete_selected_is_replaced_by_unlink(staff_client, accounts):
    html = staff_client.get(reverse(ACCOUNTS)).content.decode()
    assert 'value="delete_selected"' not in html
    assert 'value="unlink"' in html
    assert 'value="sync_now"' in html


def test_unlink_asks_for_confirmation_first(staff_client, accounts, sim):
    alice, bob = accounts
    response = post_action(staff_client, "unlink", [alice.pk, bob.pk])
    assert response.status_code == 200
    assert next(t.name for t in response.templates) == (
        "admin/cronofy_conferencing/linkedaccount/unlink_selected_confirmation.html"
    )
    html = response.content.decode()
    assert "alice@cronofy.example" in html and "bob@cronofy.example" in html
    assert 'name="post" value="yes"' in html
    assert sim.count("revoke") == 0
    assert LinkedAccount.objects.count() == 2


def test_unlink_revokes_and_deletes(staff_client, accounts, sim, admin_user):
    alice, bob = accounts
    response = post_action(staff_client, "unlink", [alice.pk, bob.pk], post="yes")
    msgs = messages_of(response)
    assert sorted(msgs) == [
        "Unlinked alice@cronofy.example (United States): access revoked at Cronofy, "
        "account deleted.",
        "Unlinked bob@cronofy.example (United Kingdom): access revoked at Cronofy, "
        "account deleted.",
    ]
    assert sim.count("revoke") == 2
    assert not LinkedAccount.objects.exists()
    assert not ConferencingProfile.objects.exists()
    logged = LogEntry.objects.filter(action_flag=DELETION, user=admin_user)
    assert {int(e.object_id) for e in logged} == {alice.pk, bob.pk}


@pytest.mark.parametrize("fault", [{"status": 503}, {"status": 429}])
def test_unlink_when_cronofy_is_unreachable_deletes_nothing(staff_client, accounts, sim, fault):
    alice, _bob = accounts
    sim.fail("revoke", times=None, **fault)
    response = post_action(staff_client, "unlink", [alice.pk], post="yes")
    [msg] = messages_of(response)
    assert "nothing was deleted" in msg
    assert LinkedAccount.objects.filter(pk=alice.pk).exists()
    assert alice.conferencing_profiles.count() == 2
    assert not LogEntry.objects.filter(action_flag=DELETION).exists()


def test_unlink_with_a_lost_encryption_key_deletes_and_says_so(staff_client, accounts, sim):
    """The token can never be decrypted again: the account is deleted, the admin told
    that the grant could not be revoked (and why)."""
    alice, _bob = accounts
    lost_key = Fernet(Fernet.generate_key())
    LinkedAccount.objects.filter(pk=alice.pk).update(
        refresh_token=EncryptedValue(lost_key.encrypt(b"an-old-token").decode())
    )
    response = post_action(staff_client, "unlink", [alice.pk], post="yes")
    [message] = response.context["messages"]
    assert message.level_tag == "warning"
    assert "could not be revoked at Cronofy" in str(message)
    assert "CRONOFY_CONFERENCING['ENCRYPTION_KEYS']" in str(message)
    assert not LinkedAccount.objects.filter(pk=alice.pk).exists()
    assert sim.count("revoke") == 0
    assert LogEntry.objects.filter(action_flag=DELETION, object_id=str(alice.pk)).exists()


def test_get_actions_accepts_the_action_location_of_django_6_1(staff_client, accounts, rf):
    """Django 6.1 warns (RemovedInDjango2028Warning) about a get_actions() override
    without ``action_location``; 5.2 never passes it."""
    from django.contrib import admin as django_admin
    from django.utils.inspect import get_func_args

    model_admin = django_admin.site._registry[LinkedAccount]
    assert "action_location" in get_func_args(model_admin.get_actions)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        html = staff_client.get(reverse(ACCOUNTS)).content.decode()
        staff_client.get(account_change(accounts[0].pk))
    assert 'value="sync_now"' in html and 'value="delete_selected"' not in html
    assert [str(w.message) for w in caught if "get_actions" in str(w.message)] == []
    try:
        from django.contrib.admin.options import ActionLocation
    except ImportError:  # Django < 6.1
        return
    request = rf.get("/")
    request.user = get_user_model().objects.get(username="admin")
    names = model_admin.get_actions(request, action_location=ActionLocation.CHANGE_LIST)
    assert set(names) == {"sync_now", "unlink"}


def test_unlink_refuses_beyond_the_limit(staff_client, accounts, sim):
    alice, bob = accounts
    with app_settings_with(ADMIN_SYNC_MAX_ACCOUNTS=1):
        response = post_action(staff_client, "unlink", [alice.pk, bob.pk], post="yes")
    assert "at most 1" in messages_of(response)[0]
    assert LinkedAccount.objects.count() == 2
    assert sim.count("revoke") == 0


def test_delete_from_the_change_form_unlinks(staff_client, accounts, sim):
    alice, _bob = accounts
    confirm = staff_client.get(account_delete(alice.pk))
    assert confirm.status_code == 200
    response = staff_client.post(account_delete(alice.pk), {"post": "yes"})
    assert response.status_code == 302
    assert response["Location"] == reverse(ACCOUNTS)
    assert sim.count("revoke") == 1
    assert not LinkedAccount.objects.filter(pk=alice.pk).exists()


def test_delete_from_the_change_form_when_cronofy_is_down(staff_client, accounts, sim):
    alice, _bob = accounts
    sim.fail("revoke", status=503, times=None)
    response = staff_client.post(account_delete(alice.pk), {"post": "yes"}, follow=True)
    assert response.redirect_chain[-1][0] == account_change(alice.pk)
    assert "nothing was deleted" in messages_of(response)[0]
    assert LinkedAccount.objects.filter(pk=alice.pk).exists()


def test_staff_without_permissions_cannot_act(accounts, scanning_client, django_user_model, sim):
    from django.contrib.auth.models import Permission

    staff = django_user_model.objects.create_user("staff", "staff@example.com", "pw", is_staff=True)
    staff.user_permissions.add(Permission.objects.get(codename="view_linkedaccount"))
    staff_client = scanning_client(staff)
    alice, _bob = accounts
    html = staff_client.get(reverse(ACCOUNTS)).content.decode()
    assert 'value="sync_now"' not in html and 'value="unlink"' not in html
    assert staff_client.post(account_delete(alice.pk), {"post": "yes"}).status_code == 403
    assert sim.count("revoke") == 0


# -- the profile admin ------------------------------------------------------------------------


@pytest.fixture
def profiles(make_plain_account, user):
    account = make_plain_account(user, "p@example.com")
    other = make_plain_account(user, "q@example.com")
    rows = [
        ConferencingProfile(
            account=account,
            profile_id="pro_zoom",
            provider_name="zoom",
            profile_name="zoom user",
            profile_connected=True,
        ),
        ConferencingProfile(
            account=account,
            profile_id="pro_new",
            provider_name="a_new_provider",
            profile_name="new user",
            profile_connected=False,
            profile_relink_url="https://app.cronofy.com/v2/relink/a_new_provider?x=1&y=2",
        ),
        ConferencingProfile(
            account=other,
            profile_id="pro_gone",
            provider_name="ms_teams",
            profile_name="teams user",
            profile_connected=True,
            removed_at=timezone.now(),
        ),
    ]
    ConferencingProfile.objects.bulk_create(rows)
    return {p.profile_id: p for p in ConferencingProfile.objects.all()}


@pytest.fixture
def make_plain_account(scanner, scan_ciphertexts):
    counter = iter(range(1, 100000))

    def make(user, email):
        n = next(counter)
        access, refresh = f"plain-access-{n}-secret", f"plain-refresh-{n}-secret"
        scanner.add(access, refresh)
        account = LinkedAccount.objects.create(
            user=user,
            data_center="us",
            sub=f"acc_plain{n}",
            email=email,
            access_token=access,
            refresh_token=refresh,
            last_synced_at=timezone.now(),
        )
        scan_ciphertexts()
        return account

    return make


def test_profile_changelist(staff_client, profiles):
    response = staff_client.get(reverse(PROFILES))
    assert response.status_code == 200
    html = response.content.decode()
    assert "Zoom" in html and "a_new_provider" in html
    link = re.search(
        r'<a href="([^"]+)" target="_blank" rel="noopener noreferrer">Relink</a>', html
    )
    assert link and link.group(1) == (
        "https://app.cronofy.com/v2/relink/a_new_provider?x=1&amp;y=2"
    )
    assert len(results(response)) == 3


def test_provider_filter_lists_the_values_present(staff_client, profiles):
    response = staff_client.get(reverse(PROFILES))
    spec = next(
        f for f in response.context["cl"].filter_specs if f.parameter_name == "provider_name"
    )
    assert [value for value, _label in spec.lookup_choices] == [
        "a_new_provider",
        "ms_teams",
        "zoom",
    ]
    filtered = staff_client.get(reverse(PROFILES), {"provider_name": "a_new_provider"})
    assert [p.profile_id for p in results(filtered)] == ["pro_new"]


@pytest.mark.parametrize(
    "params,expected",
    [
        ({"profile_connected__exact": "1"}, {"pro_zoom", "pro_gone"}),
        ({"profile_connected__exact": "0"}, {"pro_new"}),
        ({"presence": "present"}, {"pro_zoom", "pro_new"}),
        ({"presence": "removed"}, {"pro_gone"}),
        ({"q": "teams user"}, {"pro_gone"}),
        ({"q": "pro_new"}, {"pro_new"}),
    ],
)
def test_profile_filters_and_search(staff_client, profiles, params, expected):
    response = staff_client.get(reverse(PROFILES), params)
    assert {p.profile_id for p in results(response)} == expected


def test_profiles_are_read_only(staff_client, profiles):
    zoom = profiles["pro_zoom"]
    response = staff_client.get(profile_change(zoom.pk))
    assert response.status_code == 200
    html = response.content.decode()
    assert 'name="_save"' not in html
    assert "zoom user" in html
    add = reverse("admin:cronofy_conferencing_conferencingprofile_add")
    assert staff_client.get(add).status_code == 403
    assert staff_client.post(profile_change(zoom.pk), {"profile_name": "x"}).status_code == 403
    delete = reverse("admin:cronofy_conferencing_conferencingprofile_delete", args=[zoom.pk])
    assert staff_client.post(delete, {"post": "yes"}).status_code == 403
    zoom.refresh_from_db()
    assert zoom.profile_name == "zoom user"


def test_relink_link_only_for_https():
    from django_cronofy_conferencing.admin import relink_link

    assert relink_link("") == "-"
    assert relink_link("javascript:alert(1)") == "-"
    assert relink_link("http://app.cronofy.com/x") == "-"
    assert 'rel="noopener noreferrer"' in relink_link("https://app.cronofy.com/x")


# -- constant queries -----------------------------------------------------------------------


def _bulk_rows(count: int, start: int) -> None:
    User = get_user_model()
    users = User.objects.bulk_create(
        [
            User(username=f"bulk{start + i}", email=f"bulk{start + i}@example.com", password="!")
            for i in range(count)
        ]
    )
    statuses = list(LinkedAccount.Status)
    accounts = LinkedAccount.objects.bulk_create(
        [
            LinkedAccount(
                user=u,
                data_center="us",
                sub=f"acc_bulk{start + i}",
                email=f"bulk{start + i}@cronofy.example",
                status=statuses[i % len(statuses)],
                access_token=f"bulk-access-{start + i}",
                refresh_token=f"bulk-refresh-{start + i}",
                last_synced_at=timezone.now(),
            )
            for i, u in enumerate(users)
        ]
    )
    ConferencingProfile.objects.bulk_create(
        [
            ConferencingProfile(
                account=a,
                profile_id=f"pro_bulk{start + i}",
                provider_name=("zoom", "ms_teams", "go_to", f"prov{i % 7}")[i % 4],
                profile_name=f"user{start + i}",
                profile_connected=bool(i % 2),
                profile_relink_url="" if i % 2 else "https://app.cronofy.com/v2/relink/zoom",
            )
            for i, a in enumerate(accounts)
        ]
    )


def _count_queries(staff_client, path) -> int:
    with CaptureQueriesContext(connection) as ctx:
        response = staff_client.get(path)
    assert response.status_code == 200
    return len(ctx.captured_queries)


# session, user, filtered count, full count, the page (with the account's user and its
# profile counts), then one DISTINCT per list filter that lists database values
# (accounts: data center, account type; profiles: provider name).
ACCOUNT_CHANGELIST_QUERIES = 7
PROFILE_CHANGELIST_QUERIES = 6


@pytest.mark.parametrize(
    "changelist,expected",
    [(ACCOUNTS, ACCOUNT_CHANGELIST_QUERIES), (PROFILES, PROFILE_CHANGELIST_QUERIES)],
)
def test_changelist_queries_are_constant(staff_client, changelist, expected):
    _bulk_rows(5, 0)
    small = _count_queries(staff_client, reverse(changelist))
    _bulk_rows(495, 5)
    assert LinkedAccount.objects.count() == 500
    assert ConferencingProfile.objects.count() == 500
    large = _count_queries(staff_client, reverse(changelist))
    assert small == large == expected
    # Filtered and searched pages stay constant too.
    filtered = _count_queries(staff_client, reverse(changelist) + "?q=bulk1")
    assert filtered == expected
