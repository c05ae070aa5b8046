"""Rows from feedback: what each kind of signal gives to an SFT, DPO or KTO dataset.

Pure functions of stored event payloads (and curators' gold replies); no database. The build
streams events through `event_rows` and groups thumbs by prompt for `thumbs_pairs`.

| signal | SFT `{"messages"}` | DPO `{"prompt","chosen","rejected"}` | KTO `{"prompt","completion","label"}` |
| --- | --- | --- | --- |
| rating 👍 (or score ≥ 7) | prompt + reply | with a 👎 on the same prompt (`thumbs`) | desirable |
| rating 👎 (or score ≤ 4) | — | see above | undesirable |
| preference 0/1 | prompt + winner | (winner, loser) | winner desirable, loser undesirable |
| preference tie | — | dropped | — |
| preference both_bad | — | dropped | both undesirable |
| ranking | prompt + best | every ordered pair | best desirable, worst undesirable |
| edit | prompt + edited | (edited, original) | edited desirable, original undesirable |
| curator gold | prompt + gold (instead of that reply) | (gold, original) | gold desirable |

Imported events with placeholder texts (`metadata.placeholders`) give no rows. Every row records its quadrant (which rule made it) and the ids of the events it came from.
Multi-turn prompts stay multi-turn: the prompt is the event's whole `messages`."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from itertools import combinations
from typing import Any

from apps.datasets.text import clean_messages

RULES = ("preferences", "rankings", "edits", "thumbs", "gold")
GOOD_SCORE, BAD_SCORE = 7, 4


def rules_with_defaults(rules: Mapping[str, Any] | None) -> dict[str, bool]:
    """Every rule on unless the recipe turns it off."""
    rules = rules or {}
    return {name: bool(rules.get(name, True)) for name in RULES}


@dataclass(frozen=True)
class EventRecord:
    id: int
    type: str
    payload: dict[str, Any]
    source: str = ""
    model: str = ""


@dataclass
class Row:
    columns: dict[str, Any]
    prompt: list[dict[str, str]]
    completion: str
    quadrant: str
    label: str
    event_ids: tuple[int, ...]
    source: str = ""
    model: str = ""


@dataclass
class Replies:
    """An event's prompt and its replies as (text, model), by position."""

    prompt: list[dict[str, str]]
    replies: list[tuple[str, str]] = field(default_factory=list)


def replies_of(event: EventRecord) -> Replies:
    payload = event.payload
    prompt = clean_messages(payload.get("messages") or [])
    model = payload.get("model") or event.model or ""
    if event.type in ("rating", "edit"):
        return Replies(prompt, [(payload.get("response") or "", model)])
    return Replies(
        prompt,
        [(r.get("content") or "", r.get("model") or model) for r in payload.get("responses") or []],
    )


def has_placeholders(payload: Mapping[str, Any]) -> bool:
    """Imported events whose texts the input did not have carry stand-ins (`[reply of …: not in
    the export]`) named in `metadata.placeholders`: never training text."""
    metadata = payload.get("metadata")
    return bool(isinstance(metadata, dict) and metadata.get("placeholders"))


def polarity(value: int | None, score: int | None) -> int:
    """+1 good, -1 bad, 0 neither: thumbs first, else the 1-10 score."""
    if value in (1, -1):
        return int(value)
    if score is not None:
        if score >= GOOD_SCORE:
            return 1
        if score <= BAD_SCORE:
            return -1
    return 0


def _assistant(text: str) -> list[dict[str, str]]:
    return [{"role": "assistant", "content": text}]


class _Maker:
    def __init__(self, kind: str, event: EventRecord, replies: Replies) -> None:
        self.kind, self.event, self.r = kind, event, replies

    def _row(
        self,
        columns: dict[str, Any],
        completion: str,
        quadrant: str,
        label: str,
        model: str,
        event_ids: tuple[int, ...] | None = None,
    ) -> Row:
        return Row(
            columns,
            self.r.prompt,
            completion,
            quadrant,
            label,
            event_ids or (self.event.id,),
            self.event.source,
            model,
        )

    def sft(self, text: str, model: str, quadrant: str) -> Row | None:
        if not text.strip():
            return None
        return self._row(
            {"messages": [*self.r.prompt, *_assistant(text)]}, text, quadrant, quadrant, model
        )

    def pair(self, chosen: tuple[str, str], rejected: tuple[str, str], quadrant: str) -> Row | None:
        if (
            not chosen[0].strip()
            or not rejected[0].strip()
            or chosen[0].strip() == rejected[0].strip()
        ):
            return None
        columns = {
            "prompt": self.r.prompt,
            "chosen": _assistant(chosen[0]),
            "rejected": _assistant(rejected[0]),
        }
        return self._row(columns, chosen[0], quadrant, quadrant, chosen[1])

    def kto(self, reply: tuple[str, str], desirable: bool, quadrant: str) -> Row | None:
        if not reply[0].strip():
            return None
        columns = {"prompt": self.r.prompt, "completion": _assistant(reply[0]), "label": desirable}
        return self._row(
            columns, reply[0], quadrant, "desirable" if desirable else "undesirable", reply[1]
        )


