"""Writes for sources and keys. Keys are shown once, at creation, and stored as sha256 hashes:
they are 256-bit random strings, so a fast hash is as safe as a slow one here."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass

from django.db import transaction
from django.utils import timezone

from apps.sources.models import ApiKey, Source

KEY_PREFIXES = {ApiKey.Kind.SECRET: "sk-", ApiKey.Kind.PUBLISHABLE: "pk-"}


def hash_key(raw_key: str) -> str:
    return hashlib.sha256(raw_key.encode()).hexdigest()


@dataclass(frozen=True)
class IssuedKey:
    key: ApiKey
    raw: str


def api_key_issue(*, source: Source, kind: str) -> IssuedKey:
    """Create a key of KIND for SOURCE; the raw key is returned once and never stored."""
    raw = KEY_PREFIXES[ApiKey.Kind(kind)] + secrets.token_urlsafe(32)
    key = ApiKey(source=source, kind=kind, prefix=raw[:10], key_hash=hash_key(raw))
    key.full_clean()
    key.save()
    return IssuedKey(key=key, raw=raw)


@transaction.atomic
def source_create(
    *,
    name: str,
    description: str = "",
    allowed_origins: list[str] | None = None,
    redact_pii: bool = True,
) -> tuple[Source, IssuedKey, IssuedKey]:
    """Create a source with one secret and one publishable key."""
    source = Source(
        name=name,
        description=description,
        allowed_origins=allowed_origins or [],
        redact_pii=redact_pii,
    )
    source.full_clean()
    source.save()
    secret = api_key_issue(source=source, kind=ApiKey.Kind.SECRET)
    publishable = api_key_issue(source=source, kind=ApiKey.Kind.PUBLISHABLE)
    return source, secret, publishable


def api_key_revoke(*, key: ApiKey) -> ApiKey:
    if key.revoked_at is None:
        key.revoked_at = timezone.now()
        key.save(update_fields=["revoked_at"])
    return key


@transaction.atomic
def source_keys_rotate(*, source: Source, kind: str | None = None) -> list[IssuedKey]:
    """Revoke the source's active keys (of KIND, or both kinds) and issue fresh ones."""
    kinds = [ApiKey.Kind(kind)] if kind else [ApiKey.Kind.SECRET, ApiKey.Kind.PUBLISHABLE]
    issued = []
    for each in kinds:
        for key in source.keys.filter(kind=each, revoked_at__isnull=True):
            api_key_revoke(key=key)
        issued.append(api_key_issue(source=source, kind=each))
    return issued
