"""LMSYS FastChat / Chatbot Arena: cleaned battles and raw vote logs, JSON array or JSON Lines.

Battles (what `clean_battle_data.py` writes, and datasets derived from it):
`{"model_a", "model_b", "winner", "judge", "question_id", "tstamp", "conversation_a",
"conversation_b", "turn", "anony", "language", …}` become one `preference` event each: the
responses are model_a then model_b, and `winner` maps to `choice`: `model_a` → 0, `model_b` → 1,
`tie` → "tie", `tie (bothbad)` → "both_bad". The judge is the rater, `tstamp` the time, and the record's other
scalar fields (`question_id`, `turn`, `anony`, `language`, …) go into the metadata.

When a battle carries its two conversations (OpenAI-format message lists), their shared
beginning becomes `messages` and the first replies where they part become the responses. A
multi-turn battle is judged on all its turns: the event keeps the first differing replies and
counts the messages after them in `metadata.later_messages`.

When a battle has no texts (many published battle files have only names and outcomes), the
event still carries the comparison: `messages` is one user message holding a placeholder that
names the question (`[FastChat question 17: text not in the battle file]`, so battles on the
same question share a prompt), each response's content is `[reply of <model>: text not in the
battle file]`, and `metadata.placeholders` lists those fields so datasets never train on them.

Raw vote logs (the web server's `*-conv.json` lines): `leftvote` / `rightvote` / `tievote` /
`bothbad_vote` with `models` and two `states` become preferences as above (model names from
`states[i].model_name`, the anonymous arena's hidden names, else from `models`); `upvote` /
`downvote` with one `state` (and `model`) become thumbs `rating` events on the last reply.
`flag` votes and other log lines (`chat`, …) are skipped with a reason. The rater is the logged
client address, which the ingest stores only as a keyed hash.

Every event id is `fastchat:<hash of the whole record>`: the records have no id of their own. A
file that repeats a record (arena-hard-style files repeat a battle to weight a strong verdict)
keeps every copy: the n-th copy's id ends in `:n` (`number_repeats`). The log follower reads
vote logs line by line and keeps the plain hash, so a line read twice is stored once."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from apps.feedback.importers.base import (
    PLACEHOLDERS,
    Record,
    digest,
    iso_time,
    number_repeats,
    read_json_records,
    scalar_extras,
    text_of,
)

WINNERS: dict[str, int | str] = {
    "model_a": 0,
    "model_b": 1,
    "tie": "tie",
    "tie (bothbad)": "both_bad",
}
PAIR_VOTES: dict[str, int | str] = {
    "leftvote": 0,
    "rightvote": 1,
    "tievote": "tie",
    "bothbad_vote": "both_bad",
}
THUMBS = {"upvote": 1, "downvote": -1}
_BATTLE_FIELDS = {
    "model_a",
    "model_b",
    "winner",
    "judge",
    "tstamp",
    "conversation_a",
    "conversation_b",
}


def read(stream: BinaryIO) -> Iterator[Record]:
    return number_repeats(read_json_records(stream, convert), prefix="fastchat:")


def convert(record: Any, where: str) -> Iterator[Record]:
    if not isinstance(record, dict):
        yield Record(where, error="not a JSON object")
    elif "winner" in record or "model_a" in record:
        yield _battle(record, where)
    elif isinstance(record.get("type"), str):
        yield _vote(record, where)
    else:
        yield Record(
            where, error="not a FastChat battle (model_a, model_b, winner) or vote log line (type)"
        )


def _battle(record: dict[str, Any], where: str) -> Record:
    model_a, model_b, winner = record.get("model_a"), record.get("model_b"), record.get("winner")
    if not (isinstance(model_a, str) and model_a and isinstance(model_b, str) and model_b):
        return Record(where, error="model_a and model_b must be model names")
    if winner not in WINNERS:
        return Record(where, error=f"winner {winner!r} is not one of {', '.join(WINNERS)}")
    metadata = scalar_extras(record, leave_out=_BATTLE_FIELDS)
    conversation_a, conversation_b = record.get("conversation_a"), record.get("conversation_b")
    if conversation_a or conversation_b:
        split = split_pair(_openai(conversation_a), _openai(conversation_b))
        if isinstance(split, str):
            return Record(where, error=split)
        messages, reply_a, reply_b, later = split
        if later:
            metadata["later_messages"] = later
    else:
        question = record.get("question_id")
        named = (
            f"FastChat question {question}" if question is not None else "FastChat battle prompt"
        )
        messages = [{"role": "user", "content": f"[{named}: text not in the battle file]"}]
        reply_a = f"[reply of {model_a}: text not in the battle file]"
        reply_b = f"[reply of {model_b}: text not in the battle file]"
        metadata[PLACEHOLDERS] = ["messages", "responses"]
    event: dict[str, Any] = {
        "type": "preference",
        "id": f"fastchat:{digest(record)}",
        "messages": messages,
        "responses": [
            {"model": model_a, "content": reply_a},
            {"model": model_b, "content": reply_b},
        ],
        "choice": WINNERS[winner],
        "metadata": metadata,
    }
    _add_rater_and_time(event, rater=record.get("judge"), tstamp=record.get("tstamp"))
    return Record(where, event=event)


def _vote(record: dict[str, Any], where: str) -> Record:
    kind = record["type"]
    if kind == "flag":
        return Record(
            where, skipped="a flag vote marks a reply for moderators; it is not a judgement of it"
        )
    if kind not in PAIR_VOTES and kind not in THUMBS:
        return Record(where, skipped=f"a {kind!r} log line is not a vote")
    states = record.get("states")
    if states is None and isinstance(record.get("state"), dict):
        states = [record["state"]]
    if not isinstance(states, list) or not all(isinstance(state, dict) for state in states):
        return Record(
            where, error="a vote log line needs 'states' (or 'state') with the conversations"
        )
    names = record.get("models")
    if names is None:
        names = [record.get("model")]
    names = [
        _model_name(state, name)
        for state, name in zip(states, [*names, *[None] * len(states)], strict=False)
    ]
    conversations = [_from_state(state) for state in states]
    for side, conversation in enumerate(conversations):
        if isinstance(conversation, str):
            return Record(where, error=f"states.{side}: {conversation}")
    metadata: dict[str, Any] = {"vote": kind}
    conv_ids = [state.get("conv_id") for state in states if isinstance(state.get("conv_id"), str)]
    if conv_ids:
        metadata["conv_ids"] = conv_ids
    event: dict[str, Any] = {"id": f"fastchat:{digest(record)}"}
    if kind in PAIR_VOTES:
        if len(states) != 2:
            return Record(
                where, error=f"a {kind} needs two states, one per side; found {len(states)}"
            )
        split = split_pair(conversations[0], conversations[1])  # type: ignore[arg-type]
        if isinstance(split, str):
            return Record(where, error=split)
        messages, reply_a, reply_b, later = split
        if later:
            metadata["later_messages"] = later
        responses = [{"content": reply_a}, {"content": reply_b}]
        for response, name in zip(responses, names, strict=True):
            if name:
                response["model"] = name
        event.update(
            type="preference", messages=messages, responses=responses, choice=PAIR_VOTES[kind]
        )
    else:
        if len(states) != 1:
            return Record(where, error=f"an {kind} rates one reply; found {len(states)} states")
        conversation: list[dict[str, Any]] = conversations[0]  # type: ignore[assignment]
        if len(conversation) < 2 or conversation[-1]["role"] != "assistant":
            return Record(
                where, error="the conversation does not end with an assistant reply to rate"
            )
        event.update(
            type="rating",
            messages=conversation[:-1],
            response=conversation[-1]["content"],
            rating=THUMBS[kind],
        )
        if names[0]:
            event["model"] = names[0]
    event["metadata"] = metadata
    _add_rater_and_time(event, rater=record.get("ip"), tstamp=record.get("tstamp"))
    return Record(where, event=event)


_HTML_NAME = re.compile(r"^<h3>.*?: (.*)</h3>\s*$", re.DOTALL)


def _model_name(state: dict[str, Any], shown: Any) -> str | None:
    """The hidden name of an anonymous arena side, else the name shown (HTML stripped)."""
    hidden = state.get("model_name")
    if isinstance(hidden, str) and hidden:
        return hidden
    if isinstance(shown, str) and shown:
        match = _HTML_NAME.match(shown)
        name = (match.group(1) if match else shown).strip()
        return name if name and name not in ("Model A", "Model B") else None
    return None


def _from_state(state: dict[str, Any]) -> list[dict[str, Any]] | str:
    """OpenAI messages from a FastChat conversation state (`roles`, `messages`, `offset`)."""
    raw = state.get("messages")
    if not isinstance(raw, list):
        return "has no messages"
    offset = state.get("offset") if isinstance(state.get("offset"), int) else 0
    roles = state.get("roles") if isinstance(state.get("roles"), list | tuple) else []
    messages = []
    for index, turn in enumerate(raw[offset:]):
        if not (isinstance(turn, list | tuple) and len(turn) == 2):
            return f"messages.{offset + index} is not a [role, text] pair"
        role, text = turn
        if len(roles) >= 2 and role in roles[:2]:
            role = "user" if role == roles[0] else "assistant"
        else:
            role = "user" if index % 2 == 0 else "assistant"
        content = text_of(text)
        if content is None:
            return f"messages.{offset + index} has no text (the reply was not finished)"
        messages.append({"role": role, "content": content})
    return messages


def _openai(conversation: Any) -> list[dict[str, Any]] | str:
    if not isinstance(conversation, list) or not conversation:
        return "is missing or empty"
    messages = []
    for index, message in enumerate(conversation):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str):
            return f"message {index} has no role"
        content = text_of(message.get("content"))
        if content is None:
            return f"message {index} has no text"
        messages.append({"role": message["role"], "content": content})
    return messages


def split_pair(
    side_a: list[dict[str, Any]] | str, side_b: list[dict[str, Any]] | str
) -> tuple[list[dict[str, Any]], str, str, int] | str:
    """Split two conversations of one battle into (shared messages, reply a, reply b, number of
    messages after those replies), or say why they cannot be compared."""
    if isinstance(side_a, str):
        return f"conversation_a {side_a}"
    if isinstance(side_b, str):
        return f"conversation_b {side_b}"
    shared = 0
    limit = min(len(side_a), len(side_b)) - 1  # leave at least one reply on each side
    while shared < limit and side_a[shared] == side_b[shared]:
        shared += 1
    while shared > 0 and not (side_a[shared]["role"] == side_b[shared]["role"] == "assistant"):
        shared -= 1
    if shared == 0 or not (side_a[shared]["role"] == side_b[shared]["role"] == "assistant"):
        return "the two conversations have no assistant replies to the same prompt"
    later = max(len(side_a), len(side_b)) - shared - 1
    return side_a[:shared], side_a[shared]["content"], side_b[shared]["content"], later


def _add_rater_and_time(event: dict[str, Any], *, rater: Any, tstamp: Any) -> None:
    if isinstance(rater, str) and rater:
        event["rater"] = rater
    when = iso_time(tstamp)
    if when is not None:
        event["timestamp"] = when
