"""The feedback importers: each format on small fixture slices (tests/fixtures/importers, see
tests/fixtures/NOTICE) and on the real samples in ../shared/data, the import service's counts,
idempotence and streaming, and the `import_feedback` command."""

from __future__ import annotations

import gzip
import io
import json
import re
import sys
import tracemalloc
from pathlib import Path
from typing import Any

import pytest
from django.core.management import CommandError, call_command

from apps.feedback.importers import FORMATS, UnknownFormat, importer_for
from apps.feedback.models import Event
from apps.feedback.services.importing import ImportSummary, feedback_import
from apps.sources.models import Source
from tests.conftest import FIXTURES, SHARED_DATA

HERE = FIXTURES / "importers"
IMPORTERS_DIR = Path(__file__).resolve().parents[2] / "apps" / "feedback" / "importers"
PEERS_DIR = IMPORTERS_DIR.parents[1] / "peers"


def run(source: Source, format: str, path: Path, **options: Any) -> ImportSummary:
    return feedback_import(source=source, format=format, path=path, **options)


def payloads(source: Source, type: str | None = None) -> list[dict[str, Any]]:
    events = Event.objects.filter(source=source).order_by("id")
    if type:
        events = events.filter(type=type)
    return [event.payload for event in events]


def shared(relative: str) -> Path:
    path = SHARED_DATA / relative
    if not path.exists():
        pytest.skip(
            f"real sample {relative} is absent: these tests read ../shared/data (see its README)"
        )
    return path


def write_lines(path: Path, lines: list[str]) -> Path:
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


def transcript(messages: list[dict[str, Any]]) -> str:
    names = {"user": "Human", "assistant": "Assistant"}
    return "".join(f"\n\n{names[m['role']]}: {m['content']}" for m in messages)


# --- the registry ---------------------------------------------------------------------------


def test_every_format_has_a_folder_of_the_same_shape() -> None:
    assert set(FORMATS) == {"openwebui", "fastchat", "hh-rlhf", "oasst", "jsonl"}
    for name, importer in FORMATS.items():
        # generic formats in apps/feedback/importers/<name>/, a peer's own in apps/peers/<peer>/importer/
        reader = Path(sys.modules[importer.read_stream.__module__].__file__ or "")
        folder = reader.parent
        assert reader.name == "reader.py" and (folder / "__init__.py").is_file(), name
        assert folder in {IMPORTERS_DIR / name.replace("-", "_"), PEERS_DIR / name / "importer"}
        assert importer.name == name and importer.description


def test_asking_for_an_unknown_format_names_the_known_ones() -> None:
    with pytest.raises(UnknownFormat, match="known formats: ") as raised:
        importer_for("csv")
    named = set(str(raised.value).split("known formats: ")[1].split(", "))
    assert named == {"openwebui", "fastchat", "hh-rlhf", "oasst", "jsonl"}


def test_a_reader_can_be_used_without_the_database_and_yields_api_events() -> None:
    events = list(importer_for("fastchat").events(HERE / "fastchat_battles.jsonl"))
    assert len(events) == 7
    assert {event["type"] for event in events} == {"preference"}


# --- Open WebUI ------------------------------------------------------------------------------


def test_an_open_webui_arena_win_beats_each_sibling_and_a_thumbs_stays_a_rating(src) -> None:
    summary = run(src.source, "openwebui", HERE / "openwebui_feedback_export.json")

    assert (summary.imported, summary.duplicate, summary.rejected) == (4, 0, 0)
    first, thumbs, three_way_1, three_way_2 = payloads(src.source)
    assert first["type"] == "preference" and first["choice"] == 0
    assert [r["model"] for r in first["responses"]] == ["llama3.1:8b", "qwen2.5:7b"]
    assert first["messages"] == [{"role": "user", "content": "What does HTTP status 418 mean?"}]
    assert first["responses"][0]["content"].startswith("418 I'm a teapot")
    assert first["responses"][1]["content"].startswith("418 is a client error")
    assert first["reason"] == "Accurate information"
    assert first["comment"] == "Cited the right RFC and the example compiled."
    assert first["tags"] == ["networking", "http", "programming"]
    assert "placeholders" not in first["metadata"]
    assert [
        (e["responses"][0]["model"], e["responses"][1]["model"], e["choice"])
        for e in (three_way_1, three_way_2)
    ] == [("qwen2.5:7b", "llama3.1:8b", 0), ("qwen2.5:7b", "mistral:7b", 0)]
    assert thumbs["type"] == "rating" and thumbs["rating"] == -1 and thumbs["score"] == 3
    assert thumbs["model"] == "gpt-4o-mini" and thumbs["reason"] == "Don't like the style"


