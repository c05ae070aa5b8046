"""The training pages (server-rendered, Django login), under /training/."""

from django.urls import path

from apps.training import pages

app_name = "training"

urlpatterns = [
    path("", pages.run_list, name="list"),
    path("<int:run_id>/", pages.run_detail, name="run"),
    path("<int:run_id>/live", pages.run_live, name="live"),
    path("<int:run_id>/cancel", pages.run_cancel, name="cancel"),
]
