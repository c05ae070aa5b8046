from __future__ import annotations

from apps.sources.models import ApiKey
from apps.sources.services import hash_key


def api_key_by_raw(raw_key: str) -> ApiKey | None:
    """The active key matching RAW_KEY, with its source, or None."""
    if not raw_key.startswith(("sk-", "pk-")) or len(raw_key) > 200:
        return None
    return (
        ApiKey.objects.select_related("source")
        .filter(key_hash=hash_key(raw_key), revoked_at__isnull=True, source__is_active=True)
        .first()
    )
