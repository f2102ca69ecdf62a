"""Browser tests: Playwright's Python API driving Debian's Chromium against the demo.

Never a downloaded browser: ``/usr/bin/chromium`` (``apt-get install chromium``),
or ``CHROMIUM_BINARY``. Without it (or without the ``playwright`` package) the
tests skip, and fail when ``CRONOFY_REQUIRE_SERVICES=1`` (CI).

Screenshots land in ``artifacts/screenshots/`` (gitignored; CI keeps the folder).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

from tests.conftest import require_service
from tests.example_project.demo_server import ARTIFACTS, DemoServer, start_demo

CHROMIUM = os.environ.get("CHROMIUM_BINARY", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = ARTIFACTS / "screenshots"
AXE_RESULTS = ARTIFACTS / "axe-results.json"

pytestmark = pytest.mark.browser


def _chromium_available() -> bool:
    return bool(shutil.which(CHROMIUM) or Path(CHROMIUM).is_file())


@pytest.fixture(scope="module")
def playwright_instance():
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        require_service(False, "the playwright package is not installed (pip install playwright)")
    require_service(
        _chromium_available(), f"Chromium not found at {CHROMIUM} (apt-get install chromium)"
    )
    with sync_playwright() as playwright:
        yield playwright


@pytest.fixture(scope="module")
def browser(playwright_instance):
    browser = playwright_instance.chromium.launch(
        executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
    )
    yield browser
    browser.close()


@pytest.fixture(scope="module")
def demo(tmp_path_factory) -> DemoServer:
    server = start_demo(tmp_path_factory.mktemp("demo"))
    yield server
    server.stop()


@pytest.fixture
def context(browser, demo):
    context = browser.new_context(base_url=demo.url, viewport={"width": 1280, "height": 900})
    context.set_default_timeout(20_000)
    yield context
    context.close()


@pytest.fixture
def page(context):
    return context.new_page()


@pytest.fixture
def logged_in(page, demo):
    """A page logged in as the demo user, on the home page."""
    page.goto("/accounts/login/")
    page.get_by_label("Username").fill(demo.username)
    page.get_by_label("Password").fill(demo.password)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(re.compile(r"/$"))
    return page


@pytest.fixture
def screenshot():
    """``screenshot(page, "name")`` saves ``artifacts/screenshots/name.png`` (full page)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)

    def take(page, name: str) -> Path:
        path = SCREENSHOTS / f"{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return take


_results: dict[str, dict] = {}  # every run_axe() of the session, written at its end


def _axe_script() -> str:
    try:
        from axe_playwright_python.base import AXE_FILE_PATH
    except ImportError:
        require_service(False, "axe-playwright-python is not installed (the test extra)")
    return Path(AXE_FILE_PATH).read_text(encoding="utf-8")


@pytest.fixture(scope="session")
def axe_script() -> str:
    """axe-core's axe.min.js, from the axe-playwright-python package (the test extra)."""
    yield _axe_script()
    if _results:
        AXE_RESULTS.parent.mkdir(parents=True, exist_ok=True)
        AXE_RESULTS.write_text(json.dumps(_results, indent=2, sort_keys=True))


def run_axe(page, axe_script: str, name: str) -> None:
    """axe-core on the page as it is: every rule it runs by default, zero violations."""
    page.evaluate(axe_script)
    results = page.evaluate(
        "axe.run(document, {resultTypes: ['violations']}).then(r => ({"
        "version: r.testEngine.version,"
        "violations: r.violations.map(v => ({id: v.id, impact: v.impact,"
        " nodes: v.nodes.map(n => n.target.join(' '))})),"
        "passes: r.passes.length, incomplete: r.incomplete.map(i => ({id: i.id,"
        " nodes: i.nodes.map(n => n.target.join(' ') + ': ' + n.any.map(a => a.message)"
        ".join('; '))})),"
        "inapplicable: r.inapplicable.length}))"
    )
    _results[name] = results
    assert results["violations"] == [], f"{name}: {results['violations']}"