def test_open_webui_raters_are_the_user_ids_stored_as_hashes(src) -> None:
    run(src.source, "openwebui", HERE / "openwebui_feedback_export.json")

    raters = list(
        Event.objects.filter(source=src.source).order_by("id").values_list("rater_hash", flat=True)
    )
    assert raters[0] == raters[1] != raters[2] == raters[3]  # records 1 and 2 share a user
    assert all(len(rater) == 64 for rater in raters)
    assert "b2d9e7a0" not in json.dumps(payloads(src.source))


def test_open_webui_text_missing_from_the_snapshot_is_a_marked_placeholder(src) -> None:
    run(src.source, "openwebui", HERE / "openwebui_feedback_export.json")

    thumbs = payloads(src.source, "rating")[0]
    assert thumbs["metadata"]["placeholders"] == ["messages", "response"]
    assert thumbs["messages"][0]["content"].startswith("[Open WebUI chat 1d2e3f40")
    assert thumbs["response"] == "[reply of gpt-4o-mini: not in the export]"


def test_open_webui_preferences_reproduce_open_webuis_own_leaderboard(src) -> None:
    # ../shared/data/README.md: online Elo, K=32, file order gives these ratings.
    run(src.source, "openwebui", HERE / "openwebui_feedback_export.json")
    ratings: dict[str, float] = {}
    for event in payloads(src.source, "preference"):
        a, b = (response["model"] for response in event["responses"])
        outcome = {0: 1.0, 1: 0.0}.get(event["choice"], 0.5)
        ra, rb = ratings.setdefault(a, 1000.0), ratings.setdefault(b, 1000.0)
        expected = 1 / (1 + 10 ** ((rb - ra) / 400))
        ratings[a] = ra + 32 * (outcome - expected)
        ratings[b] = rb + 32 * ((1 - outcome) - (1 - expected))

    assert ratings == pytest.approx(
        {"qwen2.5:7b": 1017.4018, "llama3.1:8b": 998.5305, "mistral:7b": 984.0677}, abs=1e-4
    )


def test_a_json_array_cut_short_keeps_the_records_before_the_cut(src, tmp_path) -> None:
    whole = (HERE / "openwebui_feedback_export.json").read_bytes()
    cut = tmp_path / "export.json"
    cut.write_bytes(whole[: whole.index(b'"0b1c2d3e') + 40])

    summary = run(src.source, "openwebui", cut)

    assert (summary.imported, summary.rejected) == (2, 1)
    assert summary.first_reasons[0].startswith("record 3: not valid JSON")


# --- FastChat --------------------------------------------------------------------------------


def test_fastchat_battles_map_the_winner_to_the_choice(src) -> None:
    summary = run(src.source, "fastchat", HERE / "fastchat_battles.jsonl")

    assert (summary.imported, summary.rejected) == (7, 0)
    events = payloads(src.source)
    assert [e["choice"] for e in events] == [0, 0, "tie", 1, 1, 1, 1]
    assert [r["model"] for r in events[0]["responses"]] == ["bard", "gpt35"]
    assert events[5]["responses"][1]["model"] == "gpt4"


