"""Celery for the example project, used when ``CELERY_BROKER_URL`` is set.

    cd example_project
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 CACHE_URL=redis://127.0.0.1:6379/1 \\
        celery -A demo_site worker -l info
    CELERY_BROKER_URL=redis://127.0.0.1:6379/0 celery -A demo_site beat -l info

The worker finds ``django_cronofy_conferencing.tasks`` through
``autodiscover_tasks()``; beat runs ``CELERY_BEAT_SCHEDULE`` from the settings.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "demo_site.settings")

app = Celery("demo_site")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
