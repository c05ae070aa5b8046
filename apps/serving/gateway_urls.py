"""The OpenAI-compatible gateway, under /v1/."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
