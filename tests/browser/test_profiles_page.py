"""The packaged "My conferencing" page in Chromium, in every state, at 1280 and 390 px.

Served by pytest-django's live server with the app's own templates (the
standalone ``base.html``), against the simulated Cronofy over HTTP. axe-core
(the copy bundled by the ``axe-playwright-python`` package) runs on every
state and viewport and must find nothing; its results are written to
``artifacts/axe-results.json``.
"""

from __future__ import annotations

import os
import re
from datetime import timedelta

import pytest
from django.conf import settings
from django.test import Client, override_settings
from django.utils import timezone
from playwright.sync_api import expect

from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.sync import sync_account
from django_cronofy_conferencing.testing import SimulatedCronofy, serve_simulator
from tests.browser.conftest import run_axe

pytestmark = [pytest.mark.browser, pytest.mark.django_db(transaction=True)]

VIEWPORTS = {"desktop": {"width": 1280, "height": 900}, "phone": {"width": 390, "height": 844}}


@pytest.fixture(scope="module", autouse=True)
def _orm_beside_playwright():
    """Playwright's sync API keeps an event loop in this thread; the ORM calls here (and
    the database flush after each test) are plain synchronous code, so Django's
    async-safety guard does not apply. Module-wide: the loop lives as long as the browser."""
    previous = os.environ.get("DJANGO_ALLOW_ASYNC_UNSAFE")
    os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = "1"
    yield
    if previous is None:
        os.environ.pop("DJANGO_ALLOW_ASYNC_UNSAFE", None)
    else:
        os.environ["DJANGO_ALLOW_ASYNC_UNSAFE"] = previous


@pytest.fixture
def cronofy():
    """The simulated Cronofy over HTTP, as the data center ``sim`` (the default)."""
    with serve_simulator(SimulatedCronofy()) as server:
        value = {
            **settings.CRONOFY_CONFERENCING,
            "DEFAULT_DATA_CENTER": "sim",
            "DATA_CENTERS": server.data_center_settings(),
            "MAX_RETRIES": 0,
        }
        with override_settings(CRONOFY_CONFERENCING=value):
            yield server


@pytest.fixture(params=list(VIEWPORTS))
def viewport(request) -> str:
    return request.param


@pytest.fixture
def page_for(browser, live_server, viewport):
    """``page_for(user)`` -> a Playwright page logged in as ``user`` at ``viewport``."""
    contexts = []

    def make(user):
        client = Client()
        client.force_login(user)
        context = browser.new_context(base_url=live_server.url, viewport=VIEWPORTS[viewport])
        context.set_default_timeout(20_000)
        context.add_cookies(
            [
                {
                    "name": settings.SESSION_COOKIE_NAME,
                    "value": client.cookies[settings.SESSION_COOKIE_NAME].value,
                    "url": live_server.url,
                }
            ]
        )
        contexts.append(context)
        return context.new_page()

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def person(django_user_model):
    return django_user_model.objects.create_user("pat", "pat@example.com", "pw")


def link(cronofy, user, email: str, *profiles) -> LinkedAccount:
    remote = cronofy.sim.add_account(
        data_center="sim", email=email, conferencing_profiles=list(profiles)
    )
    account = LinkedAccount.objects.create(
        user=user,
        data_center="sim",
        sub=remote.sub,
        email=email,
        access_token=remote.access_token,
        refresh_token=remote.refresh_token,
        token_expires_at=timezone.now() + timedelta(hours=1),
    )
    sync_account(account)
    return account


def check_page(page, axe_script, name: str, viewport: str, screenshot) -> None:
    """What every state must pass: axe, one h1, no sideways scrolling, a screenshot."""
    assert page.locator("h1").count() == 1
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth"), name
    run_axe(page, axe_script, f"{name}@{VIEWPORTS[viewport]['width']}")
    screenshot(page, f"profiles-{name}-{viewport}")


def section(page, email: str):
    return page.locator("section.cc-account").filter(
        has=page.get_by_role("heading", name=email, exact=True)
    )


def test_no_account_yet(page_for, person, cronofy, axe_script, viewport, screenshot):
    page = page_for(person)
    page.goto("/cronofy/")
    assert page.get_by_text("You have not linked a calendar account yet.").is_visible()
    assert page.get_by_role("button", name="Connect your calendar").is_visible()
    check_page(page, axe_script, "no-account", viewport, screenshot)


