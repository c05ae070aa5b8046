"""Defensive reads from PostgreSQL: a stored value Python cannot represent never breaks a query.

A `timestamptz` outside Python's datetime range (year 1 to 9999, e.g. `0001-01-01T00:00+14:00`,
which is 1 BC in UTC) makes psycopg raise `DataError: timestamp too small` while it loads the
row, and so fails every query that touches the row: a list, a page, a task, forever (the event
log is append-only). Such a value is read as None instead (a missing time), and the row is
flagged unreadable where it is shown (apps/feedback/selectors.py). New values outside a sane
range are refused at the door (apps/feedback/schema.py)."""

from __future__ import annotations

import logging
from typing import Any

from django.db.backends.signals import connection_created

logger = logging.getLogger(__name__)


def _safe_loader(base: type) -> type:
    """A loader that delegates to BASE (psycopg's C loaders cannot be subclassed) and reads a
    value BASE cannot represent as None."""
    from psycopg import DataError
    from psycopg.adapt import Loader

    class SafeLoader(Loader):
        format = base.format
        sinkhole_safe = True
        # Django's timestamptz loader names its zone; Django reads it back to tell whether a
        # connection needs configuring.
        if hasattr(base, "timezone"):
            timezone = base.timezone

        def __init__(self, oid: int, context: Any = None) -> None:
            super().__init__(oid, context)
            self._base = base(oid, context)

        def load(self, data: Any) -> Any:
            try:
                return self._base.load(data)
            except DataError as exc:
                logger.warning("unreadable timestamp read as null: %s", exc)
                return None

    return SafeLoader


def make_timestamps_safe(connection: Any, **_: Any) -> None:
    """connection_created receiver: wrap this connection's timestamp loaders."""
    if connection.vendor != "postgresql" or not hasattr(connection.connection, "adapters"):
        return
    from psycopg.pq import Format

    adapters = connection.connection.adapters
    for name in ("timestamptz", "timestamp"):
        oid = adapters.types[name].oid
        for fmt in (Format.TEXT, Format.BINARY):
            base = adapters.get_loader(oid, fmt)
            if base is not None and not getattr(base, "sinkhole_safe", False):
                adapters.register_loader(oid, _safe_loader(base))


def connect_signals() -> None:
    connection_created.connect(make_timestamps_safe, dispatch_uid="sinkhole_safe_timestamps")
