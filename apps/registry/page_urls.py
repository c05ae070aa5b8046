"""The registry pages (server-rendered, Django login), under /checkpoints/."""

from django.urls import path

from apps.registry import pages

app_name = "registry"

urlpatterns = [
    path("", pages.checkpoint_list, name="list"),
    path("aliases/<slug:name>/rollback", pages.alias_rollback, name="alias-rollback"),
    path("base/<str:ref>/serve", pages.base_model_serve, name="base-serve"),
    path("<str:ref>/", pages.checkpoint_detail, name="checkpoint"),
    path("<str:ref>/publish", pages.checkpoint_publish, name="publish"),
    path("<str:ref>/retire", pages.checkpoint_retire, name="retire"),
    path("<str:ref>/alias", pages.alias_set, name="alias-set"),
]
