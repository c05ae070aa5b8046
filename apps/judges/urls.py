"""The judges API, under /api/v1/."""

from django.urls import path

from apps.judges import apis

urlpatterns = [
    path("judges", apis.JudgeListApi.as_view(), name="judges"),
    path("judges/<str:ref>", apis.JudgeDetailApi.as_view(), name="judge-detail"),
    path("judges/<str:ref>/audits", apis.JudgeAuditApi.as_view(), name="judge-audits"),
    path("gates", apis.GateListApi.as_view(), name="gates"),
    path("gates/<int:pk>", apis.GateDetailApi.as_view(), name="gate-detail"),
]
