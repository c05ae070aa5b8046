"""Human-labelled pairs for audits, from wherever people's choices are:

- a dataset version's test split (DPO rows: chosen over rejected; `dataset_pairs`),
- a file: `hh-rlhf` (Anthropic's pairs), `oasst` (OpenAssistant trees: every two ranked
  replies of one prompt), `jsonl` (Sinkhole's own events, `preference` with choice 0/1 and
  `ranking`, or DPO rows `{"prompt", "chosen", "rejected"}`, optionally with `"votes"`: the
  choices of several people, "a"/"b" or 0/1) (`file_pairs`),
- the preference events stored here (`event_pairs`): accepted events with choice 0 or 1; the
  same two replies to the same conversation voted on by several raters become one pair with
  their votes (the majority is the label; a split vote is left out).

In every source the humans' reply lands on a random side (seeded), so that a judge that always
answers "A" agrees half the time."""

from __future__ import annotations

import hashlib
import json
import random
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

from apps.feedback.importers import importer_for
from apps.feedback.models import Event
from apps.feedback.selectors import latest_revisions
from apps.judges.audit import LabelledPair, shuffled_positions

FORMATS = ("hh-rlhf", "oasst", "jsonl")


class PairsError(ValueError):
    """The pairs cannot be read; the message names the file or version and why."""


def _reply_text(value: Any) -> str:
    if isinstance(value, list):
        return "\n".join(str(m.get("content", "")) for m in value if isinstance(m, dict))
    if isinstance(value, dict):
        return str(value.get("content", ""))
    return str(value)


def dataset_pairs(version: Any, *, split: str = "test", seed: int = 0) -> list[LabelledPair]:
    """The pairs of a DPO-kind dataset version's split (its held-out test split by default)."""
    if version.kind != "dpo":
        raise PairsError(f"v{version.pk} is a {version.kind} dataset; an audit needs a dpo one")
    path = version.file_path(split, "jsonl")
    if path is None or not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise PairsError(f"v{version.pk} has no {split} split to audit on")
    rows = []
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if line.strip():
            row = json.loads(line)
            rows.append((row["prompt"], _reply_text(row["chosen"]), _reply_text(row["rejected"])))
    return shuffled_positions(rows, seed=seed, ref=lambda i: f"v{version.pk}:{split}:{i + 1}")


def _events_from_file(path: Path, fmt: str) -> Iterator[dict[str, Any]]:
    read = importer_for(fmt if fmt in ("hh-rlhf", "oasst") else "jsonl").read
    with open(path, "rb") as handle:
        for record in read(handle):
            if record.event is not None:
                yield record.event


def _vote(value: Any) -> str | None:
    return {0: "a", 1: "b", "0": "a", "1": "b", "a": "a", "b": "b", "A": "a", "B": "b"}.get(value)


def _from_event(event: dict[str, Any]) -> Iterable[tuple[Any, str, str, list[str]]]:
    """(prompt, better, worse, votes-as-given) from one event or DPO row."""
    if {"prompt", "chosen", "rejected"} <= set(event):
        votes = [v for v in (_vote(x) for x in event.get("votes", [])) if v]
        # votes are about (chosen, rejected) as A and B
        yield event["prompt"], _reply_text(event["chosen"]), _reply_text(event["rejected"]), votes
        return
    responses = [_reply_text(r) for r in event.get("responses", []) or []]
    messages = event.get("messages") or []
    if event.get("type") == "preference" and len(responses) == 2:
        choice = _vote(event.get("choice"))
        if choice == "a":
            yield messages, responses[0], responses[1], []
        elif choice == "b":
            yield messages, responses[1], responses[0], []
    elif event.get("type") == "ranking":
        order = [i for i in event.get("ranking", []) if isinstance(i, int) and i < len(responses)]
        for i, better in enumerate(order):
            for worse in order[i + 1 :]:
                yield messages, responses[better], responses[worse], []


def file_pairs(path: str | Path, fmt: str, *, seed: int = 0) -> list[LabelledPair]:
    if fmt not in FORMATS:
        raise PairsError(f"format must be one of {', '.join(FORMATS)}, not {fmt!r}")
    path = Path(path)
    if not path.is_file():
        raise PairsError(f"{path} does not exist")
    rows: list[tuple[Any, str, str]] = []
    votes: list[list[str]] = []
    try:
        for event in _events_from_file(path, fmt):
            for prompt, better, worse, given in _from_event(event):
                rows.append((prompt, better, worse))
                votes.append(given)
    except (OSError, ValueError) as exc:
        raise PairsError(f"{path.name} cannot be read as {fmt}: {exc}") from exc
    if not rows:
        raise PairsError(f"{path.name} holds no human-labelled pairs in the {fmt} format")
    pairs = shuffled_positions(rows, seed=seed, ref=lambda i: f"{path.name}:{i + 1}")
    for pair, given in zip(pairs, votes, strict=True):
        # votes were given with the humans' reply as "a"; follow the reply to its side
        pair.votes = given if pair.human == "a" else [_flip(v) for v in given]
    return pairs


def _flip(vote: str) -> str:
    return "b" if vote == "a" else "a"


def event_pairs(*, source: Any = None, limit: int = 5000, seed: int = 0) -> list[LabelledPair]:
    """Accepted preference events (choice 0/1), grouped by identical pair, with their votes (a
    changed vote once, as it is now: earlier revisions are left out)."""
    events = latest_revisions(Event.objects.filter(type="preference", status="accepted"))
    events = events.order_by("id")
    if source is not None:
        events = events.filter(source=source)
    groups: dict[str, dict[str, Any]] = {}
    for event in events[:limit].iterator():
        payload = event.payload or {}
        responses = [_reply_text(r) for r in payload.get("responses", []) or []]
        choice = _vote(payload.get("choice"))
        if len(responses) != 2 or choice is None:
            continue
        first, second = sorted(responses)
        key = hashlib.sha256(
            json.dumps([payload.get("messages"), first, second], sort_keys=True).encode()
        ).hexdigest()
        group = groups.setdefault(
            key, {"prompt": payload.get("messages") or [], "a": first, "b": second, "votes": []}
        )
        picked = responses[0] if choice == "a" else responses[1]
        group["votes"].append("a" if picked == first else "b")
        group.setdefault("ref", f"event {event.pk}")
    rng = random.Random(seed)
    pairs = []
    for group in groups.values():
        a_votes = group["votes"].count("a")
        b_votes = len(group["votes"]) - a_votes
        if a_votes == b_votes:
            continue  # the people split: no label
        human = "a" if a_votes > b_votes else "b"
        pair = LabelledPair(group["prompt"], group["a"], group["b"], human, group["votes"])
        pair.ref = group["ref"]
        if rng.random() < 0.5:  # sorted order put the alphabetically first reply on A
            pair = LabelledPair(
                pair.prompt, pair.b, pair.a, _flip(human), [_flip(v) for v in pair.votes], pair.ref
            )
        pairs.append(pair)
    if not pairs:
        raise PairsError("no accepted preference events with a choice of 0 or 1")
    return pairs
