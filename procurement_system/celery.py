"""The one Celery application of the project.

Configuration lives in Django settings under the ``CELERY_`` namespace; tasks are discovered in
each app's ``tasks.py``. Under Django, Celery uses ``DjangoTask`` so ``delay_on_commit`` is there.
"""

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "procurement_system.settings")

app = Celery("procurement_system")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()
app.conf.include = ["procurement_system.tasks"]
