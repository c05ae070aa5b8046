"""The logging methods both clients offer. `log_*` and `send` check the event, queue it and
return its id at once; `log_*_now` and `send_now` send it straight away and return the server's
answer (a `Result` for the thread client, an awaitable of one for the asyncio client)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Generic, TypeVar

from sinkhole_client import _events as events
from sinkhole_client._events import Choice, Messages, Responses

NowT = TypeVar("NowT")


class EventMethods(Generic[NowT]):
    def _enqueue(self, event: dict[str, Any]) -> str:
        raise NotImplementedError

    def _send_now(self, event: dict[str, Any]) -> NowT:
        raise NotImplementedError

    # -- raw events --------------------------------------------------------------------------

    def send(self, event: Mapping[str, Any]) -> str:
        """Queue a raw API v1 event (a dict with `type`); return its id (made here if it has
        none). Only `type` and `id` are checked here; the server checks the rest."""
        return self._enqueue(events.prepare_raw(event))

    def send_now(self, event: Mapping[str, Any]) -> NowT:
        """Send a raw event at once, retrying transient failures; return the server's answer."""
        return self._send_now(events.prepare_raw(event))

    # -- queued: return the event id at once -------------------------------------------------

    def log_rating(
        self,
        *,
        messages: Messages,
        response: str,
        rating: int | None = None,
        score: int | None = None,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> str:
        """Queue a rating of one reply: thumbs (`rating` 1 or -1) and/or a 1-10 `score`.

        `messages` is the conversation before the reply (OpenAI chat format, or one string for a
        single user message). Returns the event id (a fresh uuid4 unless `id` is given), which
        makes retries safe. Raises ValueError at once for an impossible event."""
        return self._enqueue(
            events.rating(
                messages=messages,
                response=response,
                rating=rating,
                score=score,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_preference(
        self,
        *,
        messages: Messages,
        responses: Responses,
        choice: Choice,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> str:
        """Queue an A/B choice between two `responses` (each a string, or
        `{"content", "model"?, "checkpoint"?}`): `choice` is 0, 1, "tie" or "both_bad"."""
        return self._enqueue(
            events.preference(
                messages=messages,
                responses=responses,
                choice=choice,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_ranking(
        self,
        *,
        messages: Messages,
        responses: Responses,
        ranking: Sequence[int],
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> str:
        """Queue a ranking of 2-20 `responses`: `ranking` lists their indices, best first."""
        return self._enqueue(
            events.ranking(
                messages=messages,
                responses=responses,
                ranking=ranking,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_edit(
        self,
        *,
        messages: Messages,
        response: str,
        edited: str,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> str:
        """Queue a correction: `edited` is `response` as the user rewrote it."""
        return self._enqueue(
            events.edit(
                messages=messages,
                response=response,
                edited=edited,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    # -- sent at once: return the server's answer --------------------------------------------

    def log_rating_now(
        self,
        *,
        messages: Messages,
        response: str,
        rating: int | None = None,
        score: int | None = None,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> NowT:
        """`log_rating`, sent at once: returns the server's Result or raises SinkholeError."""
        return self._send_now(
            events.rating(
                messages=messages,
                response=response,
                rating=rating,
                score=score,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_preference_now(
        self,
        *,
        messages: Messages,
        responses: Responses,
        choice: Choice,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> NowT:
        """`log_preference`, sent at once: returns the server's Result or raises SinkholeError."""
        return self._send_now(
            events.preference(
                messages=messages,
                responses=responses,
                choice=choice,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_ranking_now(
        self,
        *,
        messages: Messages,
        responses: Responses,
        ranking: Sequence[int],
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> NowT:
        """`log_ranking`, sent at once: returns the server's Result or raises SinkholeError."""
        return self._send_now(
            events.ranking(
                messages=messages,
                responses=responses,
                ranking=ranking,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )

    def log_edit_now(
        self,
        *,
        messages: Messages,
        response: str,
        edited: str,
        model: str | None = None,
        checkpoint: str | None = None,
        rater: str | None = None,
        reason: str | None = None,
        comment: str | None = None,
        tags: Sequence[str] | None = None,
        metadata: Mapping[str, Any] | None = None,
        consent: bool | None = None,
        licence: str | None = None,
        timestamp: datetime | str | None = None,
        id: str | None = None,
    ) -> NowT:
        """`log_edit`, sent at once: returns the server's Result or raises SinkholeError."""
        return self._send_now(
            events.edit(
                messages=messages,
                response=response,
                edited=edited,
                model=model,
                checkpoint=checkpoint,
                rater=rater,
                reason=reason,
                comment=comment,
                tags=tags,
                metadata=metadata,
                consent=consent,
                licence=licence,
                timestamp=timestamp,
                id=id,
            )
        )
