"""HTTP Basic authentication as Langfuse clients send it: the user name is a source's
publishable key (`pk-…`, Langfuse's "public key") and the password the same source's secret key
(`sk-…`). Both must be active keys of one active source; the secret key is the one that counts
(rate limits are charged to it)."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from rest_framework import authentication, exceptions, permissions
from rest_framework.request import Request

from apps.sources.auth import SourcePrincipal
from apps.sources.models import ApiKey
from apps.sources.selectors import api_key_by_raw

REALM = "Sinkhole (Langfuse-compatible API)"
_HOW = "Use HTTP Basic auth with the source's publishable key (pk-…) as user and its secret key (sk-…) as password."


class LangfuseBasicAuthentication(authentication.BaseAuthentication):
    def authenticate(self, request: Request) -> tuple[SourcePrincipal, ApiKey]:
        header = request.META.get("HTTP_AUTHORIZATION", "")
        scheme, _, encoded = header.partition(" ")
        if not header or scheme.lower() != "basic" or not encoded.strip():
            raise exceptions.NotAuthenticated(_HOW)
        try:
            decoded = base64.b64decode(encoded.strip(), validate=True).decode("utf-8")
        except (binascii.Error, UnicodeDecodeError) as exc:
            raise exceptions.AuthenticationFailed(
                "The Basic credentials are not valid base64."
            ) from exc
        public, _, secret = decoded.partition(":")
        if not public.startswith("pk-") or not secret.startswith("sk-"):
            raise exceptions.AuthenticationFailed(_HOW)
        public_key, secret_key = api_key_by_raw(public), api_key_by_raw(secret)
        if public_key is None or secret_key is None:
            raise exceptions.AuthenticationFailed("A key is unknown or has been revoked.")
        if public_key.kind != ApiKey.Kind.PUBLISHABLE or secret_key.kind != ApiKey.Kind.SECRET:
            raise exceptions.AuthenticationFailed(_HOW)
        if public_key.source_id != secret_key.source_id:
            raise exceptions.AuthenticationFailed("The two keys belong to different sources.")
        return SourcePrincipal(secret_key), secret_key

    def authenticate_header(self, request: Request) -> str:
        return f'Basic realm="{REALM}"'


class IsLangfuseClient(permissions.BasePermission):
    message = _HOW

    def has_permission(self, request: Request, view: Any) -> bool:
        return isinstance(request.auth, ApiKey) and request.auth.kind == ApiKey.Kind.SECRET
