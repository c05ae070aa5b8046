"""The datasets API, under /api/v1/."""

from django.urls import path

from apps.datasets import apis

urlpatterns = [
    path("recipes", apis.RecipeListApi.as_view(), name="recipe-list"),
    path("recipes/<int:recipe_id>", apis.RecipeDetailApi.as_view(), name="recipe-detail"),
    path("recipes/<int:recipe_id>/build", apis.RecipeBuildApi.as_view(), name="recipe-build"),
    path("eval-sets", apis.EvalSetListApi.as_view(), name="eval-set-list"),
    path("dataset-versions", apis.VersionListApi.as_view(), name="dataset-version-list"),
    path(
        "dataset-versions/<int:version_id>",
        apis.VersionDetailApi.as_view(),
        name="dataset-version-detail",
    ),
    path(
        "dataset-versions/<int:version_id>/files/<str:name>",
        apis.VersionFileApi.as_view(),
        name="dataset-version-file",
    ),
    path(
        "dataset-versions/<int:version_id>/compare",
        apis.VersionCompareApi.as_view(),
        name="dataset-version-compare",
    ),
]
