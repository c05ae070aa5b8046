"""
title: Sinkhole feedback
author: Sinkhole
version: 0.1.0
required_open_webui_version: 0.5.0
description: Adds 👍 and 👎 buttons under each reply that send the rating to a Sinkhole server at once, with the conversation it rates.
"""

# An Open WebUI "Action" function: paste this file into Admin Panel → Functions → "+" (or import
# it), set the Valves (Sinkhole's URL and a source's secret key), and switch it on globally or
# for the models whose replies should be rated. It is plain Python (pydantic and the standard
# library only), so it runs inside Open WebUI without installing anything. The guide is
# apps/peers/openwebui/guide.md in the Sinkhole repository.
#
# The event it sends is a Sinkhole API v1 `rating`: the messages before the rated reply, the
# reply, 1 or -1, the user's id as the rater (Sinkhole stores only a keyed hash of it), and the
# chat and message ids in the metadata. Its id is derived from the message and the thumb, so
# pressing the same button twice stores one event, and changing one's mind stores the new one.

from __future__ import annotations

import asyncio
import base64
import json
import urllib.error
import urllib.request
from typing import Any

from pydantic import BaseModel, Field

_SVG = (
    '<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 24 24" fill="none" stroke="currentColor" '
    'stroke-width="2" stroke-linecap="round" stroke-linejoin="round"><path d="{}"/></svg>'
)
_UP_PATH = "M7 10v12M15 5.9 14 10h5.8a2 2 0 0 1 1.9 2.6l-2.3 8A2 2 0 0 1 17.5 22H4a2 2 0 0 1-2-2v-8a2 2 0 0 1 2-2h2.8a2 2 0 0 0 1.8-1.1L12 2a3.1 3.1 0 0 1 3 3.9Z"
_DOWN_PATH = "M17 14V2M9 18.1 10 14H4.2a2 2 0 0 1-1.9-2.6l2.3-8A2 2 0 0 1 6.5 2H20a2 2 0 0 1 2 2v8a2 2 0 0 1-2 2h-2.8a2 2 0 0 0-1.8 1.1L12 22a3.1 3.1 0 0 1-3-3.9Z"


def _icon(path: str) -> str:
    return "data:image/svg+xml;base64," + base64.b64encode(_SVG.format(path).encode()).decode()


_UP_ICON, _DOWN_ICON = _icon(_UP_PATH), _icon(_DOWN_PATH)
RATINGS = {"thumbs_up": 1, "thumbs_down": -1}
_ROLES = {"system", "user", "assistant", "tool"}
MAX_TEXT = 100_000