def test_a_fastchat_battle_without_texts_names_its_question_in_a_marked_placeholder(src) -> None:
    run(src.source, "fastchat", HERE / "fastchat_battles.jsonl")

    first = payloads(src.source)[0]
    assert first["messages"] == [
        {"role": "user", "content": "[FastChat question 1: text not in the battle file]"}
    ]
    assert first["responses"][0]["content"] == "[reply of bard: text not in the battle file]"
    assert first["metadata"]["placeholders"] == ["messages", "responses"]
    assert first["metadata"]["question_id"] == 1
    assert first["metadata"]["source_file"].startswith("answer_bard-vs-answer_gpt35")
    judges = list(
        Event.objects.filter(source=src.source).order_by("id").values_list("rater_hash", flat=True)
    )
    assert judges[0] == judges[3] != judges[1]  # annotator slot 0 judged lines 1 and 100


def test_fastchat_battles_with_conversations_split_off_the_shared_prompt(src) -> None:
    summary = run(src.source, "fastchat", HERE / "fastchat_battles_conversations.json")

    assert (summary.imported, summary.rejected) == (3, 0)
    single, multi, b_wins = payloads(src.source)
    assert single["messages"] == [
        {"role": "user", "content": "Name a prime number between 20 and 30."}
    ]
    assert [r["content"] for r in single["responses"]] == ["23 is prime.", "25."]
    assert single["choice"] == 0 and "placeholders" not in single["metadata"]
    assert single["timestamp"].startswith("2023-04-24T")
    assert multi["choice"] == "both_bad"
    assert multi["messages"] == [{"role": "user", "content": "What is the capital of Australia?"}]
    assert [r["content"] for r in multi["responses"]] == ["Sydney.", "Melbourne."]
    assert multi["metadata"]["later_messages"] == 2
    assert b_wins["choice"] == 1


def test_fastchat_vote_logs_become_preferences_and_ratings_and_flags_are_skipped(src) -> None:
    summary = run(src.source, "fastchat", HERE / "fastchat_votes.jsonl")

    assert (summary.imported, summary.rejected, summary.skipped) == (6, 0, 2)
    assert summary.first_skips[0].startswith("line 7: a flag vote")
    assert summary.first_skips[1].startswith("line 8: a 'chat' log line is not a vote")
    preferences = payloads(src.source, "preference")
    assert [e["choice"] for e in preferences] == [0, 1, "tie", "both_bad"]
    assert [r["model"] for r in preferences[0]["responses"]] == ["vicuna-13b", "llama-2-13b-chat"]
    assert preferences[0]["messages"] == [
        {"role": "user", "content": "Write a haiku about autumn."}
    ]
    ratings = payloads(src.source, "rating")
    assert [(e["model"], e["rating"], e["response"]) for e in ratings] == [
        ("vicuna-13b", 1, "Hi!"),
        ("koala-13b", -1, "k-a-t"),
    ]


def test_the_same_battles_as_a_json_array_are_duplicates_of_the_jsonl_ones(src, tmp_path) -> None:
    lines = (HERE / "fastchat_battles.jsonl").read_text().splitlines()
    array = tmp_path / "battles.json"
    array.write_text(json.dumps([json.loads(line) for line in lines], indent=2))

    run(src.source, "fastchat", HERE / "fastchat_battles.jsonl")
    again = run(src.source, "fastchat", array)

    assert (again.imported, again.duplicate) == (0, 7)


# --- HH-RLHF ---------------------------------------------------------------------------------


def test_hh_rlhf_pairs_split_the_shared_prefix_into_messages(src) -> None:
    summary = run(src.source, "hh-rlhf", HERE / "hh_rlhf_harmless.jsonl")

    assert (summary.imported, summary.rejected) == (4, 0)
    first = payloads(src.source)[0]
    assert first["choice"] == 0
    assert [m["role"] for m in first["messages"]] == [
        "user",
        "assistant",
        "user",
        "assistant",
        "user",
    ]
    assert first["messages"][0]["content"] == "what are some pranks with a pen i can do?"
    assert first["responses"][0]["content"].startswith("No, sorry!  All of these involve a pen")
    assert first["responses"][1]["content"].startswith(
        "There are lots of funny things you can do with pens"
    )


