"""The example project in a real browser, served by ``manage.py demo`` on a simulated Cronofy.

Each test that changes state works on an account of its own, linked through
the simulator's consent page, so the tests do not depend on their order.
"""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

pytestmark = pytest.mark.browser

NEW_TAB_REL = "noopener noreferrer"


def account_section(page, email: str):
    """The home page's section of one linked account."""
    return page.locator("section.cc-account").filter(
        has=page.get_by_role("heading", name=email, exact=True)
    )


def profile_row(section, provider_name: str):
    return section.locator(f'li[data-provider="{provider_name}"]')


def connect_account(page, demo, email: str, providers: str, *, approve: bool = True):
    """Home -> Connect your calendar -> the simulator's consent page -> Approve (or Deny)."""
    page.goto("/")
    # The demo has an application in the simulator's data center only: no picker.
    page.get_by_role("button", name="Connect your calendar").click()
    page.wait_for_url(f"{demo.sim_url}/oauth/authorize?*")
    page.get_by_label("Email").fill(email)
    page.get_by_label("Conferencing providers of a new account").fill(providers)
    page.get_by_role("button", name="Approve" if approve else "Deny").click()
    if approve:
        page.wait_for_url(re.compile(r"/$"))
        assert (
            page.get_by_role("status")
            .filter(has_text=f"Your calendar account {email} is linked.")
            .is_visible()
        )


def simulator_section(page, email: str):
    page.goto("/simulator/")
    return page.locator("section").filter(has=page.get_by_role("heading", name=email, exact=True))


def assert_relink_link(row) -> None:
    link = row.get_by_role("link", name=re.compile("^Relink"))
    assert link.is_visible()
    assert link.get_attribute("rel") == NEW_TAB_REL
    assert link.get_attribute("target") == "_blank"
    assert link.get_attribute("href").startswith("https://")


def test_anonymous_user_is_sent_to_log_in(page):
    page.goto("/")
    page.wait_for_url(re.compile(r"/accounts/login/\?next=/cronofy/$"))
    assert page.get_by_role("heading", name="Log in").is_visible()


def test_wrong_password_is_refused(page, demo):
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(demo.username)
    page.get_by_label("Password").fill("not-the-password")
    page.get_by_role("button", name="Log in").click()
    expect(page.get_by_role("alert")).to_be_visible()
    assert "/accounts/login/" in page.url


def test_home_lists_the_demo_accounts_profiles(logged_in, screenshot):
    page = logged_in
    section = account_section(page, "demo@example.com")
    # One data center offered: not a word about data centers (nor the vendor).
    assert section.get_by_text("Data center").count() == 0
    assert "Cronofy" not in section.inner_text()
    zoom, go_to, teams, future = (
        profile_row(section, name) for name in ("zoom", "go_to", "ms_teams", "webex")
    )
    assert "Zoom" in zoom.inner_text() and "Connected" in zoom.inner_text()
    assert "Microsoft Teams" in teams.inner_text() and "Connected" in teams.inner_text()
    # A provider Cronofy adds one day shows under its name, title-cased for people.
    assert "Webex" in future.inner_text() and "Connected" in future.inner_text()
    assert "webex" not in future.inner_text()
    assert "GoTo" in go_to.inner_text() and "Needs relinking" in go_to.inner_text()
    # GoTo, and the demo's disconnected Apple calendar profile: counted apart.
    assert section.get_by_text("1 conferencing profile needs relinking").is_visible()
    assert section.get_by_text("1 calendar needs relinking").is_visible()
    calendars = section.locator(".cc-calendar-problems")
    assert "Apple" in calendars.inner_text() and "Needs relinking" in calendars.inner_text()
    assert_relink_link(go_to)
    for connected in (zoom, teams, future):
        assert connected.get_by_role("link", name=re.compile("^Relink")).count() == 0
    for label in ("Add another Zoom", "Add another Microsoft Teams"):
        assert section.get_by_role("button", name=label).is_visible()
    # GoTo only needs relinking: no button that invites a duplicate.
    assert section.get_by_role("button", name=re.compile("GoTo")).count() == 0
    assert section.get_by_role("button", name=re.compile("^Sync now")).is_visible()
    assert section.get_by_role("link", name=re.compile("^Unlink")).is_visible()
    screenshot(page, "home")


