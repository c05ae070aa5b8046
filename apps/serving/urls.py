"""The serving API, under /api/v1/: experiments."""

from django.urls import path

from apps.serving import apis

urlpatterns = [
    path("experiments", apis.ExperimentListApi.as_view(), name="experiment-list"),
    path("experiments/<str:ref>", apis.ExperimentDetailApi.as_view(), name="experiment-detail"),
    path("experiments/<str:ref>/start", apis.ExperimentStartApi.as_view(), name="experiment-start"),
    path("experiments/<str:ref>/stop", apis.ExperimentStopApi.as_view(), name="experiment-stop"),
    path(
        "experiments/<str:ref>/promote",
        apis.ExperimentPromoteApi.as_view(),
        name="experiment-promote",
    ),
    path(
        "experiments/<str:ref>/rollback",
        apis.ExperimentRollbackApi.as_view(),
        name="experiment-rollback",
    ),
    path(
        "experiments/<str:ref>/results",
        apis.ExperimentResultsApi.as_view(),
        name="experiment-results",
    ),
    path(
        "experiments/<str:ref>/assign", apis.ExperimentAssignApi.as_view(), name="experiment-assign"
    ),
]