def _text(content: Any) -> str | None:
    """The text of a message's content: a string, or the text parts of a list."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        parts = [part.get("text") for part in content if isinstance(part, dict)]
        return "\n".join(part for part in parts if isinstance(part, str))
    return None


def build_event(
    body: dict[str, Any],
    rating: int,
    *,
    user: dict[str, Any] | None = None,
    comment: str | None = None,
    send_user_id: bool = True,
) -> dict[str, Any]:
    """The Sinkhole event for RATING (1 or -1) of the reply BODY["id"] in the chat BODY, as
    Open WebUI hands it to an action: {"model", "messages", "id", "chat_id", "session_id"}."""
    if rating not in (1, -1):
        raise ValueError("rating must be 1 or -1")
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    message_id = body.get("id")
    index = next(
        (i for i, m in enumerate(messages) if message_id and m.get("id") == message_id), None
    )
    if index is None:  # no id given or found: the last assistant reply
        index = next(
            (i for i in range(len(messages) - 1, -1, -1) if messages[i].get("role") == "assistant"),
            None,
        )
    if index is None or messages[index].get("role") != "assistant":
        raise ValueError("there is no assistant reply to rate")
    reply = _text(messages[index].get("content"))
    if not reply:
        raise ValueError("the reply has no text to rate")
    before = []
    for message in messages[:index]:
        text = _text(message.get("content"))
        if message.get("role") in _ROLES and text:
            before.append({"role": message["role"], "content": text[:MAX_TEXT]})
    if not before:
        raise ValueError("the reply has no prompt before it")
    rated_id = messages[index].get("id") or message_id or ""
    event: dict[str, Any] = {
        "type": "rating",
        "id": f"openwebui-action:{rated_id}:{'up' if rating == 1 else 'down'}"[:200],
        "messages": before[-500:],
        "response": reply[:MAX_TEXT],
        "rating": rating,
        "metadata": {
            key: value
            for key, value in (
                ("chat_id", body.get("chat_id")),
                ("message_id", rated_id),
                ("via", "open-webui action"),
            )
            if isinstance(value, str) and value
        },
    }
    model = messages[index].get("model") or body.get("model")
    if isinstance(model, str) and model:
        event["model"] = model[:200]
    if send_user_id and user and isinstance(user.get("id"), str) and user["id"]:
        event["rater"] = user["id"][:200]
    if comment and comment.strip():
        event["comment"] = comment.strip()[:10_000]
    return event


def send_event(event: dict[str, Any], url: str, key: str, timeout: float = 5.0) -> dict[str, Any]:
    """POST EVENT to Sinkhole's ingest API; return its answer, or raise RuntimeError."""
    endpoint = url.rstrip("/") + "/api/v1/feedback"
    if not endpoint.startswith(("http://", "https://")):
        raise RuntimeError(f"the Sinkhole URL {url!r} must start with http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http(s) only
        endpoint,
        data=json.dumps(event).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:  # noqa: S310
            return json.loads(response.read() or b"{}")
    except urllib.error.HTTPError as exc:
        detail = exc.read().decode("utf-8", "replace")[:300]
        raise RuntimeError(f"Sinkhole answered {exc.code}: {detail}") from exc
    except (urllib.error.URLError, TimeoutError, OSError) as exc:
        raise RuntimeError(f"could not reach Sinkhole at {url}: {exc}") from exc


class Action:
    class Valves(BaseModel):
        sinkhole_url: str = Field(
            default="http://localhost:8000",
            description="Sinkhole's base URL, as Open WebUI's server reaches it.",
        )
        sinkhole_key: str = Field(default="", description="A Sinkhole source's secret key (sk-…).")
        ask_for_comment: bool = Field(
            default=False, description="Ask for an optional comment with each rating."
        )
        send_user_id: bool = Field(
            default=True,
            description="Send the Open WebUI user id as the rater (Sinkhole keeps only a keyed hash).",
        )
        timeout_seconds: float = Field(default=5.0, description="How long to wait for Sinkhole.")

    actions = [
        {"id": "thumbs_up", "name": "Good reply (Sinkhole)", "icon_url": _UP_ICON},
        {"id": "thumbs_down", "name": "Bad reply (Sinkhole)", "icon_url": _DOWN_ICON},
    ]

    def __init__(self) -> None:
        self.valves = self.Valves()

    async def action(
        self,
        body: dict[str, Any],
        __user__: dict[str, Any] | None = None,
        __event_emitter__: Any = None,
        __event_call__: Any = None,
        __id__: str | None = None,
    ) -> dict[str, Any] | None:
        rating = RATINGS.get(__id__ or "")
        if rating is None:
            await _notify(__event_emitter__, "error", f"Unknown Sinkhole action {__id__!r}.")
            return None
        if not self.valves.sinkhole_key:
            await _notify(
                __event_emitter__, "error", "Set the Sinkhole key in this function's Valves."
            )
            return None
        comment = None
        if self.valves.ask_for_comment and __event_call__ is not None:
            answer = await __event_call__(
                {
                    "type": "input",
                    "data": {
                        "title": "Thanks! Anything to add?" if rating == 1 else "What was wrong?",
                        "message": "Optional: a few words for the people improving the model.",
                        "placeholder": "Comment (optional)",
                    },
                }
            )
            comment = answer if isinstance(answer, str) else None
        try:
            event = build_event(
                body, rating, user=__user__, comment=comment, send_user_id=self.valves.send_user_id
            )
            answer = await asyncio.to_thread(
                send_event,
                event,
                self.valves.sinkhole_url,
                self.valves.sinkhole_key,
                self.valves.timeout_seconds,
            )
        except (ValueError, RuntimeError) as exc:
            await _notify(__event_emitter__, "error", f"Sinkhole: {exc}")
            return None
        await _notify(__event_emitter__, "success", "Thanks for the feedback!")
        return {"sinkhole": answer}


async def _notify(emit: Any, kind: str, text: str) -> None:
    if emit is not None:
        await emit({"type": "notification", "data": {"type": kind, "content": text}})
