"""Keyed hashes: rater ids and client addresses are stored only as HMACs with a server secret,
so the same rater links up across events but nobody holding the database can reverse it.

They live with the sources because raters are pseudonymous per source, and the rate limits
(`apps.sources.ratelimit`) hash raters before feedback stores anything."""

from __future__ import annotations

import hashlib
import hmac
from functools import lru_cache

from django.conf import settings


@lru_cache(maxsize=1)
def _key() -> bytes:
    return settings.RATER_HASH_KEY.encode()


def keyed_hash(value: str, *, namespace: str) -> str:
    return hmac.new(_key(), f"{namespace}\x00{value}".encode(), hashlib.sha256).hexdigest()


@lru_cache(maxsize=8192)
def rater_hash(source_id: int, rater: str) -> str:
    """Raters are pseudonymous per source: 'alice' of one front-end is not 'alice' of another.
    Remembered for recent raters: a batch hashes each rater twice (rate limit, then storage)."""
    return keyed_hash(f"{source_id}\x00{rater}", namespace="rater")


def ip_hash(address: str) -> str:
    return keyed_hash(address, namespace="ip")