def test_hh_rlhf_messages_and_replies_rebuild_the_original_transcripts() -> None:
    for line, event in zip(
        (HERE / "hh_rlhf_harmless.jsonl").read_text().splitlines(),
        importer_for("hh-rlhf").events(HERE / "hh_rlhf_harmless.jsonl"),
        strict=True,
    ):
        pair = json.loads(line)
        chosen, rejected = (
            event["messages"] + [{"role": "assistant", **r}] for r in event["responses"]
        )
        assert transcript(chosen) == pair["chosen"]
        assert transcript(rejected) == pair["rejected"]


def test_hh_rlhf_reads_gzip_whatever_the_file_is_called(src, tmp_path) -> None:
    data = (HERE / "hh_rlhf_harmless.jsonl").read_bytes()
    (tmp_path / "pairs.jsonl.gz").write_bytes(gzip.compress(data))
    (tmp_path / "pairs.data").write_bytes(gzip.compress(data))

    assert run(src.source, "hh-rlhf", tmp_path / "pairs.jsonl.gz").imported == 4
    assert run(src.source, "hh-rlhf", tmp_path / "pairs.data").duplicate == 4


def test_a_gzip_file_cut_short_keeps_what_came_before_and_says_why_it_stopped(
    src, tmp_path
) -> None:
    lines = (HERE / "hh_rlhf_harmless.jsonl").read_bytes() * 200  # repeated rows: all kept
    cut = tmp_path / "pairs.jsonl.gz"
    compressed = gzip.compress(lines)
    cut.write_bytes(compressed[: len(compressed) * 3 // 4])

    summary = run(src.source, "hh-rlhf", cut)

    assert summary.imported > 4 and summary.duplicate == 0
    assert summary.rejected >= 1
    assert any(
        "the rest of the file could not be read" in reason for reason in summary.first_reasons
    )


def test_an_hh_rlhf_pair_that_does_not_differ_is_rejected(src, tmp_path) -> None:
    same = "\n\nHuman: hi\n\nAssistant: hello"
    path = write_lines(
        tmp_path / "pairs.jsonl",
        [
            json.dumps({"chosen": same, "rejected": same}),
            json.dumps(
                {
                    "chosen": "\n\nHuman: hi\n\nAssistant: hello",
                    "rejected": "\n\nHuman: yo\n\nAssistant: hey",
                }
            ),
            json.dumps({"prompt": "no pair here"}),
        ],
    )

    summary = run(src.source, "hh-rlhf", path)

    assert (summary.imported, summary.rejected) == (0, 3)
    assert summary.first_reasons == [
        "line 1: chosen and rejected are the same conversation",
        "line 2: chosen and rejected differ before their last assistant reply",
        "line 3: not an HH-RLHF pair (text fields 'chosen' and 'rejected')",
    ]


# --- OpenAssistant ---------------------------------------------------------------------------


def test_oasst_sibling_ranks_become_rankings_with_their_conversation_history(src) -> None:
    summary = run(src.source, "oasst", HERE / "oasst_trees.jsonl")

    assert (summary.imported, summary.rejected) == (4, 0)
    events = payloads(src.source)
    assert [len(e["responses"]) for e in events] == [3, 2, 2, 2]
    assert events[0]["messages"] == [
        {"role": "user", "content": "How can I find the best 401k plan for my needs?"}
    ]
    deep = events[2]
    assert [m["role"] for m in deep["messages"]] == ["user", "assistant", "user"]
    tree = json.loads((HERE / "oasst_trees.jsonl").read_text().splitlines()[1])
    first_reply = tree["prompt"]["replies"][0]
    assert deep["messages"][1]["content"] == first_reply["text"]
    assert deep["messages"][2]["content"] == first_reply["replies"][0]["text"]
    assert deep["id"] == f"oasst:{first_reply['replies'][0]['message_id']}"


def test_oasst_rankings_list_the_best_reply_first_whatever_the_tree_order(src, tmp_path) -> None:
    tree = {
        "message_tree_id": "t1",
        "prompt": {
            "message_id": "p1",
            "role": "prompter",
            "text": "Best fruit?",
            "replies": [
                {
                    "message_id": "r1",
                    "role": "assistant",
                    "text": "Durian",
                    "rank": 2,
                    "replies": [],
                },
                {
                    "message_id": "r2",
                    "role": "assistant",
                    "text": "Mango",
                    "rank": 0,
                    "replies": [],
                },
                {
                    "message_id": "r3",
                    "role": "assistant",
                    "text": "Spam",
                    "deleted": True,
                    "rank": 1,
                    "replies": [],
                },
                {
                    "message_id": "r4",
                    "role": "assistant",
                    "text": "Apple",
                    "rank": 1,
                    "synthetic": True,
                    "model_name": "chip20b",
                    "replies": [],
                },
                {"message_id": "r5", "role": "assistant", "text": "Unranked", "replies": []},
            ],
        },
    }
    lonely = {
        "message_tree_id": "t2",
        "prompt": {"message_id": "p2", "role": "prompter", "text": "Hi", "replies": []},
    }
    path = write_lines(tmp_path / "trees.jsonl", [json.dumps(tree), json.dumps(lonely)])

    summary = run(src.source, "oasst", path)

    assert (summary.imported, summary.skipped) == (1, 1)
    event = payloads(src.source)[0]
    assert [r["content"] for r in event["responses"]] == ["Durian", "Mango", "Apple"]
    best_first = [event["responses"][index]["content"] for index in event["ranking"]]
    assert best_first == ["Mango", "Apple", "Durian"]
    assert event["responses"][2]["model"] == "chip20b" and "model" not in event["responses"][0]
    assert event["metadata"]["response_message_ids"] == ["r1", "r2", "r4"]


# --- our own schema --------------------------------------------------------------------------


def test_our_own_jsonl_events_import_as_they_are_and_get_stable_ids(src) -> None:
    summary = run(src.source, "jsonl", HERE / "events.jsonl")

    assert (summary.imported, summary.rejected) == (4, 0)
    events = payloads(src.source)
    assert [e["type"] for e in events] == ["rating", "preference", "ranking", "edit"]
    assert events[0]["id"] == "evt-001"
    assert re.fullmatch(r"jsonl:[0-9a-f]{32}", events[1]["id"])
    assert run(src.source, "jsonl", HERE / "events.jsonl").duplicate == 4


def test_a_corrupt_line_is_rejected_with_a_reason_while_its_neighbours_import(
    src, tmp_path
) -> None:
    good = (HERE / "events.jsonl").read_text().splitlines()
    bad_role = json.dumps(
        {**json.loads(good[0]), "id": "evt-bad", "messages": [{"role": "boss", "content": "x"}]}
    )
    path = write_lines(
        tmp_path / "events.jsonl",
        [good[0], '{"type": "rating", "id": ', good[1], "", bad_role, "[1, 2]", good[2]],
    )

    summary = run(src.source, "jsonl", path)

    assert (summary.imported, summary.rejected) == (3, 3)
    assert summary.first_reasons[0].startswith("line 2: not valid JSON")
    assert summary.first_reasons[1].startswith("line 5: messages.0.role: Input should be")
    assert summary.first_reasons[2] == "line 6: non_field_errors: each event must be a JSON object"
    assert {e["id"] for e in payloads(src.source)} >= {"evt-001", "evt-003"}


# --- every format ----------------------------------------------------------------------------

FIXTURE_FILES = [
    ("openwebui", "openwebui_feedback_export.json", 4),
    ("fastchat", "fastchat_battles.jsonl", 7),
    ("fastchat", "fastchat_battles_conversations.json", 3),
    ("fastchat", "fastchat_votes.jsonl", 6),
    ("hh-rlhf", "hh_rlhf_harmless.jsonl", 4),
    ("oasst", "oasst_trees.jsonl", 4),
    ("jsonl", "events.jsonl", 4),
]


@pytest.mark.parametrize(("format", "name", "count"), FIXTURE_FILES)
def test_importing_the_same_file_twice_adds_nothing(src, format, name, count) -> None:
    first = run(src.source, format, HERE / name, batch_size=2)
    second = run(src.source, format, HERE / name, batch_size=3)

    assert (first.imported, first.duplicate) == (count, 0)
    assert (second.imported, second.duplicate, second.rejected) == (0, count, 0)
    assert Event.objects.filter(source=src.source).count() == count


REAL_SAMPLES = [
    ("openwebui", "formats/openwebui_feedback_export_example.json", 4),
    ("fastchat", "battles/prd_vicuna80_human_battles.jsonl", 7040),
    ("hh-rlhf", "formats/hh_rlhf_harmless_sample.jsonl", 300),
    ("oasst", "formats/oasst_tree_sample.jsonl", 18),
]


@pytest.mark.parametrize(("format", "relative", "count"), REAL_SAMPLES)
def test_each_real_sample_imports_completely_and_a_second_time_adds_nothing(
    src, format, relative, count
) -> None:
    path = shared(relative)
    first = run(src.source, format, path)
    second = run(src.source, format, path)

    assert (first.imported, first.duplicate, first.rejected) == (count, 0, 0)
    assert (second.imported, second.duplicate, second.rejected) == (0, count, 0)


def test_the_real_battles_keep_every_outcome(src) -> None:
    path = shared("battles/prd_vicuna80_human_battles.jsonl")
    run(src.source, "fastchat", path)

    events = payloads(src.source)
    choices = [event["choice"] for event in events]
    assert (choices.count(0), choices.count(1), choices.count("tie")) == (3211, 3025, 804)
    assert len({response["model"] for event in events for response in event["responses"]}) == 9
    assert len({event["metadata"]["question_id"] for event in events}) == 80


def test_every_real_hh_rlhf_pair_rebuilds_its_transcripts() -> None:
    path = shared("formats/hh_rlhf_harmless_sample.jsonl")
    pairs = [json.loads(line) for line in path.read_text().splitlines()]
    events = list(importer_for("hh-rlhf").events(path))

    assert len(events) == len(pairs) == 300
    for pair, event in zip(pairs, events, strict=True):
        assert event["messages"][-1]["role"] == "user"
        assert (
            transcript(event["messages"] + [{"role": "assistant", **event["responses"][0]}])
            == pair["chosen"]
        )
        assert (
            transcript(event["messages"] + [{"role": "assistant", **event["responses"][1]}])
            == pair["rejected"]
        )


def test_every_real_oasst_ranking_puts_rank_zero_first() -> None:
    events = list(importer_for("oasst").events(shared("formats/oasst_tree_sample.jsonl")))

    assert len(events) == 18
    for event in events:
        ranks = event["metadata"]["ranks"]
        assert [ranks[index] for index in event["ranking"]] == sorted(ranks)
        assert event["messages"][-1]["role"] == "user"
    assert max(len(event["messages"]) for event in events) >= 3  # multi-turn threads kept


# --- progress and streaming ------------------------------------------------------------------


def test_progress_reports_every_byte_of_the_file(src, tmp_path) -> None:
    path = tmp_path / "pairs.jsonl.gz"
    path.write_bytes(gzip.compress((HERE / "hh_rlhf_harmless.jsonl").read_bytes()))
    seen: list[int] = []

    summary = run(src.source, "hh-rlhf", path, progress=seen.append)

    assert sum(seen) == summary.bytes_read == path.stat().st_size


@pytest.mark.slow
@pytest.mark.django_db(transaction=True)
def test_a_big_file_streams_through_in_flat_memory(make_source, tmp_path, monkeypatch) -> None:
    # Committed batches, as in production: inside a test transaction every batch's on-commit
    # hook would pile up until the end. Deriving rows and judging quality are the worker's jobs
    # (tested elsewhere), not the import's, so their tasks are stubbed (the quality pipeline
    # would load its classifier into this process); PII redaction is off only to save time.
    from config import celery

    monkeypatch.setattr(celery, "send_hint", lambda name, now=False: False)  # no drains here
    source = make_source("big-import", redact_pii=False).source
    lines = 50_000
    path = tmp_path / "battles.jsonl"
    with path.open("w") as out:
        for number in range(lines):
            out.write(
                json.dumps(
                    {
                        "question_id": number,
                        "model_a": f"model-{number % 7}",
                        "model_b": f"model-{number % 5 + 7}",
                        "winner": ("model_a", "model_b", "tie", "tie (bothbad)")[number % 4],
                        "judge": f"judge-{number % 101}",
                        "tstamp": 1_700_000_000 + number,
                        "source_file": f"generated-{number:08d}-" + "x" * 120,
                    }
                )
                + "\n"
            )
    size = path.stat().st_size

    tracemalloc.start()
    try:
        summary = run(source, "fastchat", path, batch_size=250)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (summary.imported, summary.rejected) == (lines, 0)
    assert size > 14_000_000
    # Holding the file would take more than its size; a batch of 250 events takes about 3 MB.
    # Numbering repeated rows (importers keep every copy) remembers one 64-bit hash per distinct
    # row, at most ~100 bytes each in a set: that grows with the rows, the rest must not.
    budget = 6_000_000 + 100 * lines
    assert budget < size, "the budget must stay below holding the file"
    assert peak < budget, f"peak {peak / 1e6:.1f} MB for a {size / 1e6:.0f} MB file"


# --- the command -----------------------------------------------------------------------------


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def command(*args: str, stderr: io.StringIO | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), stderr if stderr is not None else io.StringIO()
    call_command("import_feedback", *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_the_command_ends_with_a_summary_line_and_creates_the_default_source() -> None:
    out, err = command("--format", "fastchat", str(HERE / "fastchat_votes.jsonl"))

    assert (
        out.strip()
        .splitlines()[-1]
        .startswith("imported 6, duplicate 0, rejected 0, skipped 2 (line 7: a flag vote")
    )
    assert "created source 'import-fastchat'" in err
    assert "%" not in err  # no progress bar when stderr is not a terminal
    assert Event.objects.filter(source__name="import-fastchat").count() == 6


@pytest.mark.django_db
def test_the_command_run_twice_reports_everything_as_duplicate() -> None:
    command("--format", "oasst", str(HERE / "oasst_trees.jsonl"))
    out, err = command("--format", "oasst", str(HERE / "oasst_trees.jsonl"))

    assert out.strip() == "imported 0, duplicate 4, rejected 0"
    assert "created source" not in err


@pytest.mark.django_db
def test_the_command_reports_the_first_reasons_for_rejected_lines(tmp_path) -> None:
    good = (HERE / "events.jsonl").read_text().splitlines()
    path = write_lines(tmp_path / "events.jsonl", [good[0], "not json", good[1]])

    out, _ = command("--format", "jsonl", "--source", "my-import", str(path))

    assert out.strip().startswith("imported 2, duplicate 0, rejected 1 (line 2: not valid JSON")
    assert Source.objects.filter(name="my-import").exists()


@pytest.mark.django_db
def test_the_command_imports_into_an_existing_source_with_its_settings(make_source) -> None:
    make_source("webui-prod", hold_for_review=True)

    out, err = command(
        "--format",
        "openwebui",
        "--source",
        "webui-prod",
        str(HERE / "openwebui_feedback_export.json"),
    )

    assert out.strip() == "imported 4 (4 held for review), duplicate 0, rejected 0"
    assert "created source" not in err
    assert set(
        Event.objects.filter(source__name="webui-prod").values_list("status", flat=True)
    ) == {"quarantined"}


@pytest.mark.django_db
def test_the_command_draws_a_progress_bar_on_a_terminal() -> None:
    _, err = command(
        "--format", "hh-rlhf", str(HERE / "hh_rlhf_harmless.jsonl"), stderr=_Terminal()
    )

    assert "100%" in err


@pytest.mark.django_db
def test_the_command_refuses_a_missing_file(tmp_path) -> None:
    with pytest.raises(CommandError, match="no such file"):
        command("--format", "jsonl", str(tmp_path / "nope.jsonl"))
    assert not Source.objects.exists()


@pytest.mark.django_db
def test_the_command_refuses_an_unknown_format() -> None:
    with pytest.raises(CommandError, match="invalid choice: 'csv'"):
        command("--format", "csv", str(HERE / "events.jsonl"))


@pytest.mark.django_db
def test_the_command_refuses_a_source_name_it_cannot_create() -> None:
    with pytest.raises(CommandError, match="cannot create source 'Not A Name'"):
        command("--format", "jsonl", "--source", "Not A Name", str(HERE / "events.jsonl"))


@pytest.mark.django_db
def test_the_command_refuses_an_inactive_source(make_source) -> None:
    make_source("retired", is_active=False)

    with pytest.raises(CommandError, match="source 'retired' is inactive"):
        command("--format", "jsonl", "--source", "retired", str(HERE / "events.jsonl"))
    assert not Event.objects.exists()


def arena_hard_style(rows: list[dict[str, Any]], weights: list[int]) -> list[str]:
    """Battle rows as an arena-hard-style file writes them: a strong verdict repeated."""
    return [
        json.dumps(row) for row, weight in zip(rows, weights, strict=True) for _ in range(weight)
    ]


def test_a_fastchat_file_that_repeats_rows_to_weight_verdicts_keeps_every_row(
    src, tmp_path
) -> None:
    battles = [
        json.loads(line)
        for line in (HERE / "fastchat_battles.jsonl").read_text().splitlines()
        if line.strip()
    ]
    weights = [1 + index % 3 for index in range(len(battles))]
    path = write_lines(tmp_path / "weighted.jsonl", arena_hard_style(battles, weights))

    first = run(src.source, "fastchat", path)
    again = run(src.source, "fastchat", path)

    assert (first.imported, first.duplicate, first.rejected) == (sum(weights), 0, 0)
    assert (again.imported, again.duplicate) == (0, sum(weights))
    winners = sorted(str(p["choice"]) for p in payloads(src.source))
    expected = sorted(
        str({"model_a": 0, "model_b": 1, "tie": "tie", "tie (bothbad)": "both_bad"}[b["winner"]])
        for b, w in zip(battles, weights, strict=True)
        for _ in range(w)
    )
    assert winners == expected


def test_a_grown_fastchat_file_adds_only_its_new_rows_repeats_included(src, tmp_path) -> None:
    battles = [
        json.loads(line)
        for line in (HERE / "fastchat_battles.jsonl").read_text().splitlines()
        if line.strip()
    ]
    path = write_lines(tmp_path / "log.jsonl", arena_hard_style(battles, [2] * len(battles)))
    run(src.source, "fastchat", path)

    grown = arena_hard_style(battles, [2] * len(battles)) + [json.dumps(battles[0])] * 3
    summary = run(src.source, "fastchat", write_lines(path, grown))

    assert (summary.imported, summary.duplicate) == (3, 2 * len(battles))


def test_a_real_battle_log_with_weighted_repeats_imports_every_row(src, tmp_path) -> None:
    rows = [
        json.loads(line)
        for line in shared("battles/prd_vicuna80_human_battles.jsonl")
        .read_text()
        .splitlines()[:449]
    ]
    weights = [
        3 if row["winner"] != "tie" and index % 2 == 0 else 1 for index, row in enumerate(rows)
    ]
    path = write_lines(tmp_path / "weighted.jsonl", arena_hard_style(rows, weights))

    summary = run(src.source, "fastchat", path)

    # Before: "imported 449, duplicate 899"-style counts, a third of the verdicts lost.
    assert (summary.imported, summary.duplicate, summary.rejected) == (sum(weights), 0, 0)