def test_healthy(page_for, person, cronofy, axe_script, viewport, screenshot):
    sim = cronofy.sim
    link(cronofy, person, "pat@example.com", sim.profile("zoom"), sim.profile("ms_teams"))
    page = page_for(person)
    page.goto("/cronofy/")
    account = section(page, "pat@example.com")
    assert account.get_by_text("All conferencing profiles connected").is_visible()
    assert account.locator(".cc-connected").count() == 2
    assert account.get_by_role("button", name=re.compile("^Sync now")).is_visible()
    assert account.get_by_role("button", name="Add another Zoom").is_visible()
    check_page(page, axe_script, "healthy", viewport, screenshot)


def test_profiles_need_relinking(page_for, person, cronofy, axe_script, viewport, screenshot):
    sim = cronofy.sim
    link(
        cronofy,
        person,
        "pat@example.com",
        sim.profile("zoom"),
        sim.profile("go_to", connected=False),
        sim.profile("ms_teams", connected=False),
    )
    page = page_for(person)
    page.goto("/cronofy/")
    account = section(page, "pat@example.com")
    assert account.get_by_text("2 conferencing profiles need relinking").is_visible()
    rows = account.locator("li.cc-profile")
    assert rows.first.get_attribute("data-provider") in ("go_to", "ms_teams")
    assert rows.last.get_attribute("data-provider") == "zoom"
    relink = account.get_by_role("link", name=re.compile("^Relink GoTo"))
    assert relink.get_attribute("target") == "_blank"
    assert relink.get_attribute("rel") == "noopener noreferrer"
    # With the script, no need to come back and choose Sync now: the page looks again.
    assert account.get_by_text("this page checks it again by itself").first.is_visible()
    assert account.get_by_role("button", name="Add GoTo").count() == 0
    check_page(page, axe_script, "needs-relink", viewport, screenshot)


def test_reauthorization_required(page_for, person, cronofy, axe_script, viewport, screenshot):
    sim = cronofy.sim
    account = link(cronofy, person, "pat@example.com", sim.profile("zoom"))
    LinkedAccount.objects.filter(pk=account.pk).update(
        status=LinkedAccount.Status.REAUTHORIZATION_REQUIRED
    )
    page = page_for(person)
    page.goto("/cronofy/")
    block = section(page, "pat@example.com")
    assert block.get_by_text("Reconnect your calendar account").is_visible()
    assert block.get_by_role("button", name=re.compile("^Reconnect your calendar")).is_visible()
    assert block.get_by_text("Status unknown").is_visible()
    assert block.get_by_role("button", name=re.compile("^Sync now")).count() == 0
    check_page(page, axe_script, "reauthorization", viewport, screenshot)


def test_cronofy_unavailable(page_for, person, cronofy, axe_script, viewport, screenshot):
    sim = cronofy.sim
    link(cronofy, person, "pat@example.com", sim.profile("zoom"))
    sim.fail("userinfo", status=503, times=None)
    page = page_for(person)
    page.goto("/cronofy/")
    section(page, "pat@example.com").get_by_role("button", name=re.compile("^Sync now")).click()
    page.wait_for_url(re.compile(r"/cronofy/$"))
    status = page.get_by_role("status")
    assert "The calendar service could not be reached just now" in status.inner_text()
    assert status.evaluate("el => el === document.activeElement")
    assert page.get_by_text("The last sync failed.").is_visible()
    check_page(page, axe_script, "unavailable", viewport, screenshot)


def test_after_sync_now(page_for, person, cronofy, axe_script, viewport, screenshot):
    sim = cronofy.sim
    account = link(cronofy, person, "pat@example.com", sim.profile("zoom"))
    remote = sim.accounts[account.sub]
    sim.set_connected(remote.sub, remote.conferencing_profiles[0]["profile_id"], False)
    page = page_for(person)
    page.goto("/cronofy/")
    section(page, "pat@example.com").get_by_role("button", name=re.compile("^Sync now")).click()
    page.wait_for_url(re.compile(r"/cronofy/$"))
    status = page.get_by_role("status")
    assert "Synced pat@example.com: Zoom needs relinking." in status.inner_text()
    # The focus moved to the outcome (no JavaScript on the page).
    assert status.evaluate("el => el === document.activeElement")
    assert page.get_by_text("1 conferencing profile needs relinking").is_visible()
    check_page(page, axe_script, "after-sync", viewport, screenshot)