ACCESSIBILITY_PROBLEMS = """
() => {
  const problems = [];
  if (!document.documentElement.lang) problems.push("html has no lang");
  if (document.querySelectorAll("h1").length !== 1) problems.push("not exactly one h1");
  for (const el of document.querySelectorAll("input:not([type=hidden]), select, textarea")) {
    const labelled = (el.labels && el.labels.length) || el.getAttribute("aria-label")
      || el.getAttribute("aria-labelledby");
    if (!labelled) problems.push("unlabelled control " + (el.name || el.id));
  }
  for (const el of document.querySelectorAll("a[href], button")) {
    const name = (el.getAttribute("aria-label") || el.innerText || "").trim();
    if (!name) problems.push("nameless " + el.outerHTML.slice(0, 80));
  }
  for (const el of document.querySelectorAll("img:not([alt])")) problems.push("img without alt");
  return problems;
}
"""


@pytest.mark.parametrize("path", ["/", "/simulator/", "/cronofy/accounts/1/unlink/"])
def test_pages_have_labels_and_names(logged_in, path):
    """Basic accessibility: a language, one h1, labelled controls, named links and buttons."""
    page = logged_in
    page.goto(path)
    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == []


@pytest.mark.parametrize("path", ["/", "/simulator/", "/cronofy/accounts/1/unlink/"])
def test_axe_finds_nothing_in_the_sites_layout(logged_in, axe_script, path):
    """The packaged page inside a host's layout (and the demo's own page) pass axe-core too."""
    from tests.browser.conftest import run_axe

    page = logged_in
    page.goto(path)
    run_axe(page, axe_script, f"demo{path}")


def test_keyboard_users_can_skip_to_the_content(logged_in):
    page = logged_in
    page.keyboard.press("Tab")
    skip = page.get_by_role("link", name="Skip to content")
    assert skip.evaluate("el => el === document.activeElement")
    assert skip.is_visible()


def test_home_is_usable_on_a_phone(browser, demo, screenshot):
    context = browser.new_context(
        base_url=demo.url, viewport={"width": 375, "height": 812}, is_mobile=True
    )
    try:
        page = context.new_page()
        page.goto("/accounts/login/")
        page.get_by_label("Username").fill(demo.username)
        page.get_by_label("Password").fill(demo.password)
        page.get_by_role("button", name="Log in").click()
        page.wait_for_url(re.compile(r"/$"))
        assert account_section(page, "demo@example.com").is_visible()
        # Nothing wider than the screen: no sideways scrolling.
        assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth")
        screenshot(page, "home-phone")
    finally:
        context.close()


def test_connect_an_account_through_the_consent_page(logged_in, demo, screenshot):
    page = logged_in
    page.get_by_role("button", name="Connect your calendar").click()
    page.wait_for_url(f"{demo.sim_url}/oauth/authorize?*")
    assert page.get_by_role("heading", name="Connect your calendar").is_visible()
    page.get_by_label("Email").fill("carol@example.com")
    page.get_by_label("Conferencing providers of a new account").fill("zoom,ms_teams")
    screenshot(page, "consent")
    page.get_by_role("button", name="Approve").click()

    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_text("Your calendar account carol@example.com is linked.").is_visible()
    section = account_section(page, "carol@example.com")
    for provider in ("zoom", "ms_teams"):
        assert "Connected" in profile_row(section, provider).inner_text()
    screenshot(page, "connected")


def test_denying_consent_links_nothing(logged_in, demo):
    page = logged_in
    connect_account(page, demo, "dan@example.com", "zoom", approve=False)
    # Deny navigates back to the site: wait for that page (expect retries) rather than
    # look once, right after the click, while the consent page may still be showing.
    expect(page.get_by_role("heading", name="Cronofy was not linked")).to_be_visible()
    page.goto("/")
    assert account_section(page, "dan@example.com").count() == 0


def test_add_a_conferencing_provider(logged_in, demo, screenshot):
    page = logged_in
    connect_account(page, demo, "erin@example.com", "zoom")
    section = account_section(page, "erin@example.com")
    assert profile_row(section, "go_to").count() == 0
    section.get_by_role("button", name="Add GoTo").click()

    page.wait_for_url(f"{demo.sim_url}/conferencing_services/*")
    assert page.get_by_role("heading", name="Connect a conferencing service").is_visible()
    page.get_by_label("Profile name").fill("erin.goto@example.com")
    page.get_by_role("button", name="Approve").click()

    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_text("GoTo profile erin.goto@example.com is connected.").is_visible()
    row = profile_row(account_section(page, "erin@example.com"), "go_to")
    assert "erin.goto@example.com" in row.inner_text()
    assert "Connected" in row.inner_text()
    screenshot(page, "provider-added")


