"""The documentation's first test ("Testing your project with the simulator",
docs/testing.md), run as written.

The code between the markers below is that page's code block, character for
character (``test_docs_show_this_code`` fails when they drift apart). It runs twice:
with the suite's settings (data center "us") and with the settings
``manage.py cronofy_simulator`` prints (data center "sim"), where a test that
hard-coded "us" would get a 400 from connect.
"""

from __future__ import annotations

# --- docs example: begin ---
import pytest
from django.conf import settings
from django.urls import reverse

from django_cronofy_conferencing.conf import app_settings
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.testing import simulated_cronofy


@pytest.fixture
def cronofy():
    """A simulated Cronofy that knows this project's client id and secret."""
    app = settings.CRONOFY_CONFERENCING
    with simulated_cronofy(client_id=app["CLIENT_ID"], client_secret=app["CLIENT_SECRET"]) as sim:
        yield sim


@pytest.mark.django_db
def test_user_links_cronofy_and_sees_profiles(client, django_user_model, cronofy):
    user = django_user_model.objects.create_user("alice", password="pw")
    client.force_login(user)
    # Your application's data center: "us" by default, "sim" with the simulator's settings.
    data_center = app_settings.DEFAULT_DATA_CENTER
    cronofy_account = cronofy.add_account(
        data_center=data_center,
        conferencing_profiles=[
            cronofy.profile("zoom", profile_name="alice@example.com"),
            cronofy.profile("go_to", connected=False),
        ],
    )
    # The user clicks "Connect Cronofy" (a POST): the app sends the browser to Cronofy ...
    response = client.post(reverse("cronofy_conferencing:connect"), {"data_center": data_center})
    # ... the user approves there, and Cronofy sends the browser back with a code.
    client.get(cronofy.authorize(response.url, account=cronofy_account))

    account = LinkedAccount.objects.get(user=user)
    assert account.conferencing_profiles.connected().get().provider_name == "zoom"
    go_to = account.conferencing_profiles.disconnected().get()
    assert go_to.profile_relink_url.startswith("https://")


# --- docs example: end ---


def simulator_settings() -> dict:
    """What ``manage.py cronofy_simulator`` prints for port 8001 (see the last test)."""
    from django_cronofy_conferencing.testing import DEFAULT_CLIENT_ID, DEFAULT_CLIENT_SECRET

    return {
        "CLIENT_ID": DEFAULT_CLIENT_ID,
        "CLIENT_SECRET": DEFAULT_CLIENT_SECRET,
        "DEFAULT_DATA_CENTER": "sim",
        "DATA_CENTERS": {
            "sim": {
                "api_url": "http://127.0.0.1:8001",
                "app_url": "http://127.0.0.1:8001",
                "label": "Simulated Cronofy",
            }
        },
        "ENCRYPTION_KEYS": ["uhixvJhwy8-Kn1UBLXKqltiKuoa5-uOKlvqy3oiXzhU="],
        "RATE_LIMITS": [],
        "RETRY_BACKOFF": 0,
    }


@pytest.fixture(autouse=True, params=["suite settings", "cronofy_simulator settings"])
def host_settings(request, settings):
    """The project's settings, in place before the example's fixtures run."""
    if request.param == "cronofy_simulator settings":
        settings.CRONOFY_CONFERENCING = simulator_settings()
    return settings.CRONOFY_CONFERENCING


def test_the_simulator_settings_are_what_it_prints(host_settings):
    from django_cronofy_conferencing.management.commands.cronofy_simulator import settings_for
    from django_cronofy_conferencing.testing import HTTPServerAdapter, SimulatedCronofy

    expected = simulator_settings()
    server = HTTPServerAdapter(SimulatedCronofy(default_data_center="sim"), "sim").start()
    try:
        printed = settings_for(server, expected["ENCRYPTION_KEYS"][0])
    finally:
        server.stop()
    for url in ("api_url", "app_url"):  # a free port here, 8001 by default
        assert printed["DATA_CENTERS"]["sim"][url] == server.url
        printed["DATA_CENTERS"]["sim"][url] = "http://127.0.0.1:8001"
    assert printed == expected


def test_docs_show_this_code(host_settings):
    import re
    from pathlib import Path

    source = Path(__file__).read_text()
    example = re.search(
        r"# --- docs example: begin ---\n(.*?)# --- docs example: end ---", source, re.S
    ).group(1)
    page = Path(__file__).resolve().parents[2] / "docs" / "testing.md"
    assert "```python\n" + example.rstrip() + "\n```" in page.read_text()
