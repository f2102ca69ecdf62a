"""The example's "Schedule a meeting" page in a real browser: the app's conferencing picker,
the event upserted at the simulated Cronofy, its conferencing pending, then assigned."""

from __future__ import annotations

import re

import pytest

from tests.browser.test_demo_site import ACCESSIBILITY_PROBLEMS

pytestmark = pytest.mark.browser


def open_schedule(page):
    page.get_by_role("link", name="Schedule a meeting").click()
    page.wait_for_url(re.compile(r"/schedule/$"))
    assert page.get_by_role("heading", name="Schedule a meeting").is_visible()


def options(page, label: str) -> dict[str, dict]:
    return {
        o["text"]: o
        for o in page.get_by_label(label).evaluate(
            "el => [...el.options].map(o => ({text: o.text, value: o.value, disabled: o.disabled}))"
        )
    }


def test_picker_offers_only_what_works(logged_in, screenshot):
    page = logged_in
    open_schedule(page)
    conferencing = options(page, "Conferencing")
    assert not conferencing["Zoom (demo@example.com)"]["disabled"]
    assert not conferencing["Microsoft Teams (demo@example.com)"]["disabled"]
    assert not conferencing["Calendar's own conferencing (Google Meet)"]["disabled"]
    assert not conferencing["Default conferencing"]["disabled"]
    # The disconnected GoTo is shown, disabled, saying why.
    assert conferencing["GoTo (demo@example.com): disconnected, relink to use it"]["disabled"]
    calendars = list(options(page, "Calendar"))
    # Writable calendars of the connected Google profile only (not read-only, not Apple's).
    assert calendars == [
        "Work (Google, demo@example.com)",
        "Team rota (Google, demo@example.com)",
    ]
    assert page.evaluate(ACCESSIBILITY_PROBLEMS) == []
    screenshot(page, "schedule")


def test_event_is_created_with_zoom_then_its_conference_is_assigned(logged_in, screenshot):
    page = logged_in
    open_schedule(page)
    page.get_by_label("Calendar").select_option(label="Work (Google, demo@example.com)")
    page.get_by_label("Title").fill("Interview with Ada")
    page.get_by_label("Conferencing").select_option(label="Zoom (demo@example.com)")
    page.get_by_role("button", name="Create the event").click()
    page.wait_for_url(re.compile(r"/schedule/\d+/events/demo-[0-9a-f]+/$"))
    assert page.get_by_role("heading", name="Interview with Ada").is_visible()
    # Cronofy answered 202; the event reads back with its conference pending...
    pending = page.locator(".conferencing.pending")
    assert "generating the conference" in pending.inner_text()
    screenshot(page, "event-pending")
    pending.get_by_role("link", name="Refresh").click()
    # ...then assigned: the Zoom join link.
    assigned = page.locator(".conferencing.assigned")
    assert assigned.inner_text().startswith("Zoom: https://")
    link = assigned.get_by_role("link")
    assert re.match(
        r"^https://zoom\.simulated-cronofy\.test/j/[0-9a-f]+$", link.get_attribute("href")
    )
    screenshot(page, "event-assigned")


def test_integrated_conferencing_works_on_its_calendar_only(logged_in):
    page = logged_in
    open_schedule(page)
    page.get_by_label("Calendar").select_option(label="Team rota (Google, demo@example.com)")
    page.get_by_label("Conferencing").select_option(
        label="Calendar's own conferencing (Google Meet)"
    )
    page.get_by_role("button", name="Create the event").click()
    assert "not available" in page.get_by_role("alert").first.inner_text()
    assert "/schedule/" in page.url and "/events/" not in page.url

    page.get_by_label("Calendar").select_option(label="Work (Google, demo@example.com)")
    page.get_by_label("Conferencing").select_option(
        label="Calendar's own conferencing (Google Meet)"
    )
    page.get_by_role("button", name="Create the event").click()
    page.wait_for_url(re.compile(r"/events/"))
    page.locator(".conferencing.pending").get_by_role("link", name="Refresh").click()
    assert page.locator(".conferencing.assigned").inner_text().startswith("Google Meet: https://")


def test_a_disconnected_profile_forced_into_the_form_is_refused_with_relink(logged_in):
    """A stale page or a tampered form: the server checks the pick against the stored rows."""
    page = logged_in
    open_schedule(page)
    select = page.get_by_label("Conferencing")
    goto = options(page, "Conferencing")["GoTo (demo@example.com): disconnected, relink to use it"]
    select.evaluate(
        "(el, value) => { el.querySelector(`option[value='${value}']`)"
        ".disabled = false; el.value = value; }",
        goto["value"],
    )
    page.get_by_role("button", name="Create the event").click()
    error = page.locator("#id_conferencing-error")
    assert "GoTo (demo@example.com) is disconnected" in error.inner_text()
    relink = error.get_by_role("link", name=re.compile("^Relink"))
    assert relink.get_attribute("href").startswith("https://")
    assert relink.get_attribute("rel") == "noopener noreferrer"
