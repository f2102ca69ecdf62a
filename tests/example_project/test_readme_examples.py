"""The README's "Testing your project with the simulator" example, run as written.

The code between the markers below is the README's code block, character for
character (``test_readme_shows_this_code`` fails when they drift apart).
"""

from __future__ import annotations

import re
from pathlib import Path

# --- README example: begin ---
import pytest
from django.conf import settings
from django.urls import reverse

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
    cronofy_account = cronofy.add_account(
        data_center="us",
        conferencing_profiles=[
            cronofy.profile("zoom", profile_name="alice@example.com"),
            cronofy.profile("go_to", connected=False),
        ],
    )
    # The user clicks "Connect Cronofy" (a POST): the app sends the browser to Cronofy ...
    response = client.post(reverse("cronofy_conferencing:connect"), {"data_center": "us"})
    # ... the user approves there, and Cronofy sends the browser back with a code.
    client.get(cronofy.authorize(response.url, account=cronofy_account))

    account = LinkedAccount.objects.get(user=user)
    assert account.conferencing_profiles.connected().get().provider_name == "zoom"
    go_to = account.conferencing_profiles.disconnected().get()
    assert go_to.profile_relink_url.startswith("https://")


# --- README example: end ---


def test_readme_shows_this_code():
    source = Path(__file__).read_text()
    example = re.search(
        r"# --- README example: begin ---\n(.*?)# --- README example: end ---", source, re.S
    ).group(1)
    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    assert "```python\n" + example.rstrip() + "\n```" in readme
