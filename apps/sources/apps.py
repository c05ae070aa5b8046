from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "apps.sources"
    label = "sources"
    verbose_name = "Sources and keys"

    def ready(self) -> None:
        from apps.sources import openapi  # noqa: F401  (registers the auth scheme with drf-spectacular)
