"""The example host project of django-cronofy-conferencing.

Celery is optional: its app is loaded only when a broker is configured
(``CELERY_BROKER_URL``), so the project runs without Celery installed.
"""

import os

if os.environ.get("CELERY_BROKER_URL"):
    from .celery import app as celery_app

    __all__ = ["celery_app"]
