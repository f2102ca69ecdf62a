"""One ``queue_sync`` for every place that hands an account to Celery."""

from __future__ import annotations

import pytest

from django_cronofy_conferencing import admin, notifications, queueing
from django_cronofy_conferencing.api import views as api_views


def test_admin_api_and_push_notifications_share_one_queue_sync():
    assert admin.queue_sync is queueing.queue_sync
    assert api_views.queue_sync is queueing.queue_sync
    assert notifications.queue_sync is queueing.queue_sync


def test_queue_sync_hands_the_account_id_to_the_task(monkeypatch):
    pytest.importorskip("celery")
    from django_cronofy_conferencing import tasks

    queued: list[int] = []
    monkeypatch.setattr(tasks.sync_account_task, "delay", queued.append)
    queueing.queue_sync(42)
    assert queued == [42]
