"""Following FastChat vote logs as they grow: lines appended while a follower runs, a line still
being written, restarts that go on from the stored offset, truncation, rotation, a folder of
daily logs, and the `follow_fastchat` command. The vote lines are the fixture slice of
FastChat's web server log (tests/fixtures/importers/fastchat_votes.jsonl: six votes of every
kind, a flag, a chat line)."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from django.core.management import CommandError, call_command

from apps.feedback.models import Event
from apps.peers.fastchat.services import DirectoryFollower, FollowError, LogFollower
from apps.peers.models import FastChatLogCursor
from tests.conftest import FIXTURES

LINES = (FIXTURES / "importers" / "fastchat_votes.jsonl").read_text().splitlines(keepends=True)
VOTES, FLAG, CHAT = LINES[:6], LINES[6], LINES[7]


def append(path: Path, *lines: str) -> None:
    with path.open("a", encoding="utf-8") as log:
        log.write("".join(lines))
        log.flush()


def types() -> list[str]:
    return [
        event.payload.get("metadata", {}).get("vote") or event.type
        for event in Event.objects.order_by("id")
    ]


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 15.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return
        time.sleep(0.05)
    pytest.fail(f"{what} within {timeout}s")


@pytest.mark.django_db(transaction=True)
def test_a_running_follower_stores_the_votes_appended_to_the_log_while_it_runs(
    tmp_path, make_source
) -> None:
    source = make_source("arena").source
    log = tmp_path / "2024-05-01-conv.json"
    append(log, VOTES[0])
    stop = threading.Event()
    errors: list[BaseException] = []

    def follow() -> None:  # what `follow_fastchat` does, in a bounded loop
        from django.db import connection

        follower = LogFollower(path=log, source=source)
        try:
            while not stop.is_set():
                follower.poll()
                stop.wait(0.05)
        except BaseException as exc:  # reported by the test, not lost in the thread
            errors.append(exc)
        finally:
            follower.close()
            connection.close()

    thread = threading.Thread(target=follow)
    thread.start()
    try:
        wait_for(lambda: Event.objects.count() == 1, "the first vote was not stored")
        append(log, VOTES[1], VOTES[2])
        wait_for(lambda: Event.objects.count() == 3, "two appended votes were not stored")
        append(log, FLAG, VOTES[3][:100])  # a flag, and a vote still being written
        time.sleep(0.3)
        assert Event.objects.count() == 3
        append(log, VOTES[3][100:])
        wait_for(lambda: Event.objects.count() == 4, "the finished line was not stored")
    finally:
        stop.set()
        thread.join(10)
    assert not errors, errors
    cursor = FastChatLogCursor.objects.get()
    assert (cursor.offset, cursor.lines) == (log.stat().st_size, 5)
    assert (cursor.imported, cursor.skipped) == (4, 1)
    assert types() == ["leftvote", "rightvote", "tievote", "bothbad_vote"]


def test_the_command_once_reads_what_is_there_and_a_restart_goes_on_from_the_stored_offset(
    tmp_path, src, capsys
) -> None:
    log = tmp_path / "votes.json"
    append(log, *VOTES[:3], FLAG, CHAT)

    call_command("follow_fastchat", str(log), "--source", src.source.name, "--once")
    first = capsys.readouterr().out
    append(log, *VOTES[3:])
    call_command("follow_fastchat", str(log), "--once")  # the source is remembered
    second = capsys.readouterr().out

    assert "5 new lines" in first and "imported 3, duplicate 0, rejected 0, skipped 2" in first
    assert "flag vote marks a reply for moderators" in first
    assert "3 new lines" in second and "imported 3, duplicate 0" in second
    assert types() == ["leftvote", "rightvote", "tievote", "bothbad_vote", "upvote", "downvote"]
    assert FastChatLogCursor.objects.get().offset == log.stat().st_size


def test_a_bad_line_is_rejected_with_its_line_number_and_the_rest_goes_on(
    tmp_path, src, capsys
) -> None:
    log = tmp_path / "votes.json"
    append(log, VOTES[0], "{not json\n", VOTES[1])

    call_command("follow_fastchat", str(log), "--source", src.source.name, "--once")

    assert "rejected 1 (votes.json line 2: not valid JSON" in capsys.readouterr().out
    assert Event.objects.count() == 2


def test_a_log_truncated_in_place_is_read_again_from_the_start_without_duplicates(
    tmp_path, src
) -> None:
    log = tmp_path / "votes.json"
    append(log, *VOTES[:3])
    follower = LogFollower(path=log, source=src.source)
    follower.poll()

    log.write_text("")  # logrotate's copytruncate
    append(log, VOTES[3])
    result = follower.poll()

    assert "truncated or rewritten" in result.notes[0]
    assert result.summary.imported == 1
    assert Event.objects.count() == 4
    follower.close()


def test_a_rotated_log_is_read_to_its_end_and_then_the_new_file_from_its_start(
    tmp_path, src
) -> None:
    log = tmp_path / "votes.json"
    append(log, VOTES[0])
    follower = LogFollower(path=log, source=src.source)
    follower.poll()

    append(log, VOTES[1].rstrip("\n"))  # written just before the rotation, no newline
    log.rename(tmp_path / "votes.json.1")
    append(log, VOTES[2])
    result = follower.poll()

    assert result.notes == ["rotated"]
    assert types() == ["leftvote", "rightvote", "tievote"]
    follower.close()


def test_a_file_replaced_while_no_follower_ran_is_read_from_its_start(tmp_path, src) -> None:
    log = tmp_path / "votes.json"
    append(log, *VOTES[:2])
    call_command("follow_fastchat", str(log), "--source", src.source.name, "--once")

    os.replace(_written(tmp_path / "new.json", VOTES[2], VOTES[3], VOTES[4]), log)
    call_command("follow_fastchat", str(log), "--once")

    assert Event.objects.count() == 5
    assert FastChatLogCursor.objects.get().lines == 3


def _written(path: Path, *lines: str) -> Path:
    append(path, *lines)
    return path


def test_following_fastchats_log_folder_picks_up_each_new_days_file(tmp_path, src) -> None:
    append(tmp_path / "2024-05-01-conv.json", VOTES[0])
    (tmp_path / "notes.txt").write_text("not a log")
    follower = DirectoryFollower(folder=tmp_path, source=src.source)
    follower.poll()

    append(tmp_path / "2024-05-01-conv.json", VOTES[1])
    append(tmp_path / "2024-05-02-conv.json", VOTES[2])
    results = follower.poll()

    assert [(Path(r.path).name, r.summary.imported) for r in results] == [
        ("2024-05-01-conv.json", 1),
        ("2024-05-02-conv.json", 1),
    ]
    assert FastChatLogCursor.objects.count() == 2
    follower.close()


def test_the_first_follow_of_a_file_needs_a_source_and_a_file_stays_with_its_source(
    tmp_path, src, make_source
) -> None:
    log = tmp_path / "votes.json"
    append(log, VOTES[0])

    with pytest.raises(CommandError, match="name its source with --source"):
        call_command("follow_fastchat", str(log), "--once")
    with pytest.raises(CommandError, match="no active source named 'nope'"):
        call_command("follow_fastchat", str(log), "--source", "nope", "--once")

    LogFollower(path=log, source=src.source).close()
    with pytest.raises(FollowError, match="already followed into the source 'test-app'"):
        LogFollower(path=log, source=make_source("other").source)


def test_the_same_line_read_twice_is_stored_once(tmp_path, src) -> None:
    log = tmp_path / "votes.json"
    append(log, VOTES[0], VOTES[0])

    call_command("follow_fastchat", str(log), "--source", src.source.name, "--once")

    assert Event.objects.count() == 1
    assert FastChatLogCursor.objects.get().duplicate == 1


def test_a_restarted_folder_follower_sends_new_days_to_the_folders_source(tmp_path, src) -> None:
    append(tmp_path / "2024-05-01-conv.json", VOTES[0])
    call_command("follow_fastchat", str(tmp_path), "--source", src.source.name, "--once")

    append(tmp_path / "2024-05-02-conv.json", VOTES[1])
    call_command("follow_fastchat", str(tmp_path), "--once")  # no --source this time

    assert FastChatLogCursor.objects.filter(source=src.source).count() == 2
    assert Event.objects.count() == 2
