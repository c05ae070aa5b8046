"""The evaluation API, under /api/v1/."""

from django.urls import path

from apps.evaluation.apis import LeaderboardApi, ThumbsApi

urlpatterns: list = [
    path("leaderboard", LeaderboardApi.as_view(), name="evaluation-leaderboard-api"),
    path("thumbs", ThumbsApi.as_view(), name="evaluation-thumbs-api"),
]
