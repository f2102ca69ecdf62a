"""One place for Cronofy's provider names and labels, used by the admin and the browser flow."""

from __future__ import annotations

import pytest

from django_cronofy_conferencing.providers import (
    LINKABLE_PROVIDER_CHOICES,
    LINKABLE_PROVIDERS,
    PROVIDER_LABELS,
    provider_label,
)


@pytest.mark.parametrize(
    ("name", "label"),
    [
        ("zoom", "Zoom"),
        ("ms_teams", "Microsoft Teams"),
        ("go_to", "GoTo"),
        ("google_meet_api", "Google Meet"),
        # Cronofy adds providers: shown title-cased, never as a raw code.
        ("a_new_provider", "A New Provider"),
        ("webex", "Webex"),
        ("some-thing", "Some Thing"),
        ("iOS_meet", "IOS Meet"),
        ("", "Unknown provider"),
        (None, "Unknown provider"),
    ],
)
def test_provider_label(name, label):
    assert provider_label(name) == label


def test_linkable_providers_all_have_labels():
    assert set(LINKABLE_PROVIDERS) <= set(PROVIDER_LABELS)
    assert [value for value, _ in LINKABLE_PROVIDER_CHOICES] == ["", *LINKABLE_PROVIDERS]


def test_the_labels_cannot_be_changed_by_accident():
    with pytest.raises(TypeError):
        PROVIDER_LABELS["zoom"] = "Zoom Video"  # type: ignore[index]
