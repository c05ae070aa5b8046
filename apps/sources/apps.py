from django.apps import AppConfig


class SourcesConfig(AppConfig):
    name = "apps.sources"
    label = "sources"
    verbose_name = "Sources and keys"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.sources import openapi  # noqa: F401  (registers the auth scheme with drf-spectacular)
        from apps.sources.cors import forget_known_origins
        from apps.sources.models import ApiKey, Source
        from apps.sources.selectors import forget_recent_keys

        post_save.connect(
            forget_known_origins, sender=Source, dispatch_uid="cors-forget-origins-save"
        )
        post_delete.connect(
            forget_known_origins, sender=Source, dispatch_uid="cors-forget-origins-delete"
        )
        # Authentication remembers keys for a moment (selectors.KEY_CACHE_SECONDS).
        for model in (ApiKey, Source):
            post_save.connect(
                forget_recent_keys, sender=model, dispatch_uid=f"forget-keys-save-{model.__name__}"
            )
            post_delete.connect(
                forget_recent_keys,
                sender=model,
                dispatch_uid=f"forget-keys-delete-{model.__name__}",
            )
