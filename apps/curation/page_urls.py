"""The curation pages (server-rendered, Django login), mounted at the site root."""

from django.contrib.auth import views as auth_views
from django.urls import path

from apps.curation import pages
from apps.curation.status import status_page

urlpatterns = [
    path(
        "accounts/login/",
        auth_views.LoginView.as_view(
            template_name="registration/login.html", redirect_authenticated_user=True
        ),
        name="login",
    ),
    path(
        "accounts/logout/",
        auth_views.LogoutView.as_view(next_page="/accounts/login/"),
        name="logout",
    ),
    path("inbox/", pages.inbox, name="inbox"),
    path("events/<int:event_id>/", pages.event_detail, name="event-page"),
    path("dashboard/", pages.dashboard, name="dashboard"),
    path("status/", status_page, name="status"),
]
