from django.apps import AppConfig


class JudgesConfig(AppConfig):
    name = "apps.judges"
    label = "judges"
    verbose_name = "Judges"

    def ready(self) -> None:
        from apps.judges.services import gate_publish_check
        from apps.registry.services import PUBLISH_CHECKS  # lazy: apps.py loads before models

        if gate_publish_check not in PUBLISH_CHECKS:
            PUBLISH_CHECKS.append(gate_publish_check)
