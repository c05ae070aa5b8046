"""`prompt_key` (apps/datasets/text.py, the build's fast key) must equal `prompt_hash`
(apps/feedback/services/normalize.py, the key ingest stores on each interaction): the split and
the thumbs pairing of a build agree with ingest only while they do."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from apps.datasets.text import clean_messages, prompt_key
from apps.feedback.importers import importer_for
from apps.feedback.services.normalize import prompt_hash

ROOT = Path(__file__).resolve().parents[2]
FIXTURES = ROOT / "tests" / "fixtures" / "importers"
SHARED = ROOT.parent / "shared" / "data" / "formats"

# (format, file): the real feedback the importers read, in the slices that ship with the tests
# and, where the checkout sits beside ../shared/data, the larger samples there too.
CORPUS = [
    ("hh-rlhf", FIXTURES / "hh_rlhf_harmless.jsonl"),
    ("oasst", FIXTURES / "oasst_trees.jsonl"),
    ("openwebui", FIXTURES / "openwebui_feedback_export.json"),
    ("fastchat", FIXTURES / "fastchat_battles.jsonl"),
    ("jsonl", FIXTURES / "events.jsonl"),
    ("hh-rlhf", SHARED / "hh_rlhf_harmless_train_pool.jsonl"),
    ("oasst", SHARED / "oasst_tree_sample.jsonl"),
]


def real_prompts() -> list[list[dict[str, Any]]]:
    prompts = []
    for fmt, path in CORPUS:
        if not path.is_file():
            continue
        with path.open("rb") as stream:
            for record in importer_for(fmt).read(stream):
                if record.event and record.event.get("messages"):
                    prompts.append(record.event["messages"])
    return prompts


def test_the_build_key_equals_ingests_hash_on_every_real_prompt() -> None:
    prompts = real_prompts()
    assert len(prompts) >= 20, "the corpus of real prompts is missing"
    different = [
        json.dumps(messages)[:200]
        for messages in prompts
        if prompt_key(clean_messages(messages)) != prompt_hash(messages)
    ]
    assert not different, f"{len(different)} of {len(prompts)} prompts differ: {different[:3]}"


@pytest.mark.parametrize(
    "content",
    [
        "  What IS the capital\tof Australia?\n",
        "non\u00a0breaking\u2003em\u3000ideographic spaces",
        "separators\x1c\x1d\x1e\x1fand\x85next line\u2028line\u2029paragraph",
        "İstanbul ΣΊΣΥΦΟΣ Straße",  # lower() that changes the length
        "",
        [{"type": "text", "text": "What is in"}, {"type": "image_url"}, {"type": "text"}],
    ],
)
def test_the_build_key_equals_ingests_hash_on_white_space_case_and_content_parts(
    content: Any,
) -> None:
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": content},
        {"role": "assistant", "content": "An answer."},
        {"role": "user", "content": "And  then?"},
    ]
    assert prompt_key(clean_messages(messages)) == prompt_hash(messages)
