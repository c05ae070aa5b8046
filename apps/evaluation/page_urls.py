"""The evaluation pages (server-rendered, Django login), under /leaderboard/."""

from django.urls import path

from apps.evaluation.pages import leaderboard_page

urlpatterns: list = [
    path("", leaderboard_page, name="evaluation-leaderboard"),
]
