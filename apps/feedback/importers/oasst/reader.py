"""OpenAssistant (oasst1/oasst2) message trees: one tree per line, `{"message_tree_id",
"prompt": {"message_id", "role": "prompter" | "assistant", "text", "rank", "replies": […]}}`
(a bare root message is accepted too).

Every prompter message with two or more ranked assistant replies becomes a `ranking` event: the
conversation from the root down to that prompter message becomes `messages` (prompter → user,
assistant → assistant, so multi-turn threads keep their history), its ranked replies the
responses in tree order, and `ranking` lists them best first by `rank` (0 is best). The whole
tree is walked, so one tree gives as many events as it has ranked branching points. Deleted
messages and their subtrees are left out; unranked replies are not in the ranking. A reply
written by a model (`synthetic`) names it in `model`. oasst ranks are the consensus of several
rankers, so the events have no rater, and the export does not say when they ranked, so no
timestamp either. The id is `oasst:<prompter message_id>`; the tree and
reply message ids are in the metadata. A tree with no ranked branching point is skipped."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, BinaryIO

from apps.feedback.importers.base import Record, digest, event_id, read_json_records

_ROLES = {"prompter": "user", "assistant": "assistant"}


def read(stream: BinaryIO) -> Iterator[Record]:
    return read_json_records(stream, convert)


def convert(tree: Any, where: str) -> Iterator[Record]:
    if isinstance(tree, dict) and isinstance(tree.get("prompt"), dict):
        root, tree_id = tree["prompt"], tree.get("message_tree_id")
    elif isinstance(tree, dict) and "replies" in tree and "role" in tree:
        root, tree_id = tree, tree.get("message_tree_id") or tree.get("message_id")
    else:
        yield Record(where, error="not an OpenAssistant message tree (no 'prompt')")
        return
    found = 0
    # Depth first with an explicit stack: each entry is a message and the messages above it.
    stack: list[tuple[dict[str, Any], list[dict[str, str]]]] = [(root, [])]
    while stack:
        message, history = stack.pop()
        if not isinstance(message, dict) or message.get("deleted"):
            continue
        role, text = _ROLES.get(message.get("role")), message.get("text")  # type: ignore[arg-type]
        if role is None or not isinstance(text, str):
            yield Record(
                _at(where, message), error="a message needs role prompter/assistant and a text"
            )
            continue
        path = [*history, {"role": role, "content": text}]
        replies = [reply for reply in message.get("replies") or [] if isinstance(reply, dict)]
        if role == "user":
            ranked = [
                reply
                for reply in replies
                if reply.get("role") == "assistant"
                and not reply.get("deleted")
                and isinstance(reply.get("rank"), int)
                and not isinstance(reply.get("rank"), bool)
                and isinstance(reply.get("text"), str)
            ]
            if len(ranked) >= 2:
                found += 1
                yield Record(_at(where, message), event=_ranking(message, ranked, path, tree_id))
        stack.extend((reply, path) for reply in reversed(replies))
    if not found:
        yield Record(
            where, skipped="no prompter message in this tree has two or more ranked replies"
        )


def _ranking(
    prompt: dict[str, Any],
    ranked: list[dict[str, Any]],
    messages: list[dict[str, str]],
    tree_id: Any,
) -> dict[str, Any]:
    responses = []
    for reply in ranked:
        response = {"content": reply["text"]}
        if (
            reply.get("synthetic")
            and isinstance(reply.get("model_name"), str)
            and reply["model_name"]
        ):
            response["model"] = reply["model_name"]
        responses.append(response)
    order = sorted(range(len(ranked)), key=lambda index: ranked[index]["rank"])
    metadata: dict[str, Any] = {
        "message_tree_id": tree_id,
        "prompt_message_id": prompt.get("message_id"),
        "response_message_ids": [reply.get("message_id") for reply in ranked],
        "ranks": [reply["rank"] for reply in ranked],
    }
    if isinstance(prompt.get("lang"), str):
        metadata["lang"] = prompt["lang"]
    message_id = prompt.get("message_id")
    event: dict[str, Any] = {
        "type": "ranking",
        "id": event_id("oasst", message_id)
        if isinstance(message_id, str) and message_id
        else f"oasst:{digest([messages, responses])}",
        "messages": messages,
        "responses": responses,
        "ranking": order,
        "metadata": metadata,
    }
    return event


def _at(where: str, message: Any) -> str:
    message_id = message.get("message_id") if isinstance(message, dict) else None
    return f"{where}, message {message_id}" if isinstance(message_id, str) else where
