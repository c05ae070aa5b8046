"""The judges pages, under /judges/."""

from django.urls import path

from apps.judges import pages

app_name = "judges"

urlpatterns = [
    path("", pages.judge_list, name="list"),
    path("gates/new", pages.gate_new, name="gate-new"),
    path("gates/<int:pk>/", pages.gate_detail, name="gate"),
    path("<str:ref>/", pages.judge_detail, name="judge"),
    path("<str:ref>/audit", pages.judge_audit, name="audit"),
]
