"""The training API, under /api/v1/."""

from django.urls import path

from apps.training import apis

urlpatterns = [
    path("training-runs", apis.TrainingRunListApi.as_view(), name="training-runs"),
    path(
        "training-runs/<int:run_id>",
        apis.TrainingRunDetailApi.as_view(),
        name="training-run-detail",
    ),
    path(
        "training-runs/<int:run_id>/cancel",
        apis.TrainingRunCancelApi.as_view(),
        name="training-run-cancel",
    ),
]
