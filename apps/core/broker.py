"""Kombu's Redis transport, with one change: a channel publishes through one Redis client that
it keeps, instead of building a new one for every message.

kombu (5.x) creates a fresh `redis.Redis` for each publish (`Channel.conn_or_acquire()`), and
redis-py's constructor copies ~170 response callbacks into a new case-insensitive dict each
time: about a sixth of the CPU an ingest request spends, measured with bench/ingest.py
(docs/benchmarks.md). The client is only a handle on the channel's connection pool, which
stays the same; connections, retries and every other behaviour are kombu's.

Settings select it for `redis://` broker URLs (CELERY_BROKER_TRANSPORT)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from kombu.transport import redis


class Channel(redis.Channel):
    _kept_client: Any = None

    @contextmanager
    def conn_or_acquire(self, client: Any = None) -> Iterator[Any]:
        if client:
            yield client
            return
        if self._kept_client is None:
            self._kept_client = self._create_client()
        yield self._kept_client


class Transport(redis.Transport):
    Channel = Channel
