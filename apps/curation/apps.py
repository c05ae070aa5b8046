from django.apps import AppConfig
from django.db.models.signals import post_migrate


class CurationConfig(AppConfig):
    name = "apps.curation"
    label = "curation"
    verbose_name = "Curation"

    def ready(self) -> None:
        from apps.curation.roles import on_post_migrate

        post_migrate.connect(on_post_migrate, dispatch_uid="curation.roles")
