"""API-key authentication and the permissions built on it.

Secret keys (`sk-…`) ingest and read; publishable keys (`pk-…`) only ingest, and only from a
browser origin the source allows. Curators and admins use their Django session instead."""

from __future__ import annotations

from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from apps.sources.models import ApiKey, Source
from apps.sources.selectors import api_key_for_request


class SourcePrincipal:
    """request.user for a request made with an API key."""

    is_authenticated = True
    is_anonymous = False
    is_staff = False
    is_superuser = False

    def __init__(self, key: ApiKey) -> None:
        self.key = key
        self.source: Source = key.source

    def __str__(self) -> str:
        return f"source:{self.source.name}"

    def has_perm(self, perm: str, obj: Any = None) -> bool:
        return False


def origin_allowed(source: Source, origin: str | None) -> bool:
    if not origin:
        return False
    return "*" in source.allowed_origins or origin in source.allowed_origins


class ApiKeyAuthentication(authentication.BaseAuthentication):
    keyword = "Bearer"

    def authenticate(self, request: Request) -> tuple[SourcePrincipal, ApiKey] | None:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        if not header:
            return None
        scheme, _, raw = header.partition(" ")
        if scheme.lower() != "bearer" or not raw.strip():
            raise exceptions.AuthenticationFailed("Use 'Authorization: Bearer <key>'.")
        key = api_key_for_request(raw.strip())
        if key is None:
            raise exceptions.AuthenticationFailed("The API key is unknown or has been revoked.")
        if key.kind == ApiKey.Kind.PUBLISHABLE and not origin_allowed(
            key.source, request.META.get("HTTP_ORIGIN")
        ):
            raise exceptions.PermissionDenied(
                "A publishable key works only from a browser origin that the source allows; "
                "use the secret key from a server."
            )
        return SourcePrincipal(key), key

    def authenticate_header(self, request: Request) -> str:
        return self.keyword


class CanIngest(permissions.BasePermission):
    message = "Ingest needs a source's API key."

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey)


class CanReadFeedback(permissions.BasePermission):
    message = "Reading feedback needs a secret key (sk-…) or a curator's login."

    def has_permission(self, request: Request, view: Any) -> bool:
        if isinstance(request.auth, ApiKey):
            return request.auth.kind == ApiKey.Kind.SECRET
        user = request.user
        return bool(user and user.is_authenticated and user.has_perm("feedback.view_event"))
