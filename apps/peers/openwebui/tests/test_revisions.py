"""A changed Open WebUI rating is a revision, not a duplicate: re-importing an export (or
pulling it again) where a user flipped a thumb or rewrote a comment stores a new event that
supersedes the one stored before; an unchanged record is still a duplicate, the same file
imported twice adds nothing, and an older export imported again does not undo the change."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.services.importing import ImportSummary, feedback_import
from apps.peers.conftest import TOKEN, FakeOpenWebUI, export_records
from apps.peers.openwebui.services import openwebui_connector_pull, openwebui_connector_save

pytestmark = pytest.mark.django_db

THUMBS = 1  # the export's thumbs-down record
ARENA = 0  # an arena win over one sibling


def _write(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text(json.dumps(records))
    return path


def _changed(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The export after one user changed two of their ratings in Open WebUI."""
    records = copy.deepcopy(records)
    now = max(record["updated_at"] for record in records) + 600  # Open WebUI stamps the change
    thumbs = records[THUMBS]
    thumbs["data"].update(rating=1, comment="On second thought: right after all.")
    thumbs["updated_at"] = now
    arena = records[ARENA]
    arena["data"]["rating"] = -1  # the sibling won after all
    arena["updated_at"] = now
    return records


def _import(src: Any, path: Path) -> ImportSummary:
    return feedback_import(source=src.source, format="openwebui", path=path)


def test_a_reimported_export_with_changed_ratings_stores_revisions_of_the_earlier_events(
    src: Any, tmp_path: Path
) -> None:
    original = export_records()
    first = _import(src, _write(tmp_path / "export.json", original))
    assert (first.imported, first.revised) == (4, 0)
    thumbs_id = f"openwebui:{original[THUMBS]['id']}"
    arena_id = (
        f"openwebui:{original[ARENA]['id']}:{original[ARENA]['data']['sibling_model_ids'][0]}"
    )
    old_thumbs = Event.objects.get(client_id=thumbs_id)

    second = _import(src, _write(tmp_path / "later.json", _changed(original)))
    assert (second.imported, second.revised, second.duplicate) == (2, 2, 2)
    assert "imported 2 (2 revising an earlier event), duplicate 2" in second.line()
    new_thumbs = Event.objects.get(client_id=f"{thumbs_id}:r2")
    assert new_thumbs.supersedes_id == old_thumbs.pk
    assert (new_thumbs.payload["rating"], new_thumbs.payload["comment"]) == (
        1,
        "On second thought: right after all.",
    )
    new_arena = Event.objects.get(client_id=f"{arena_id}:r2")
    assert new_arena.supersedes == Event.objects.get(client_id=arena_id)
    assert new_arena.payload["choice"] == 1

    # The same file again, and the older export again: nothing new, nothing undone.
    for path in (tmp_path / "later.json", tmp_path / "export.json"):
        again = _import(src, path)
        assert (again.imported, again.duplicate) == (0, 4), again.line()
    assert Event.objects.count() == 6
    latest = Event.objects.filter(superseded_by__isnull=True)
    assert set(latest.values_list("client_id", flat=True)) >= {f"{thumbs_id}:r2", f"{arena_id}:r2"}
    assert latest.count() == 4

    # The thumbs changed once more (the arena vote did not): its third revision revises the
    # second.
    third = _changed(_changed(original))
    third[THUMBS]["data"]["rating"] = -1
    summary = _import(src, _write(tmp_path / "latest.json", third))
    assert (summary.imported, summary.revised, summary.duplicate) == (1, 1, 3)
    assert Event.objects.get(client_id=f"{thumbs_id}:r3").supersedes == new_thumbs


def test_a_pull_stores_a_changed_rating_as_a_revision(src: Any, openwebui: FakeOpenWebUI) -> None:
    connector = openwebui_connector_save(
        name="owui", source=src.source, base_url=openwebui.url, token=TOKEN
    )
    assert openwebui_connector_pull(connector=connector).summary.imported == 4
    openwebui.records = _changed(openwebui.records)
    connector.refresh_from_db()
    pulled = openwebui_connector_pull(connector=connector)
    assert (pulled.summary.imported, pulled.summary.revised) == (2, 2), pulled.line()
    revised = Event.objects.filter(supersedes__isnull=False)
    assert sorted(e.client_id.rsplit(":", 1)[1] for e in revised) == ["r2", "r2"]
    connector.refresh_from_db()
    assert openwebui_connector_pull(connector=connector).summary.imported == 0
