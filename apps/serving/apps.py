from __future__ import annotations

from django.apps import AppConfig


class ServingConfig(AppConfig):
    name = "apps.serving"
    label = "serving"
    verbose_name = "Serving"

    def ready(self) -> None:
        # Feedback that quotes a gateway answer's interaction id is attributed to the checkpoint
        # that answered: feedback asks through this hook, never by importing serving.
        from apps.feedback import signals  # lazy: apps.py loads before models
        from apps.serving.selectors import served_answers_by_interaction

        signals.served_answers.provide(served_answers_by_interaction)
