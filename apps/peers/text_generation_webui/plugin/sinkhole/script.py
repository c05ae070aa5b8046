"""Sinkhole feedback for text-generation-webui: 👍 / 👎 buttons (and an optional comment) under
the chat that send a rating of the latest reply to a Sinkhole server.

Install: copy this folder to `text-generation-webui/extensions/sinkhole/`, then start the web UI
with `--extensions sinkhole` (or tick it under Session → Extensions). Settings, in
`settings.yaml` or the environment:

    sinkhole-sinkhole_url: http://127.0.0.1:8000      # or SINKHOLE_URL
    sinkhole-sinkhole_key: sk-…                        # or SINKHOLE_KEY (a source's secret key)
    sinkhole-rater: alice                              # or SINKHOLE_RATER (optional)

The rating is of the last exchange of the current chat: the earlier turns and the last user
message are the `messages`, the last reply the `response`; the loaded model's name is the
`model`. The event id is derived from the chat, the turn, the reply and the thumb, so pressing a
button twice stores one event and changing one's mind stores the new thumb. The guide is
apps/peers/text_generation_webui/guide.md in the Sinkhole repository.

Only `ui()` needs gradio and the web UI's `modules`; the rest is plain Python (build_event and
send_event are what the Sinkhole tests check)."""

from __future__ import annotations

import hashlib
import json
import os
import urllib.error
import urllib.request
from typing import Any

params = {
    "display_name": "Sinkhole feedback",
    "is_tab": False,
    "sinkhole_url": os.environ.get("SINKHOLE_URL", "http://127.0.0.1:8000"),
    "sinkhole_key": os.environ.get("SINKHOLE_KEY", ""),
    "rater": os.environ.get("SINKHOLE_RATER", ""),
    "timeout": 5.0,
}

MAX_TEXT = 100_000
# The last exchange seen by the modifiers below: a fallback for web UI versions whose history
# component the buttons cannot read.
_last: dict[str, Any] = {"user": None, "reply": None, "history": None, "chat_id": ""}


def build_event(
    history: dict[str, Any] | list[Any],
    rating: int,
    *,
    model: str = "",
    chat_id: str = "",
    rater: str = "",
    comment: str = "",
    character: str = "",
) -> dict[str, Any]:
    """The Sinkhole `rating` event of the last reply in HISTORY (the web UI's chat history:
    {"internal": [[user, reply], …], …}, or the list of pairs itself)."""
    if rating not in (1, -1):
        raise ValueError("rating must be 1 or -1")
    pairs = history.get("internal") if isinstance(history, dict) else history
    pairs = [pair for pair in pairs or [] if isinstance(pair, list | tuple) and len(pair) >= 2]
    if not pairs or not isinstance(pairs[-1][1], str) or not pairs[-1][1].strip():
        raise ValueError("there is no reply to rate yet")
    messages = []
    for user, reply in (pair[:2] for pair in pairs[:-1]):
        if isinstance(user, str) and user.strip() and user != "<|BEGIN-VISIBLE-CHAT|>":
            messages.append({"role": "user", "content": user[:MAX_TEXT]})
        if isinstance(reply, str) and reply.strip():
            messages.append({"role": "assistant", "content": reply[:MAX_TEXT]})
    last_user, reply = pairs[-1][0], pairs[-1][1]
    if isinstance(last_user, str) and last_user.strip():
        messages.append({"role": "user", "content": last_user[:MAX_TEXT]})
    if not messages:
        raise ValueError("the reply has no prompt before it")
    turn = len(pairs) - 1
    digest = hashlib.sha256(
        json.dumps([chat_id, turn, reply, rating], ensure_ascii=False).encode()
    ).hexdigest()[:32]
    event: dict[str, Any] = {
        "type": "rating",
        "id": f"tgwebui:{digest}",
        "messages": messages[-500:],
        "response": reply[:MAX_TEXT],
        "rating": rating,
        "metadata": {"via": "text-generation-webui", "turn": turn},
    }
    if chat_id:
        event["metadata"]["chat_id"] = str(chat_id)[:200]
    if character:
        event["metadata"]["character"] = str(character)[:200]
    if model and model != "None":
        event["model"] = model[:200]
    if rater:
        event["rater"] = rater[:200]
    if comment and comment.strip():
        event["comment"] = comment.strip()[:10_000]
    return event


def send_event(event: dict[str, Any], url: str, key: str, timeout: float = 5.0) -> dict[str, Any]:
    """POST EVENT to Sinkhole's ingest API; return its answer, or raise RuntimeError."""
    endpoint = url.rstrip("/") + "/api/v1/feedback"
    if not endpoint.startswith(("http://", "https://")):
        raise RuntimeError(f"the Sinkhole URL {url!r} must start with http:// or https://")
    if not key:
        raise RuntimeError("set sinkhole-sinkhole_key (or SINKHOLE_KEY) to a source's secret key")
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


def rate(history: Any, rating: int, comment: str = "", chat_id: str = "") -> str:
    """Send a rating of the last reply; return a line for the UI."""
    history = history or _last["history"]
    if not history and _last["reply"]:
        history = {"internal": [[_last["user"] or "", _last["reply"]]]}
    try:
        from modules import shared  # the web UI's own module, present when it runs

        model = str(getattr(shared, "model_name", "") or "")
    except ImportError:
        model = ""
    try:
        event = build_event(
            history or {},
            rating,
            model=model,
            chat_id=chat_id or _last["chat_id"],
            rater=params["rater"],
            comment=comment,
        )
        answer = send_event(
            event, params["sinkhole_url"], params["sinkhole_key"], params["timeout"]
        )
    except (ValueError, RuntimeError) as exc:
        return f"Sinkhole: {exc}"
    status = answer.get("status", "sent")
    return "Thanks! Feedback sent." if status != "duplicate" else "Already sent; thanks."


# --- the web UI's extension hooks ---------------------------------------------------------------


def input_modifier(string: str, state: dict[str, Any], is_chat: bool = False) -> str:
    if is_chat:
        _last["user"] = string
    return string


def output_modifier(string: str, state: dict[str, Any], is_chat: bool = False) -> str:
    if is_chat:
        _last["reply"] = string
        history = state.get("history") if isinstance(state, dict) else None
        if isinstance(history, dict):
            _last["history"] = history
        _last["chat_id"] = str((state or {}).get("unique_id") or "")
    return string


def ui() -> None:
    import gradio as gr
    from modules import shared

    history = shared.gradio.get("history")
    unique_id = shared.gradio.get("unique_id")
    with gr.Accordion("Sinkhole feedback", open=True):
        with gr.Row():
            up = gr.Button("👍 Good reply")
            down = gr.Button("👎 Bad reply")
        comment = gr.Textbox(label="Comment (optional)", lines=1)
        status = gr.Markdown("")
    # Components of the web UI that the buttons read, where this version has them.
    named = [
        (name, component)
        for name, component in (("history", history), ("comment", comment), ("chat_id", unique_id))
        if component is not None
    ]

    def handler(rating: int) -> Any:
        def send(*values: Any) -> tuple[str, str]:
            given = dict(zip([name for name, _ in named], values, strict=True))
            line = rate(
                given.get("history"), rating, given.get("comment") or "", given.get("chat_id") or ""
            )
            return line, ""  # the answer, and the comment box emptied

        return send

    inputs = [component for _, component in named]
    up.click(handler(1), inputs, [status, comment])
    down.click(handler(-1), inputs, [status, comment])
