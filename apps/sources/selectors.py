from __future__ import annotations

import time
from functools import cache
from typing import Any

from django.db import connection

from apps.sources.models import ApiKey, Source
from apps.sources.services import hash_key


def api_key_by_raw(raw_key: str) -> ApiKey | None:
    """The active key matching RAW_KEY, with its source, or None.

    Every API request starts here, so this is the ORM query `ApiKey.objects.select_related
    ("source").filter(key_hash=…, revoked_at__isnull=True, source__is_active=True).first()`
    written out once: the same rows and the same model instances, without compiling the query
    each time (that took several times longer than the database did). Nothing is cached
    between requests, so a revoked key or a changed source counts from the next request on."""
    if not raw_key.startswith(("sk-", "pk-")) or len(raw_key) > 200:
        return None
    sql, key_fields, source_fields = _key_lookup()
    with connection.cursor() as cursor:
        cursor.execute(sql, [hash_key(raw_key)])
        row = cursor.fetchone()
    if row is None:
        return None
    values = list(row)
    for index, column, converters in _converters():  # JSON text to Python, for one
        for convert in converters:
            values[index] = convert(values[index], column, connection)
    key = ApiKey.from_db(
        connection.alias, [f.attname for f in key_fields], values[: len(key_fields)]
    )
    source = Source.from_db(
        connection.alias, [f.attname for f in source_fields], values[len(key_fields) :]
    )
    key._state.fields_cache["source"] = source  # what select_related leaves behind
    return key


# Authentication asks for the key on every API request. It may answer from what it found in
# the last KEY_CACHE_SECONDS, in this process: a key revoked, or a source changed, through a
# save() (the services, the admin, the management commands) is forgotten at once here
# (signals, see apps.py) and within KEY_CACHE_SECONDS in every other process; a change by a
# queryset update() or by hand in SQL, within KEY_CACHE_SECONDS everywhere. Only keys that
# were found are kept, so a new key works at once.
KEY_CACHE_SECONDS = 2.0
_KEY_CACHE_SIZE = 1024
_recent_keys: dict[str, tuple[float, ApiKey]] = {}


def api_key_for_request(raw_key: str) -> ApiKey | None:
    """api_key_by_raw, for authentication: may answer from the last KEY_CACHE_SECONDS."""
    if not raw_key.startswith(("sk-", "pk-")) or len(raw_key) > 200:
        return None
    digest = hash_key(raw_key)
    now = time.monotonic()
    recent = _recent_keys.get(digest)
    if recent is not None and now - recent[0] < KEY_CACHE_SECONDS:
        return recent[1]
    key = api_key_by_raw(raw_key)
    if key is None:
        _recent_keys.pop(digest, None)
        return None
    if len(_recent_keys) >= _KEY_CACHE_SIZE:
        _recent_keys.clear()
    _recent_keys[digest] = (now, key)
    return key


def forget_recent_keys(**_: object) -> None:
    """Drop every remembered key (connected to saves and deletes of keys and sources)."""
    _recent_keys.clear()


@cache
def _key_lookup() -> tuple[str, tuple[Any, ...], tuple[Any, ...]]:
    key_fields, source_fields = (
        tuple(ApiKey._meta.concrete_fields),
        tuple(Source._meta.concrete_fields),
    )
    quote = connection.ops.quote_name
    columns = [f"k.{quote(f.column)}" for f in key_fields] + [
        f"s.{quote(f.column)}" for f in source_fields
    ]
    sql = (
        f"SELECT {', '.join(columns)} FROM {quote(ApiKey._meta.db_table)} k "  # noqa: S608 - names from the models
        f"JOIN {quote(Source._meta.db_table)} s ON s.{quote(Source._meta.pk.column)} = k.{quote(ApiKey._meta.get_field('source').column)} "
        "WHERE k.key_hash = %s AND k.revoked_at IS NULL AND s.is_active LIMIT 1"
    )
    return sql, key_fields, source_fields


@cache
def _converters() -> tuple[tuple[int, Any, tuple[Any, ...]], ...]:
    """For each selected column that has them, the converters the ORM would apply to it (the
    backend's, then the field's). They depend on the engine and the field only."""
    _, key_fields, source_fields = _key_lookup()
    found = []
    for index, field in enumerate((*key_fields, *source_fields)):
        column = field.get_col(field.model._meta.db_table)
        converters = tuple(
            connection.ops.get_db_converters(column) + field.get_db_converters(connection)
        )
        if converters:
            found.append((index, column, converters))
    return tuple(found)
