"""The docs' "Syncs inside your transaction" example (docs/testing.md), held verbatim.

tests/docs/test_docs.py checks this file holds the block exactly; pytest runs it.
"""

from datetime import timedelta

import pytest
from django.core.management import call_command
from django.utils import timezone

from django_cronofy_conferencing.conf import app_settings
from django_cronofy_conferencing.models import LinkedAccount
from django_cronofy_conferencing.testing import simulated_cronofy


@pytest.mark.django_db
def test_cron_sync_finds_the_disconnected_profile(django_user_model):
    user = django_user_model.objects.create_user("bob")
    with simulated_cronofy() as sim:
        sim_account = sim.add_account(
            data_center=app_settings.DEFAULT_DATA_CENTER,
            conferencing_profiles=[sim.profile("go_to", connected=False)],
        )
        account = LinkedAccount.objects.create(
            user=user,
            data_center=sim_account.data_center,
            sub=sim_account.sub,
            access_token=sim_account.access_token,
            refresh_token=sim_account.refresh_token,
            token_expires_at=timezone.now() + timedelta(hours=1),
        )
        call_command("cronofy_sync", "--all", "--concurrency", "4")

    assert account.conferencing_profiles.disconnected().count() == 1