def test_unlink_confirmation(page_for, person, cronofy, axe_script, viewport, screenshot):
    link(cronofy, person, "pat@example.com", cronofy.sim.profile("zoom"))
    page = page_for(person)
    page.goto("/cronofy/")
    section(page, "pat@example.com").get_by_role("link", name=re.compile("^Unlink")).click()
    expect(page.get_by_role("heading", name="Unlink pat@example.com?")).to_be_visible()
    check_page(page, axe_script, "unlink-confirmation", viewport, screenshot)
    page.get_by_role("button", name="Unlink").click()
    page.wait_for_url(re.compile(r"/cronofy/$"))
    assert "access to it was revoked" in page.get_by_role("status").inner_text()
    assert not LinkedAccount.objects.filter(user=person).exists()
    assert cronofy.sim.count("revoke") == 1


def test_error_page(page_for, person, cronofy, axe_script, viewport, screenshot):
    page = page_for(person)
    page.goto("/cronofy/connect/?data_center=nowhere")
    assert page.get_by_role("alert").is_visible()
    back = page.get_by_role("link", name="Back to my conferencing")
    assert back.is_visible()
    # A button, not a bulleted list item: no list markers anywhere on the page.
    assert page.locator("ul.actions, li").count() == 0
    # Drawn as a button: a border and padding, in a row of actions.
    look = back.evaluate(
        "el => { const s = getComputedStyle(el); return [s.borderTopStyle,"
        " parseFloat(s.paddingLeft), getComputedStyle(el.parentElement).display]; }"
    )
    assert look[0] == "solid" and look[1] > 0 and look[2] == "flex", look
    check_page(page, axe_script, "error", viewport, screenshot)


def _luminance(rgb: tuple[int, int, int]) -> float:
    def channel(c: int) -> float:
        c = c / 255
        return c / 12.92 if c <= 0.03928 else ((c + 0.055) / 1.055) ** 2.4

    r, g, b = (channel(c) for c in rgb)
    return 0.2126 * r + 0.7152 * g + 0.0722 * b


def _contrast(a, b) -> float:
    la, lb = sorted((_luminance(a), _luminance(b)), reverse=True)
    return (la + 0.05) / (lb + 0.05)


def _rgb(css: str) -> tuple[int, int, int]:
    return tuple(int(v) for v in re.findall(r"\d+", css)[:3])  # type: ignore[return-value]


def test_keyboard_focus_ring_has_3_to_1_contrast(page_for, person, cronofy, viewport):
    link(cronofy, person, "pat@example.com", cronofy.sim.profile("zoom", connected=False))
    page = page_for(person)
    page.goto("/cronofy/")
    checked = 0
    for _ in range(12):
        page.keyboard.press("Tab")
        style = page.evaluate(
            "() => { const el = document.activeElement; const s = getComputedStyle(el);"
            " return {tag: el.tagName, style: s.outlineStyle, width: parseFloat(s.outlineWidth),"
            " color: s.outlineColor, bg: getComputedStyle(document.body).backgroundColor}; }"
        )
        if style["tag"] in ("A", "BUTTON", "SELECT"):
            assert style["style"] != "none", style
            assert style["width"] >= 2, style
            background = _rgb(style["bg"]) if "0, 0, 0, 0" not in style["bg"] else (255, 255, 255)
            assert _contrast(_rgb(style["color"]), background) >= 3, style
            checked += 1
    assert checked >= 3


def test_add_provider_page(page_for, person, cronofy, axe_script, viewport, screenshot):
    link(cronofy, person, "pat@example.com", cronofy.sim.profile("zoom"))
    page = page_for(person)
    page.goto("/cronofy/")
    section(page, "pat@example.com").get_by_role("link", name="Other providers").click()
    expect(page.get_by_role("heading", name="Add a conferencing provider")).to_be_visible()
    assert page.get_by_label("Provider").is_visible()
    check_page(page, axe_script, "add-provider", viewport, screenshot)
