"""The command line on a fresh embedded install with no worker running: `import_feedback`
normalizes and judges what it imported before it returns, so `build_dataset` right after it has
rows; `build_dataset` says how many events still wait for a worker, refuses an empty version
unless `--allow-empty`, and names its recipe after the command and reuses it."""

from __future__ import annotations

import io
import json

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError

from apps.datasets.models import Recipe
from tests.conftest import FIXTURES

PAIRS = FIXTURES / "importers" / "hh_rlhf_harmless.jsonl"


@pytest.fixture
def embedded(settings):
    """Embedded mode (no broker server), whatever broker this test run uses."""
    settings.CELERY_BROKER_URL = "filesystem://localhost//"


def command(name: str, *args: str) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()
    call_command(name, *args, stdout=out, stderr=err)
    return out.getvalue(), err.getvalue()


@pytest.mark.django_db
def test_import_then_build_without_a_worker_gives_the_rows(embedded) -> None:
    _, said = command("import_feedback", "--format", "hh-rlhf", str(PAIRS))
    out, _ = command("build_dataset", "--kind", "dpo", "--json")

    built = json.loads(out)
    assert "no worker is listening" in said
    assert built["status"] == "succeeded"
    assert sum(built["rows"].values()) == 4
    assert built["waiting"] == 0


@pytest.mark.django_db
def test_cli_builds_name_their_recipe_after_the_command_and_reuse_it(embedded) -> None:
    command("import_feedback", "--format", "hh-rlhf", str(PAIRS))
    first = json.loads(command("build_dataset", "--kind", "dpo", "--json")[0])
    second = json.loads(command("build_dataset", "--kind", "dpo", "--json")[0])
    other = json.loads(command("build_dataset", "--kind", "dpo", "--seed", "7", "--json")[0])

    assert first["recipe"] == second["recipe"] != other["recipe"]
    assert first["recipe"].startswith("build-dataset-dpo-")
    assert Recipe.objects.count() == 2
    assert not Recipe.objects.filter(name__startswith="adhoc-").exists()


@pytest.mark.django_db
def test_an_empty_version_is_an_error_that_names_the_events_waiting_for_a_worker() -> None:
    command("import_feedback", "--format", "hh-rlhf", "--no-process", str(PAIRS))

    with pytest.raises(CommandError, match="has no rows; 4 events still wait for a worker"):
        command("build_dataset", "--kind", "dpo")
    out, err = command("build_dataset", "--kind", "dpo", "--allow-empty")
    assert "succeeded" in out
    assert "4 events wait for a worker" in err


@pytest.mark.django_db
def test_with_a_broker_server_and_no_worker_the_import_says_its_events_wait(settings) -> None:
    settings.CELERY_BROKER_URL = "redis://127.0.0.1:9/0"

    _, said = command("import_feedback", "--format", "hh-rlhf", str(PAIRS))

    assert "no worker is listening: the new events wait for one" in said
    with pytest.raises(CommandError, match="4 events still wait for a worker"):
        command("build_dataset", "--kind", "dpo")
