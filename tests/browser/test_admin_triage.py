"""The admin as a new operator sees it (issue 23): headless Chromium at 1280 px, 43 accounts
with long, realistic emails. The status shows without scrolling; axe-core finds no violation
on the account list, an account's page and the fleet page.

Served by pytest-django's ``live_server`` (with the admin's static files) from the test
database; the browser is started inside each test, after the rows are written (the ORM
must not run while Playwright's event loop is running on this thread).
"""

from __future__ import annotations

from contextlib import contextmanager
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client
from django.utils import timezone

from django_cronofy_conferencing.models import (
    CalendarProfile,
    ConferencingProfile,
    LinkedAccount,
    PushNotification,
)
from tests.browser.conftest import CHROMIUM, CHROMIUM_ARGS, _chromium_available, run_axe
from tests.conftest import require_service

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

WIDTH, HEIGHT = 1280, 900
Status = LinkedAccount.Status
ERRORS = (
    "Cronofy failed with HTTP 503 on GET /v1/userinfo (us).",
    "Cronofy rate limit reached on GET /v1/userinfo (us).",
)


def long_email(n: int) -> str:
    return f"firstname.lastname.staff{n:03d}@regional-office.example-healthcare-group.com"


@pytest.fixture
def operator_site(live_server, django_user_model):
    """43 accounts as a real fleet has them, and a logged-in superuser's session cookie."""
    admin = django_user_model.objects.create_superuser("operator", "ops@example.com", "pw")
    now = timezone.now()
    statuses = [Status.ACTIVE] * 5 + [Status.REAUTHORIZATION_REQUIRED, Status.REVOKED]
    accounts = LinkedAccount.objects.bulk_create(
        [
            LinkedAccount(
                data_center=("us", "uk", "de")[n % 3],
                sub=f"acc_browser{n:03d}",
                email=long_email(n),
                account_type=("account", "service_account")[n % 2],
                status=statuses[n % len(statuses)],
                access_token=f"browser-access-{n}",
                refresh_token=f"browser-refresh-{n}",
                last_synced_at=now - timedelta(minutes=n),
                consecutive_failures=n % 4 == 1,
                last_sync_error=ERRORS[n % 2] if n % 4 == 1 else "",
                channel_id=f"chn_browser{n}" if n % 5 else "",
            )
            for n in range(43)
        ]
    )
    for account in accounts[:6]:
        ConferencingProfile.objects.create(
            account=account,
            profile_id=f"pro_z{account.pk}",
            provider_name="zoom",
            profile_name=account.email,
            profile_connected=account.pk % 2 == 0,
            profile_relink_url=""
            if account.pk % 2 == 0
            else "https://app.cronofy.com/v2/relink/zoom?token=abc",
        )
        CalendarProfile.objects.create(
            account=account,
            profile_id=f"pro_g{account.pk}",
            provider_name="google",
            profile_name=account.email,
            profile_connected=True,
            calendars=[{"calendar_id": "cal_1", "calendar_name": "Work", "calendar_primary": True}],
        )
    PushNotification.objects.create(
        notification_type="change", signature_valid=True, outcome="resynced", account=accounts[0]
    )
    reauth = next(a for a in accounts if a.status == Status.REAUTHORIZATION_REQUIRED)
    failing = next(a for a in accounts if a.consecutive_failures and a.status == Status.ACTIVE)
    client = Client()
    client.force_login(admin)
    cookie = {
        "name": settings.SESSION_COOKIE_NAME,
        "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
        "url": live_server.url,
    }
    return live_server.url, cookie, {"reauth": reauth.pk, "failing": failing.pk}


@contextmanager
def chromium_page(base_url: str, cookie: dict):
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service(False, "the playwright package is not installed (pip install playwright)")
    require_service(
        _chromium_available(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
        )
        try:
            context = browser.new_context(
                base_url=base_url, viewport={"width": WIDTH, "height": HEIGHT}
            )
            context.set_default_timeout(20_000)
            context.add_cookies([cookie])
            yield context.new_page()
        finally:
            browser.close()


def test_status_is_visible_without_scrolling_at_1280px(operator_site, screenshot):
    base_url, cookie, _ = operator_site
    with chromium_page(base_url, cookie) as page:
        page.goto("/admin/cronofy_conferencing/linkedaccount/?all=")
        rows = page.locator("#result_list tbody tr")
        assert rows.count() == 43
        # The page never scrolls sideways; the status column shows inside the results'
        # visible part (the columns after it may scroll within the results, as Django's do).
        assert page.evaluate("document.documentElement.scrollWidth") <= WIDTH
        results = page.locator("#changelist .results")
        visible_right = results.evaluate("el => el.getBoundingClientRect().left + el.clientWidth")
        assert visible_right <= WIDTH
        header = page.locator("#result_list th.column-status_badge").bounding_box()
        assert header is not None and header["x"] + header["width"] <= visible_right, header
        badges = page.locator("#result_list td.field-status_badge .cronofy-status")
        right_edges = badges.evaluate_all("els => els.map(el => el.getBoundingClientRect().right)")
        assert len(right_edges) == 43 and max(right_edges) <= visible_right
        # A long email is cut, the whole of it on hover.
        first = page.locator("#result_list .field-account .cronofy-truncate").first
        assert first.get_attribute("title") == first.inner_text()
        assert first.evaluate("el => el.scrollWidth > el.clientWidth")  # cut by CSS
        screenshot(page, "admin-triage-accounts-1280")


def test_axe_finds_no_violation(operator_site, axe_script, screenshot):
    base_url, cookie, ids = operator_site
    with chromium_page(base_url, cookie) as page:
        page.goto("/admin/cronofy_conferencing/linkedaccount/")
        run_axe(page, axe_script, "admin-account-list")
        page.goto("/admin/cronofy_conferencing/linkedaccount/?attention=any")
        run_axe(page, axe_script, "admin-account-list-needs-attention")
        page.goto(f"/admin/cronofy_conferencing/linkedaccount/{ids['reauth']}/change/")
        assert page.get_by_role("link", name="/cronofy/connect/?data_center=", exact=False).count()
        assert page.locator(".cronofy-reconnect").is_visible()
        run_axe(page, axe_script, "admin-account-change-reauthorization")
        screenshot(page, "admin-triage-account-change")
        page.goto(f"/admin/cronofy_conferencing/linkedaccount/{ids['failing']}/change/")
        run_axe(page, axe_script, "admin-account-change-failing")
        page.goto("/admin/cronofy_conferencing/linkedaccount/fleet/")
        assert page.get_by_role("heading", name="Cronofy fleet health").is_visible()
        run_axe(page, axe_script, "admin-fleet")
        screenshot(page, "admin-triage-fleet")
        page.goto("/admin/cronofy_conferencing/pushnotification/")
        run_axe(page, axe_script, "admin-push-notifications")