def test_push_notification_shows_the_relink_link(logged_in, demo, screenshot):
    page = logged_in
    connect_account(page, demo, "fay@example.com", "zoom,go_to")
    assert "Connected" in profile_row(account_section(page, "fay@example.com"), "zoom").inner_text()

    section = simulator_section(page, "fay@example.com")
    assert section.get_by_text("Push channel open").is_visible()
    section.get_by_role("button", name="Disconnect Zoom and notify").click()
    page.wait_for_url(re.compile(r"/simulator/$"))
    assert page.get_by_text(
        "Simulated Cronofy sent a signed 'profile_disconnected' notification: the site said 200."
    ).is_visible()
    screenshot(page, "simulator")

    page.goto("/")
    row = profile_row(account_section(page, "fay@example.com"), "zoom")
    assert "Needs relinking" in row.inner_text()
    assert_relink_link(row)
    screenshot(page, "relink")


def test_sync_now_picks_up_a_change(logged_in, demo):
    page = logged_in
    connect_account(page, demo, "gus@example.com", "ms_teams")
    section = simulator_section(page, "gus@example.com")
    section.get_by_role("button", name="Disconnect Microsoft Teams silently").click()
    page.wait_for_url(re.compile(r"/simulator/$"))

    page.goto("/")
    section = account_section(page, "gus@example.com")
    # Not notified: the site still shows what it last synced.
    assert "Connected" in profile_row(section, "ms_teams").inner_text()
    section.get_by_role("button", name=re.compile("^Sync now")).click()
    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_text("Synced gus@example.com: Microsoft Teams needs relinking.").is_visible()
    row = profile_row(account_section(page, "gus@example.com"), "ms_teams")
    assert "Needs relinking" in row.inner_text()
    assert_relink_link(row)

    account_section(page, "gus@example.com").get_by_role(
        "button", name=re.compile("^Sync now")
    ).click()
    # The same URL again: no navigation to wait for, so wait for the message itself.
    expect(page.get_by_text("Synced gus@example.com: nothing changed.")).to_be_visible()


def test_unlink(logged_in, demo):
    page = logged_in
    connect_account(page, demo, "hal@example.com", "zoom")
    account_section(page, "hal@example.com").get_by_role("link", name=re.compile("^Unlink")).click()
    expect(page.get_by_role("heading", name="Unlink hal@example.com?")).to_be_visible()
    page.get_by_role("button", name="Unlink").click()

    page.wait_for_url(re.compile(r"/$"))
    assert page.get_by_text(
        "Unlinked hal@example.com: this site's access to it was revoked."
    ).is_visible()
    assert account_section(page, "hal@example.com").count() == 0
    # Cronofy's side: the grant is gone, so the simulator sees no link any more.
    section = simulator_section(page, "hal@example.com")
    assert section.get_by_text("Not linked on this site").is_visible()


def test_admin_changelists_render(logged_in, screenshot):
    page = logged_in
    page.goto("/admin/cronofy_conferencing/linkedaccount/")
    assert page.locator("#result_list").is_visible()
    assert page.locator("#result_list").get_by_text("demo@example.com").first.is_visible()
    screenshot(page, "admin-accounts")

    page.goto("/admin/cronofy_conferencing/conferencingprofile/")
    results = page.locator("#result_list")
    assert results.is_visible()
    assert results.locator("tbody tr").count() >= 4
    relinks = results.get_by_role("link", name="Relink")
    assert relinks.count() >= 1
    assert relinks.first.get_attribute("rel") == NEW_TAB_REL
    screenshot(page, "admin-profiles")


def test_api_docs_render_offline(logged_in, screenshot):
    page = logged_in
    page.goto("/api/docs/")
    page.locator(".swagger-ui .opblock").first.wait_for()
    assert page.get_by_text("/api/cronofy/conferencing-profiles/").first.is_visible()
    screenshot(page, "api-docs")


def test_the_simulator_url_the_demo_prints_answers(demo):
    import requests

    page = requests.get(f"{demo.sim_url}/", timeout=10)
    assert page.status_code == 200
    assert "Simulated Cronofy" in page.text
    assert "demo@example.com" in page.text
