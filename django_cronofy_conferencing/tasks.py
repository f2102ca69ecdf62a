"""Celery tasks, where Celery's autodiscovery looks for them (``queueing.celery``).

Their names stay ``django_cronofy_conferencing.tasks.sync_account_task``,
``django_cronofy_conferencing.tasks.sync_due_accounts_task`` and
``django_cronofy_conferencing.tasks.send_relink_reminders_task`` (beat schedules
and routes name them).
"""

from .queueing.celery import *  # noqa: F403
from .queueing.celery import __all__  # noqa: F401
