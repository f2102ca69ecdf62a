"""The Celery app of the integration tests' worker (``celery -A tests.integration.celery_app``).

Configured from the environment by the test that starts the worker: the Redis
broker (``CELERY_TEST_BROKER_URL``) and a queue of its own (``CELERY_TEST_QUEUE``),
so concurrent test runs never take each other's tasks. Django's settings are
``tests.settings``, which read the database, cache, simulator and rate limits
from the environment too.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "tests.settings")

app = Celery("cronofy_conferencing_tests")
app.conf.update(
    broker_url=os.environ.get("CELERY_TEST_BROKER_URL", "redis://127.0.0.1:6379/15"),
    task_default_queue=os.environ.get("CELERY_TEST_QUEUE", "cronofy-conferencing-tests"),
    task_ignore_result=True,
    imports=["django_cronofy_conferencing.tasks"],
    broker_connection_retry_on_startup=True,
    worker_hijack_root_logger=False,
    worker_prefetch_multiplier=4,
)
