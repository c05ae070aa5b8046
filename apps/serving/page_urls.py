"""The serving pages (server-rendered, Django login), under /experiments/."""

from django.urls import path

from apps.serving import pages

urlpatterns = [
    path("", pages.experiment_list, name="serving-experiments"),
    path("new", pages.experiment_new, name="serving-experiment-new"),
    path("<str:ref>/", pages.experiment_detail, name="serving-experiment"),
    path(
        "<str:ref>/<slug:action>",
        pages.experiment_action,
        name="serving-experiment-action",
    ),
]
