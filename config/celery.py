"""The Celery app. Queues: `ingest` (post-ingest processing), `default`; later `quality`,
`datasets` and `training` (GPU workers start with `-Q training`)."""

from __future__ import annotations

import os

from celery import Celery

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

app = Celery("sinkhole")
app.config_from_object("django.conf:settings", namespace="CELERY")
app.autodiscover_tasks()


@app.on_after_finalize.connect
def _make_broker_folders(sender: Celery, **_: object) -> None:
    """The file-system broker needs its folders before the first message is sent."""
    options = sender.conf.broker_transport_options or {}
    for key in ("data_folder_in", "data_folder_out", "processed_folder"):
        if options.get(key):
            os.makedirs(options[key], exist_ok=True)
