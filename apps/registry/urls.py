"""The registry API, under /api/v1/."""

from django.urls import path

from apps.registry import apis

urlpatterns = [
    path("base-models", apis.BaseModelListApi.as_view(), name="base-models"),
    path("base-models/<str:ref>/serve", apis.BaseModelServeApi.as_view(), name="base-model-serve"),
    path("checkpoints", apis.CheckpointListApi.as_view(), name="checkpoints"),
    path("checkpoints/<str:ref>", apis.CheckpointDetailApi.as_view(), name="checkpoint-detail"),
    path(
        "checkpoints/<str:ref>/publish",
        apis.CheckpointPublishApi.as_view(),
        name="checkpoint-publish",
    ),
    path(
        "checkpoints/<str:ref>/retire", apis.CheckpointRetireApi.as_view(), name="checkpoint-retire"
    ),
    path("aliases", apis.AliasListApi.as_view(), name="aliases"),
    path("aliases/<str:name>", apis.AliasDetailApi.as_view(), name="alias-detail"),
    path("aliases/<str:name>/rollback", apis.AliasRollbackApi.as_view(), name="alias-rollback"),
    path("serving/manifest", apis.ServingManifestApi.as_view(), name="serving-manifest"),
]
