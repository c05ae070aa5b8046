"""A small typed client for Sinkhole's feedback API (`POST /api/v1/feedback`).

    from sinkhole_client import SinkholeClient

    client = SinkholeClient("sk-...", "https://sinkhole.example.org")
    client.log_rating(messages="What is the capital of Australia?", response="Canberra.", rating=1)
    client.flush()

See README.md for batching, retries, errors and the asyncio client."""

from __future__ import annotations

from sinkhole_client._core import (
    DROPPED,
    RETRIES_EXHAUSTED,
    UNDELIVERED,
    DeliveryError,
    Result,
    SinkholeError,
    Stats,
    __version__,
)
from sinkhole_client._events import edit, preference, ranking, rating
from sinkhole_client.aio import AsyncSinkholeClient
from sinkhole_client.client import SinkholeClient

__all__ = [
    "DROPPED",
    "RETRIES_EXHAUSTED",
    "UNDELIVERED",
    "AsyncSinkholeClient",
    "DeliveryError",
    "Result",
    "SinkholeClient",
    "SinkholeError",
    "Stats",
    "__version__",
    "edit",
    "preference",
    "ranking",
    "rating",
]
