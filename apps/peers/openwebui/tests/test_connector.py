"""The Open WebUI connector end to end, against a real HTTP server on 127.0.0.1 that answers
like Open WebUI's feedback export (the records of ../shared/data/formats): the bearer token,
incremental pulls (a second pull adds nothing, a third adds exactly the new record), errors a
person can act on, the schedule that queues due pulls, and the management commands."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest
from django.core.management import CommandError, call_command
from django.utils import timezone

from apps.feedback.models import Event
from apps.peers.conftest import EXPORT, TOKEN, FakeOpenWebUI, export_records
from apps.peers.models import OpenWebUIConnector
from apps.peers.openwebui.services import openwebui_connector_pull, openwebui_connector_save
from apps.peers.services import connectors_run_due


@pytest.fixture
def connector(src, openwebui: FakeOpenWebUI) -> OpenWebUIConnector:
    return openwebui_connector_save(
        name="owui", source=src.source, base_url=openwebui.url + "/", token=TOKEN
    )


def pull(connector: OpenWebUIConnector, **options: Any):
    connector.refresh_from_db()
    return openwebui_connector_pull(connector=connector, **options)


def test_a_pull_imports_the_export_a_second_adds_nothing_and_a_third_adds_exactly_the_new_record(
    connector: OpenWebUIConnector, openwebui: FakeOpenWebUI
) -> None:
    first = pull(connector)
    # 3 records: an arena win (one preference), a thumbs-down (one rating), a three-way
    # arena win (two preferences).
    assert (first.ok, first.records, first.summary.imported) == (True, 3, 4)
    assert sorted(Event.objects.values_list("type", flat=True)) == ["preference"] * 3 + ["rating"]
    assert openwebui.requests[-1] == {"path": EXPORT, "authorization": f"Bearer {TOKEN}"}

    second = pull(connector)
    assert second.summary.imported == 0 and Event.objects.count() == 4
    # Older records are skipped unread; those in the watermark's second are read again and
    # are harmless duplicates.
    assert (second.unchanged, second.summary.duplicate) == (2, 2)

    openwebui.add_thumbs_down("feedback-new", updated_at=1732000100)
    third = pull(connector)
    assert (third.summary.imported, third.unchanged, third.summary.duplicate) == (1, 2, 2)
    assert Event.objects.filter(client_id="openwebui:feedback-new").exists()
    assert Event.objects.count() == 5

    connector.refresh_from_db()
    assert connector.watermark == 1732000100
    assert (connector.total_imported, connector.total_runs, connector.last_imported) == (5, 3, 1)
    assert connector.last_error == "" and connector.last_success_at is not None


def test_the_events_are_the_ones_a_file_import_of_the_same_export_makes(
    connector: OpenWebUIConnector, src, tmp_path
) -> None:
    pull(connector)
    export = tmp_path / "export.json"
    export.write_text(json.dumps(export_records()))

    call_command(
        "import_feedback", "--format", "openwebui", "--source", src.source.name, str(export)
    )

    assert Event.objects.count() == 4  # the import found every event already there


def test_a_full_pull_reads_every_record_again_and_adds_nothing(
    connector: OpenWebUIConnector,
) -> None:
    pull(connector)

    again = pull(connector, full=True)

    assert (again.unchanged, again.summary.duplicate, again.summary.imported) == (0, 4, 0)


def test_a_wrong_token_is_recorded_as_the_last_error_and_stores_nothing(
    connector: OpenWebUIConnector,
) -> None:
    openwebui_connector_save(
        connector=connector,
        name="owui",
        source=connector.source,
        base_url=connector.base_url,
        token="sk-not-an-admin",
    )

    result = pull(connector)

    assert not result.ok and "refused the token (HTTP 401)" in result.error
    connector.refresh_from_db()
    assert "refused the token" in connector.last_error
    assert connector.watermark is None and connector.last_success_at is None
    assert connector.running_since is None  # free for the next run
    assert Event.objects.count() == 0


@pytest.mark.parametrize(
    ("body", "content_type", "words"),
    [
        (b"<html>login</html>", "text/html", "answered text/html, not JSON"),
        (b'{"detail": "nope"}', "application/json", "not a JSON array"),
    ],
)
def test_an_answer_that_is_not_an_export_is_an_error_a_person_can_act_on(
    connector: OpenWebUIConnector,
    openwebui: FakeOpenWebUI,
    body: bytes,
    content_type: str,
    words: str,
) -> None:
    openwebui.body, openwebui.content_type = body, content_type

    result = pull(connector)

    assert words in result.error and Event.objects.count() == 0


def test_an_export_cut_short_keeps_what_was_read_and_does_not_move_the_watermark(
    connector: OpenWebUIConnector, openwebui: FakeOpenWebUI
) -> None:
    whole = json.dumps(openwebui.records).encode()
    openwebui.body = whole[: whole.index(b'"id": "0b1c2d3e')]  # the third record is cut

    result = pull(connector)

    assert "not valid JSON" in result.error
    assert Event.objects.count() == 2  # the two whole records
    connector.refresh_from_db()
    assert connector.watermark is None

    openwebui.body = None
    assert pull(connector).summary.imported == 2  # the next run gets the rest


def test_a_wrong_url_says_where_it_looked(src, openwebui: FakeOpenWebUI) -> None:
    connector = openwebui_connector_save(
        name="typo", source=src.source, base_url=openwebui.url + "/owui", token=TOKEN
    )

    assert "no feedback export at" in pull(connector).error


def test_a_server_that_is_down_is_an_error_not_a_crash(src) -> None:
    connector = openwebui_connector_save(
        name="down", source=src.source, base_url="http://127.0.0.1:9", token=TOKEN
    )

    assert "could not reach" in pull(connector).error


def test_two_pulls_of_one_connector_never_overlap(connector: OpenWebUIConnector) -> None:
    OpenWebUIConnector.objects.filter(pk=connector.pk).update(running_since=timezone.now())

    assert pull(connector).busy
    assert Event.objects.count() == 0

    # A pull that has been "running" for over an hour died: the next one takes over.
    OpenWebUIConnector.objects.filter(pk=connector.pk).update(
        running_since=timezone.now() - timedelta(hours=2)
    )
    assert pull(connector).ok


# --- the schedule ------------------------------------------------------------------------------


def test_run_due_queues_the_connectors_whose_interval_has_passed_and_only_once(
    connector: OpenWebUIConnector, src, openwebui: FakeOpenWebUI, django_capture_on_commit_callbacks
) -> None:
    later = openwebui_connector_save(
        name="later", source=src.source, base_url=openwebui.url, token=TOKEN
    )
    OpenWebUIConnector.objects.filter(pk=later.pk).update(
        next_run_at=timezone.now() + timedelta(minutes=5)
    )
    off = openwebui_connector_save(
        name="off", source=src.source, base_url=openwebui.url, token=TOKEN, is_active=False
    )

    with django_capture_on_commit_callbacks(execute=True):  # Celery is eager in tests
        queued = connectors_run_due()

    assert queued == [connector.pk]
    assert Event.objects.count() == 4
    connector.refresh_from_db()
    assert connector.next_run_at > timezone.now() + timedelta(minutes=14)
    assert connectors_run_due() == []  # not due again until its interval has passed
    assert off.pk not in queued


def test_beat_runs_the_due_connectors_every_minute_on_the_default_queue() -> None:
    from config.celery import app

    entry = app.conf.beat_schedule["connectors-run-due"]
    assert (entry["task"], entry["schedule"], entry["options"]["queue"]) == (
        "connectors.run_due",
        60.0,
        "default",
    )
    assert {"connectors.run_due", "connectors.openwebui_pull"} <= set(app.tasks)
    # queues come from task_routes (a task's own queue= option is deprecated)
    route = app.amqp.router.route({}, "connectors.openwebui_pull")
    assert route["queue"].name == "default"


# --- the commands -------------------------------------------------------------------------------


def test_the_pull_command_pulls_one_connector_by_name_and_reports_what_it_did(
    connector: OpenWebUIConnector, capsys
) -> None:
    call_command("openwebui_pull", "owui")

    assert "owui: 3 records, 0 unchanged since the last pull; imported 4" in capsys.readouterr().out
    with pytest.raises(
        CommandError, match="no Open WebUI connector named 'nope' \\(known: owui\\)"
    ):
        call_command("openwebui_pull", "nope")


def test_the_pull_command_fails_when_a_pull_fails(connector: OpenWebUIConnector, openwebui) -> None:
    openwebui.stop()

    with pytest.raises(CommandError, match="the pull failed for owui"):
        call_command("openwebui_pull")


def test_the_connector_command_keeps_the_token_out_of_its_output(
    src, openwebui, monkeypatch, capsys
) -> None:
    monkeypatch.setenv("OPENWEBUI_TOKEN", TOKEN)

    call_command(
        "openwebui_connector",
        "prod",
        "--url",
        openwebui.url,
        "--source",
        src.source.name,
        "--every",
        "5",
    )

    out = capsys.readouterr().out
    assert TOKEN not in out and "token sk-o…6789" in out and "every 5 min" in out
    saved = OpenWebUIConnector.objects.get(name="prod")
    assert (saved.token, saved.interval_minutes, saved.is_active) == (TOKEN, 5, True)

    monkeypatch.delenv("OPENWEBUI_TOKEN")
    call_command("openwebui_connector", "prod", "--disable")
    saved.refresh_from_db()
    assert (saved.token, saved.is_active) == (TOKEN, False)  # the token was kept


def test_the_admin_shows_the_token_masked_and_keeps_it_when_left_empty(
    connector: OpenWebUIConnector, admin_client
) -> None:
    page = admin_client.get(f"/admin/connectors/openwebuiconnector/{connector.pk}/change/")
    assert page.status_code == 200
    assert TOKEN not in page.content.decode() and "sk-o…6789" in page.content.decode()

    response = admin_client.post(
        f"/admin/connectors/openwebuiconnector/{connector.pk}/change/",
        {
            "name": "owui",
            "source": connector.source_id,
            "base_url": connector.base_url,
            "token": "",
            "interval_minutes": 30,
            "is_active": "on",
        },
    )

    assert response.status_code == 302, response.content.decode()[:2000]
    connector.refresh_from_db()
    assert (connector.token, connector.interval_minutes) == (TOKEN, 30)
