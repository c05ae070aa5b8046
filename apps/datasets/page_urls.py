"""The datasets pages (server-rendered, Django login), under /datasets/."""

from django.urls import path

from apps.datasets import pages

app_name = "datasets"

urlpatterns = [
    path("", pages.index, name="index"),
    path("recipes/new", pages.recipe_new, name="recipe_new"),
    path("recipes/<int:recipe_id>/", pages.recipe, name="recipe"),
    path("recipes/<int:recipe_id>/build", pages.recipe_build, name="recipe_build"),
    path("eval-sets/new", pages.eval_set_new, name="eval_set_new"),
    path("versions/<int:version_id>/", pages.version, name="version"),
    path("versions/<int:version_id>/progress", pages.version_progress, name="version_progress"),
    path("versions/<int:version_id>/compare", pages.version_compare, name="version_compare"),
]
