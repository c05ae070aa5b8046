"""Realistic feedback events for the ingest benchmark.

Texts come from the HH-RLHF sample in ../shared/data when it is there (real dialogues, a few
hundred characters a turn), else from a synthetic generator. The mix of types, the share of
events carrying PII and the rater pool are fixed by a seed, so two runs post the same bodies."""

from __future__ import annotations

import random
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson

ROOT = Path(__file__).resolve().parent.parent
HH_SAMPLE = ROOT.parent / "shared" / "data" / "formats" / "hh_rlhf_harmless_sample.jsonl"

TYPE_MIX = (("rating", 0.50), ("preference", 0.25), ("ranking", 0.10), ("edit", 0.15))
MODELS = ("llama3.1:8b", "qwen2.5:7b-instruct", "mistral-nemo:12b", "gemma2:9b", "phi3.5:3.8b")
REASONS = ("not_factually_correct", "not_helpful", "too_long", "great_answer", "unsafe")
TAGS = ("code", "math", "writing", "advice", "chit-chat", "translation")
MAX_CHARS = 700  # one turn; HH turns run from a few words to ~2,000 characters
MIN_REPLY_CHARS = 100  # keeps ~120 of the 300 dialogues: replies average ~270 characters

_TURN = re.compile(r"\n\n(Human|Assistant): ")
_WORDS = (
    "the model answer question user explain because however example would could should data "
    "python function error result value time people think really good better help answer "
    "search write code list number table first second third please thanks sorry about which "
    "there their where when while after before during between under over again never always"
).split()


def _turns(text: str) -> list[tuple[str, str]]:
    parts = _TURN.split(text)
    out = []
    for speaker, body in zip(parts[1::2], parts[2::2], strict=False):
        out.append(("user" if speaker == "Human" else "assistant", body.strip()[:MAX_CHARS]))
    return out


def _dialogues() -> list[tuple[list[tuple[str, str]], str, str]]:
    """(prompt turns, chosen reply, rejected reply) from HH-RLHF, or [] when it is absent."""
    if not HH_SAMPLE.exists():
        return []
    found = []
    for line in HH_SAMPLE.read_bytes().splitlines():
        if not line.strip():
            continue
        record = orjson.loads(line)
        chosen, rejected = _turns(record.get("chosen", "")), _turns(record.get("rejected", ""))
        if len(chosen) < 2 or len(rejected) < 2 or chosen[-1][0] != "assistant":
            continue
        prompt = chosen[:-1][-3:]  # at most three turns of context
        if prompt[0][0] != "user" or chosen[-1][1] == rejected[-1][1]:
            continue
        if min(len(chosen[-1][1]), len(rejected[-1][1])) < MIN_REPLY_CHARS:
            continue  # one-line replies ("Sure!") are common in HH but make a light benchmark
        found.append((prompt, chosen[-1][1], rejected[-1][1]))
    return found


def _sentence(rng: random.Random, chars: int) -> str:
    words: list[str] = []
    length = 0
    while length < chars:
        word = rng.choice(_WORDS)
        words.append(word)
        length += len(word) + 1
    return " ".join(words).capitalize() + "."


def _synthetic(rng: random.Random) -> tuple[list[tuple[str, str]], str, str]:
    turns = [("user", _sentence(rng, rng.randint(60, 400)))]
    if rng.random() < 0.4:
        turns += [
            ("assistant", _sentence(rng, rng.randint(100, 500))),
            ("user", _sentence(rng, rng.randint(30, 200))),
        ]
    return turns, _sentence(rng, rng.randint(150, 700)), _sentence(rng, rng.randint(150, 700))


def _pii(rng: random.Random) -> str:
    kind = rng.random()
    if kind < 0.45:
        return f"mail me at {rng.choice(['jane.doe', 'bob', 'k.smith77'])}@{rng.choice(['example.com', 'mail.org', 'corp.co.uk'])}"
    if kind < 0.75:
        return f"call +1 415 555 {rng.randint(1000, 9999)}"
    if kind < 0.90:
        return f"my server is 10.{rng.randint(0, 255)}.{rng.randint(0, 255)}.{rng.randint(1, 254)}"
    return "here is my key sk-" + "".join(
        rng.choice("abcdefghijkLMNOP0123456789") for _ in range(32)
    )


class EventFactory:
    """Events of every type; ~12% carry PII in a user turn, ~3% in a response."""

    def __init__(self, seed: int = 7, raters: int = 5000, run: str = "bench") -> None:
        self.rng = random.Random(seed)
        self.dialogues = _dialogues()
        self.raters = [f"{run}-user-{n}" for n in range(raters)]
        self.run = run
        self.count = 0
        self.kinds = [kind for kind, _ in TYPE_MIX]
        self.weights = [weight for _, weight in TYPE_MIX]

    @property
    def text_source(self) -> str:
        return (
            f"HH-RLHF sample ({len(self.dialogues)} dialogues)" if self.dialogues else "synthetic"
        )

    def _dialogue(self) -> tuple[list[tuple[str, str]], str, str]:
        if self.dialogues:
            return self.rng.choice(self.dialogues)
        return _synthetic(self.rng)

    def event(self) -> dict[str, Any]:
        rng = self.rng
        self.count += 1
        kind = rng.choices(self.kinds, self.weights)[0]
        prompt, chosen, rejected = self._dialogue()
        messages = [{"role": role, "content": text} for role, text in prompt]
        if rng.random() < 0.12:
            messages[-1] = {"role": "user", "content": f"{messages[-1]['content']} ({_pii(rng)})"}
        if rng.random() < 0.03:
            chosen = f"{chosen} {_pii(rng)}"
        event: dict[str, Any] = {
            "type": kind,
            "id": f"{self.run}-{self.count}",
            "rater": rng.choice(self.raters),
            "model": rng.choice(MODELS),
            "messages": messages,
        }
        if kind == "rating":
            event["response"] = chosen
            if rng.random() < 0.8:
                event["rating"] = rng.choice((1, -1))
            else:
                event["score"] = rng.randint(1, 10)
            if rng.random() < 0.3:
                event["reason"] = rng.choice(REASONS)
            if rng.random() < 0.1:
                event["comment"] = _sentence(rng, rng.randint(20, 200))
        elif kind == "preference":
            a, b = rng.sample(MODELS, 2)
            event["responses"] = [
                {"model": a, "content": chosen},
                {"model": b, "content": rejected},
            ]
            event["choice"] = rng.choice((0, 1, 0, 1, "tie", "both_bad"))
        elif kind == "ranking":
            models = rng.sample(MODELS, 3)
            extra = self._dialogue()[1]
            event["responses"] = [
                {"model": m, "content": c}
                for m, c in zip(models, (chosen, rejected, extra), strict=True)
            ]
            order = [0, 1, 2]
            rng.shuffle(order)
            event["ranking"] = order
        else:
            event["response"] = rejected
            event["edited"] = chosen if chosen != rejected else chosen + " (edited)"
        if rng.random() < 0.3:
            event["tags"] = rng.sample(TAGS, rng.randint(1, 2))
        if rng.random() < 0.5:
            event["timestamp"] = (
                f"2026-01-{rng.randint(10, 28)}T{rng.randint(0, 23):02d}:{rng.randint(0, 59):02d}:00Z"
            )
        if rng.random() < 0.3:
            event["metadata"] = {
                "chat_id": f"c{rng.randint(1, 10**6)}",
                "ui": "open-webui",
                "lang": "en",
            }
        return event

    def batches(self, count: int, size: int) -> Iterator[list[dict[str, Any]]]:
        for _ in range(count):
            yield [self.event() for _ in range(size)]
