"""The curation pages (server-rendered, Django login)."""

from django.urls import path  # noqa: F401

urlpatterns: list = []
