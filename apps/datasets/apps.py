from __future__ import annotations

from django.apps import AppConfig


class DatasetsConfig(AppConfig):
    name = "apps.datasets"
    label = "datasets"
    verbose_name = "Datasets"

    def ready(self) -> None:
        # Feedback forgets a rater without knowing datasets exist: it sends the signal, the
        # versions built with the rater's events are flagged here.
        from apps.datasets.services.forgetting import on_rater_forgotten
        from apps.feedback.signals import rater_forgotten  # lazy: apps.py loads before models

        rater_forgotten.connect(on_rater_forgotten, dispatch_uid="datasets.rater_forgotten")
