from django.apps import AppConfig


class PeersConfig(AppConfig):
    """Everything Sinkhole knows about one peer (Open WebUI, FastChat, Langfuse, ...) lives in
    `apps/peers/<peer>/`. The app label stays `connectors`, the name its tables and migrations
    were created under."""

    name = "apps.peers"
    label = "connectors"
    verbose_name = "Peers and connectors"

    def ready(self) -> None:
        from apps.feedback.importers import register  # lazy: apps.py loads before models
        from apps.peers.fastchat.importer import IMPORTER as FASTCHAT
        from apps.peers.langfuse import openapi  # noqa: F401  (registers the Basic auth scheme)
        from apps.peers.openwebui.importer import IMPORTER as OPENWEBUI

        register(OPENWEBUI)
        register(FASTCHAT)
