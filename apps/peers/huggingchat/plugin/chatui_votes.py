"""Send the 👍/👎 votes of a HuggingChat (huggingface/chat-ui) deployment to Sinkhole.

chat-ui keeps each vote on the message it rates (`messages[].score`: 1 or -1) in its MongoDB
`conversations` collection and calls no webhook, so this script reads them from there: run it
from cron, or once. Every event id is derived from the conversation, the message and the vote,
so running it twice stores nothing twice and a changed vote is stored as the new one. It reads
every conversation with a vote; with --incremental, only those whose `updatedAt` moved since
its last run (kept in a small state file): use that only if your chat-ui version touches
`updatedAt` when a vote is cast.

    pip install pymongo
    SINKHOLE_KEY=sk-… python chatui_votes.py --mongo mongodb://localhost:27017 \\
        --db chat-ui --sinkhole-url http://127.0.0.1:8000 [--incremental --state votes.json]

The guide is apps/peers/huggingchat/guide.md in the Sinkhole repository. `conversation_events`
is plain Python (the Sinkhole tests check what it builds); only `main` needs pymongo."""

from __future__ import annotations

import argparse
import json
import os
import sys
import urllib.error
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

MAX_TEXT = 100_000
BATCH = 500
ROLES = {"user": "user", "assistant": "assistant", "system": "system"}


def _iso(value: Any) -> str | None:
    if isinstance(value, datetime):
        moment = value if value.tzinfo else value.replace(tzinfo=UTC)
        return moment.isoformat().replace("+00:00", "Z")
    return None


def conversation_events(conversation: dict[str, Any]) -> list[dict[str, Any]]:
    """One Sinkhole `rating` event per voted assistant message of a chat-ui conversation."""
    messages = [m for m in conversation.get("messages") or [] if isinstance(m, dict)]
    by_id = {m.get("id"): m for m in messages if m.get("id")}
    conversation_id = str(conversation.get("_id", ""))
    rater = conversation.get("userId") or conversation.get("sessionId")
    preprompt = conversation.get("preprompt")
    events = []
    for index, message in enumerate(messages):
        score = message.get("score")
        if message.get("from") != "assistant" or score not in (1, -1):
            continue
        reply = message.get("content")
        if not isinstance(reply, str) or not reply.strip():
            continue
        ancestors = message.get("ancestors")
        if isinstance(ancestors, list) and all(a in by_id for a in ancestors):
            before = [by_id[a] for a in ancestors]  # chat-ui's message tree: root first
        else:
            before = messages[:index]
        thread = [
            {"role": ROLES[m["from"]], "content": m["content"][:MAX_TEXT]}
            for m in before
            if m.get("from") in ROLES and isinstance(m.get("content"), str) and m["content"].strip()
        ]
        if (
            isinstance(preprompt, str)
            and preprompt.strip()
            and not any(m["role"] == "system" for m in thread)
        ):
            thread.insert(0, {"role": "system", "content": preprompt[:MAX_TEXT]})
        if not any(m["role"] == "user" for m in thread):
            continue
        event: dict[str, Any] = {
            "type": "rating",
            "id": f"chatui:{conversation_id}:{message.get('id')}:{'up' if score == 1 else 'down'}",
            "messages": thread[-500:],
            "response": reply[:MAX_TEXT],
            "rating": score,
            "metadata": {
                "via": "chat-ui",
                "conversation_id": conversation_id,
                "message_id": str(message.get("id")),
            },
        }
        if isinstance(conversation.get("model"), str) and conversation["model"]:
            event["model"] = conversation["model"][:200]
        if rater:
            event["rater"] = str(rater)[:200]
        when = _iso(message.get("updatedAt")) or _iso(conversation.get("updatedAt"))
        if when:
            event["timestamp"] = when
        events.append(event)
    return events


def send_batch(events: list[dict[str, Any]], url: str, key: str) -> dict[str, int]:
    """POST EVENTS as one batch; return the count per status."""
    endpoint = url.rstrip("/") + "/api/v1/feedback"
    if not endpoint.startswith(("http://", "https://")):
        raise SystemExit(f"the Sinkhole URL {url!r} must start with http:// or https://")
    request = urllib.request.Request(  # noqa: S310 - the scheme was checked: http(s) only
        endpoint,
        data=json.dumps(events, default=str).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
        method="POST",
    )
    try:
        with urllib.request.urlopen(request, timeout=60) as response:  # noqa: S310
            return json.loads(response.read())["summary"]
    except urllib.error.HTTPError as exc:
        raise SystemExit(f"Sinkhole answered {exc.code}: {exc.read()[:300]!r}") from exc


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--mongo", default=os.environ.get("MONGODB_URL", "mongodb://localhost:27017")
    )
    parser.add_argument("--db", default=os.environ.get("MONGODB_DB_NAME", "chat-ui"))
    parser.add_argument(
        "--sinkhole-url", default=os.environ.get("SINKHOLE_URL", "http://127.0.0.1:8000")
    )
    parser.add_argument(
        "--incremental", action="store_true", help="only conversations updated since the last run"
    )
    parser.add_argument(
        "--state",
        type=Path,
        default=Path("chatui-votes.json"),
        help="where --incremental keeps the time of the last run",
    )
    args = parser.parse_args(argv)
    key = os.environ.get("SINKHOLE_KEY", "")
    if not key:
        parser.error("set SINKHOLE_KEY to a Sinkhole source's secret key")
    from pymongo import MongoClient

    since = datetime(1970, 1, 1, tzinfo=UTC)
    if args.incremental and args.state.exists():
        since = datetime.fromisoformat(json.loads(args.state.read_text())["since"])
    started = datetime.now(UTC)
    query: dict[str, Any] = {"messages.score": {"$in": [1, -1]}}
    if args.incremental:
        query["updatedAt"] = {"$gte": since}
    conversations = MongoClient(args.mongo)[args.db]["conversations"].find(query)
    totals: dict[str, int] = {}
    batch: list[dict[str, Any]] = []
    for conversation in conversations:
        batch.extend(conversation_events(conversation))
        if len(batch) >= BATCH:
            for status, count in send_batch(batch, args.sinkhole_url, key).items():
                totals[status] = totals.get(status, 0) + count
            batch = []
    if batch:
        for status, count in send_batch(batch, args.sinkhole_url, key).items():
            totals[status] = totals.get(status, 0) + count
    if args.incremental:
        args.state.write_text(json.dumps({"since": started.isoformat()}))
    print(f"chat-ui votes sent to Sinkhole: {totals or 'none'}")  # noqa: T201 - a CLI
    return 0


if __name__ == "__main__":
    sys.exit(main())
