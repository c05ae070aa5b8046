"""Anthropic HH-RLHF: `{"chosen": "...", "rejected": "..."}` per line, where each is a whole
transcript `\n\nHuman: … \n\nAssistant: …` and the two share everything but the last reply.

Each pair becomes a `preference` event: the turns both transcripts share become OpenAI
`messages` (Human → user, Assistant → assistant), the two last replies the responses, chosen
first (`choice` 0). There is no rater and no model name in the data. A pair whose transcripts
differ before their last reply, or do not differ at all, is rejected with that reason. The id
is `hh-rlhf:<hash of the record>`, `:n` added to the n-th copy of a repeated pair, so every
row of the file is kept."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any, BinaryIO

from apps.feedback.importers.base import Record, digest, number_repeats, read_json_records

_TURN = re.compile(r"\n\n(Human|Assistant): ?")
_ROLES = {"Human": "user", "Assistant": "assistant"}


def read(stream: BinaryIO) -> Iterator[Record]:
    return number_repeats(read_json_records(stream, convert), prefix="hh-rlhf:")


def convert(record: Any, where: str) -> Iterator[Record]:
    if (
        not isinstance(record, dict)
        or not isinstance(record.get("chosen"), str)
        or not isinstance(record.get("rejected"), str)
    ):
        yield Record(where, error="not an HH-RLHF pair (text fields 'chosen' and 'rejected')")
        return
    chosen = transcript(record["chosen"])
    if isinstance(chosen, str):
        yield Record(where, error=f"chosen: {chosen}")
        return
    rejected = transcript(record["rejected"])
    if isinstance(rejected, str):
        yield Record(where, error=f"rejected: {rejected}")
        return
    shared = 0
    while shared < min(len(chosen), len(rejected)) and chosen[shared] == rejected[shared]:
        shared += 1
    rest_chosen, rest_rejected = chosen[shared:], rejected[shared:]
    if not rest_chosen and not rest_rejected:
        yield Record(where, error="chosen and rejected are the same conversation")
        return
    if not (
        shared
        and len(rest_chosen) == len(rest_rejected) == 1
        and rest_chosen[0]["role"] == rest_rejected[0]["role"] == "assistant"
    ):
        yield Record(where, error="chosen and rejected differ before their last assistant reply")
        return
    yield Record(
        where,
        event={
            "type": "preference",
            "id": f"hh-rlhf:{digest(record)}",
            "messages": chosen[:shared],
            "responses": [
                {"content": rest_chosen[0]["content"]},
                {"content": rest_rejected[0]["content"]},
            ],
            "choice": 0,
        },
    )


def transcript(text: str) -> list[dict[str, str]] | str:
    """OpenAI messages from `\n\nHuman: …\n\nAssistant: …`, or why the text is not one."""
    if text.startswith(("Human:", "Assistant:")):
        text = "\n\n" + text
    parts = _TURN.split(text)
    if parts[0].strip():
        return "text before the first 'Human:' turn"
    if len(parts) < 3:
        return "no 'Human:' or 'Assistant:' turns"
    return [{"role": _ROLES[parts[i]], "content": parts[i + 1]} for i in range(1, len(parts), 2)]
