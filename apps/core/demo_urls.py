"""Demo pages (see apps.core.demo): mounted at /demo/ by config/urls.py."""

from django.urls import path

from apps.core import demo

urlpatterns = [
    path("widget", demo.widget_demo, name="demo-widget"),
]
