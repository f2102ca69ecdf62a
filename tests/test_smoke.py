import pytest

from django_cronofy_conferencing.models import ConferencingProfile
from django_cronofy_conferencing.sync import sync_account


@pytest.mark.django_db
def test_documented_payload_syncs(link_account, payload):
    account, _ = link_account(userinfo_body=payload("userinfo_conferencing_example"))
    result = sync_account(account)
    assert result.created == 2
    rows = {p.profile_id: p for p in ConferencingProfile.objects.all()}
    assert rows["pro_gfmdsg51qa"].profile_relink_url.startswith(
        "https://app.cronofy.com/v2/relink/go_to"
    )
    assert rows["pro_jknsdfk234"].profile_connected is True