def event_rows(
    kind: str,
    event: EventRecord,
    *,
    rules: Mapping[str, bool],
    gold: Mapping[int, str] | None = None,
    dropped: Counter | None = None,
    rating: tuple[int | None, int | None] | None = None,
) -> Iterator[Row]:
    """The rows of KIND that EVENT gives (thumbs pairs, which span events, come from
    `thumbs_pairs`). GOLD maps a reply position to the curator's better reply. DROPPED counts
    what was left out and why. RATING overrides the payload's (value, score)."""
    dropped = dropped if dropped is not None else Counter()
    if has_placeholders(event.payload):
        dropped["placeholder_text"] += 1
        return
    replies = replies_of(event)
    if not replies.prompt or not replies.replies:
        dropped["no_prompt_or_reply"] += 1
        return
    make = _Maker(kind, event, replies)
    gold = dict(gold or {}) if rules.get("gold", True) else {}
    gold = {p: text for p, text in gold.items() if 0 <= p < len(replies.replies) and text.strip()}
    rows = _signal_rows(kind, event, replies, make, rules, gold, dropped, rating)
    for position, text in sorted(gold.items()):
        original = replies.replies[position]
        if kind == "sft":
            rows.append(make.sft(text, "curator", "gold"))
        elif kind == "dpo":
            rows.append(make.pair((text, "curator"), original, "gold"))
        else:
            rows.append(make.kto((text, "curator"), True, "gold"))
    yield from (row for row in rows if row is not None)


def _signal_rows(kind, event, replies, make, rules, gold, dropped, rating) -> list[Row | None]:  # noqa: C901, PLR0911, PLR0912
    payload, r = event.payload, replies.replies

    # In SFT a gold reply replaces the reply it improves.
    def sft(p: int, quadrant: str) -> Row | None:
        return make.sft(*r[p], quadrant) if p not in gold else None

    if event.type == "rating":
        if not rules["thumbs"]:
            return []
        value, score = (
            rating if rating is not None else (payload.get("rating"), payload.get("score"))
        )
        sign = polarity(value, score)
        if sign == 0:
            dropped["neutral_rating"] += 1
            return []
        if kind == "sft":
            return [sft(0, "rating")] if sign > 0 else []
        if kind == "kto":
            return [make.kto(r[0], sign > 0, "rating")]
        return []  # DPO: pairs of thumbs across events, see thumbs_pairs
    if event.type == "edit":
        if not rules["edits"]:
            return []
        edited = (payload.get("edited") or "", r[0][1])
        if kind == "sft":
            return [make.sft(*edited, "edit")] if 0 not in gold else []
        if kind == "dpo":
            return [make.pair(edited, r[0], "edit")]
        return [make.kto(edited, True, "edit"), make.kto(r[0], False, "edit")]
    if event.type == "preference":
        if not rules["preferences"]:
            return []
        choice = payload.get("choice")
        if choice == "tie":
            dropped["tie"] += 1
            return []
        if choice == "both_bad":
            if kind == "kto":
                return [make.kto(r[0], False, "preference"), make.kto(r[1], False, "preference")]
            dropped["both_bad"] += 1
            return []
        if choice not in (0, 1):
            dropped["unknown_choice"] += 1
            return []
        win, lose = choice, 1 - choice
        if kind == "sft":
            return [sft(win, "preference")]
        if kind == "dpo":
            return [make.pair(r[win], r[lose], "preference")]
        return [make.kto(r[win], True, "preference"), make.kto(r[lose], False, "preference")]
    if event.type == "ranking":
        if not rules["rankings"]:
            return []
        order = [p for p in payload.get("ranking") or [] if isinstance(p, int) and 0 <= p < len(r)]
        if len(order) < 2:
            dropped["short_ranking"] += 1
            return []
        if kind == "sft":
            return [sft(order[0], "ranking")]
        if kind == "dpo":
            return [
                make.pair(r[better], r[worse], "ranking")
                for better, worse in combinations(order, 2)
            ]
        return [make.kto(r[order[0]], True, "ranking"), make.kto(r[order[-1]], False, "ranking")]
    dropped["unknown_type"] += 1
    return []


@dataclass(frozen=True)
class Thumb:
    """One thumbs-rated reply, for pairing with others on the same normalized prompt."""

    event_id: int
    sign: int
    payload: dict[str, Any]
    source: str = ""
    model: str = ""


def thumbs_pairs(thumbs: list[Thumb], *, dropped: Counter | None = None) -> Iterator[Row]:
    """DPO pairs from thumbs on one normalized prompt: each up-voted reply against a down-voted
    one. Every rated reply takes part at least once (the shorter side cycles); identical replies
    and repeated pairs are skipped. Deterministic in the order given (event id)."""
    dropped = dropped if dropped is not None else Counter()
    thumbs = [t for t in thumbs if not has_placeholders(t.payload)]
    up = [t for t in thumbs if t.sign > 0]
    down = [t for t in thumbs if t.sign < 0]
    if not up or not down:
        dropped["unpaired_thumbs"] += len(thumbs)
        return
    seen: set[tuple[str, str]] = set()
    makers: dict[int, _Maker] = {}  # one per up-voted event: its pairs share its prompt
    for i in range(max(len(up), len(down))):
        good, bad = up[i % len(up)], down[i % len(down)]
        chosen = good.payload.get("response") or ""
        rejected = bad.payload.get("response") or ""
        if (chosen, rejected) in seen or chosen.strip() == rejected.strip():
            continue
        seen.add((chosen, rejected))
        # The prompt of the up-voted event: both normalize to the same text, this one is kept.
        maker = makers.get(good.event_id)
        if maker is None:
            event = EventRecord(good.event_id, "rating", good.payload, good.source, good.model)
            maker = makers[good.event_id] = _Maker("dpo", event, replies_of(event))
        row = maker.pair((chosen, good.model), (rejected, bad.model), "thumbs")
        if row is not None:
            row.event_ids = (good.event_id, bad.event_id)
            yield row
