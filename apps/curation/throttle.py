"""Login throttling with django-axes: after AXES_FAILURE_LIMIT wrong passwords for one username
from one IP address, that pair is locked out for AXES_COOLOFF_TIME (settings: LOGIN_FAILURE_LIMIT,
LOGIN_LOCKOUT_MINUTES), on the login page and the admin's alike; `manage.py axes_reset` (or
`axes_reset_username NAME`) unlocks early."""

from __future__ import annotations

from typing import Any

from axes.backends import AxesStandaloneBackend
from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render


class LoginThrottleBackend(AxesStandaloneBackend):
    """Axes's lockout check for every login that comes with a request (the login form, the
    admin). `authenticate()` called without one (Django's test client, scripts) has no client to
    throttle: axes would raise, so it passes on to the next backend instead."""

    def authenticate(
        self,
        request: HttpRequest | None,
        username: str | None = None,
        password: str | None = None,
        **kwargs: Any,
    ) -> None:
        if request is None:
            return None
        return super().authenticate(request, username, password, **kwargs)


def lockout_response(
    request: HttpRequest, original_response: HttpResponse | None, credentials: Any = None
) -> HttpResponse:
    """The page a locked-out login gets: 429, what happened and for how long."""
    minutes = int(settings.AXES_COOLOFF_TIME.total_seconds() // 60)
    return render(
        request,
        "registration/locked_out.html",
        {"failure_limit": settings.AXES_FAILURE_LIMIT, "minutes": minutes},
        status=429,
    )
