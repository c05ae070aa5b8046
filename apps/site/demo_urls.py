"""Demo pages (see apps.site.demo): mounted at /demo/ by config/urls.py."""

from django.urls import path

from apps.site import demo

urlpatterns = [
    path("widget", demo.widget_demo, name="demo-widget"),
]
