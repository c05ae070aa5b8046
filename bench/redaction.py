"""Redaction benchmark: the cost of PII redaction per event, today's redactor and the one before
issue 12 side by side, on real texts.

    .venv/bin/python bench/redaction.py [--rounds 7] [--reference COMMIT] [--json]

Events are built from ../shared/data: the 1,712 HH-RLHF pairs of hh_rlhf_harmless_train_pool.jsonl
as preference events (the shared turns as messages, the two last replies as responses) and the
5,574 SMS texts of sms_spam_collection.tsv as rating comments, each with a small metadata object
and a model name, as a front-end sends them. The reference is apps/feedback/redaction.py at
REFERENCE (default 33ab97a, before this issue), loaded from git into its own module. Both run on
the same events in alternating rounds, in one process; the best round of each is reported (the
machine is shared), with their ratio. The memo of short strings is cleared before every round, so
each round pays for its first sight of every text."""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
DATA = ROOT.parent / "shared" / "data"
sys.path.insert(0, str(ROOT))
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")


def load_events() -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    for number, line in enumerate((DATA / "formats" / "hh_rlhf_harmless_train_pool.jsonl").open()):
        pair = json.loads(line)
        head, _, chosen = pair["chosen"].rpartition("\n\nAssistant:")
        rejected = pair["rejected"].rpartition("\n\nAssistant:")[2]
        events.append(
            {
                "type": "preference",
                "id": f"hh-{number}",
                "rater": f"user-{number % 97}",
                "model": "llama3.1:8b",
                "messages": [{"role": "user", "content": head.strip()}],
                "responses": [
                    {"model": "a", "content": chosen.strip()},
                    {"model": "b", "content": rejected.strip()},
                ],
                "choice": 0,
                "metadata": {"ui": "chat", "latency_ms": 812 + number, "session": f"s-{number}"},
            }
        )
    for number, line in enumerate((DATA / "spam" / "sms_spam_collection.tsv").open()):
        _, _, text = line.rstrip("\n").partition("\t")
        events.append(
            {
                "type": "rating",
                "id": f"sms-{number}",
                "rater": f"user-{number % 97}",
                "model": "qwen2.5:7b",
                "messages": [{"role": "user", "content": "Was this answer helpful?"}],
                "response": "Here is the answer.",
                "rating": 1 if number % 3 else -1,
                "comment": text,
                "metadata": {"ui": "widget", "page": f"/p/{number}"},
            }
        )
    return events


def reference_module(commit: str) -> Any:
    source = subprocess.run(
        ["git", "show", f"{commit}:apps/feedback/redaction.py"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    path = ROOT / "var" / f"redaction_reference_{commit}.py"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(source)
    spec = importlib.util.spec_from_file_location(f"redaction_reference_{commit}", path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def one_round(module: Any, events: list[dict[str, Any]]) -> tuple[float, int]:
    module._memo.clear()
    found = 0
    started = time.perf_counter()
    for event in events:
        _, counts = module.redact_event(event)
        found += sum(counts.values())
    return time.perf_counter() - started, found


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--reference", default="33ab97a")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()

    import django

    django.setup()
    from apps.feedback import redaction as today

    events = load_events()
    before = reference_module(args.reference)
    best = {"today": float("inf"), "before": float("inf")}
    found = {}
    for _ in range(args.rounds):
        for name, module in (("before", before), ("today", today)):
            seconds, found[name] = one_round(module, events)
            best[name] = min(best[name], seconds)
    per_event = {name: best[name] / len(events) * 1e6 for name in best}
    result = {
        "events": len(events),
        "rounds": args.rounds,
        "reference": args.reference,
        "us_per_event_today": round(per_event["today"], 2),
        "us_per_event_before": round(per_event["before"], 2),
        "ratio_today_to_before": round(per_event["today"] / per_event["before"], 2),
        "redactions_today": found["today"],
        "redactions_before": found["before"],
    }
    if args.json:
        print(json.dumps(result))
        return
    print(f"{len(events):,} events from ../shared/data, best of {args.rounds} rounds each")
    print(
        f"  before ({args.reference}): {per_event['before']:8.1f} µs/event, {found['before']} redactions"
    )
    print(f"  today:            {per_event['today']:8.1f} µs/event, {found['today']} redactions")
    print(f"  today / before:   {per_event['today'] / per_event['before']:.2f}x")


if __name__ == "__main__":
    main()
