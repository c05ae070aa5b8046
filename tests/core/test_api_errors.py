"""Every /api/ answer is JSON in the documented error shape (404, 405, 413 and 500 included),
ids in paths and bodies are parsed strictly (ASCII digits that fit a bigint), and odd but valid
bodies (chunked, with a UTF-8 byte order mark) are read."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from django.conf import settings
from django.test import Client, override_settings

from apps.feedback.models import Event
from tests.conftest import ROOT, Api, SourceWithKeys, rating

pytestmark = pytest.mark.django_db


def assert_error_shape(response: Any, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.content[:300]
    assert response["Content-Type"].startswith("application/json"), response["Content-Type"]
    body = response.json()
    assert set(body) == {"error"} and body["error"]["code"] and body["error"]["message"]
    return body["error"]


@pytest.fixture
def staff(client: Client) -> Client:
    from django.contrib.auth import get_user_model

    user = get_user_model().objects.create_superuser("root", "root@example.org", "pw-123456")
    client.force_login(user)
    return client


# --- the shape ------------------------------------------------------------------------------------


def test_an_unknown_api_path_is_a_json_404(client: Client) -> None:
    error = assert_error_shape(client.get("/api/v1/no-such-thing"), 404)

    assert error["code"] == "not_found"


def test_a_page_outside_the_api_keeps_its_html_404(client: Client) -> None:
    response = client.get("/no-such-page/")

    assert response.status_code == 404
    assert not response["Content-Type"].startswith("application/json")


def test_a_wrong_method_on_the_schema_is_a_json_405(client: Client) -> None:
    error = assert_error_shape(client.delete("/api/schema/"), 405)

    assert error["code"] == "method_not_allowed"


def test_an_exception_no_view_handled_is_a_json_500(
    api: Api, monkeypatch: pytest.MonkeyPatch
) -> None:
    from apps.feedback import selectors

    def broken(**_: Any) -> Any:
        raise RuntimeError("the database fell over")

    monkeypatch.setattr(selectors, "event_list", broken)
    client = Client(raise_request_exception=False)

    response = client.get("/api/v1/feedback", HTTP_AUTHORIZATION=f"Bearer {api.key}")

    error = assert_error_shape(response, 500)
    assert error["code"] == "server_error"
    assert "fell over" not in response.content.decode()


@override_settings(DATA_UPLOAD_MAX_MEMORY_SIZE=1000)
def test_a_body_over_the_upload_limit_is_a_json_413_on_any_api(staff: Client) -> None:
    body = json.dumps({"name": "r", "description": "x" * 5000})

    response = staff.post("/api/v1/recipes", body, content_type="application/json")

    assert_error_shape(response, 413)


# --- strict ids -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/checkpoints/%C2%B3",
        "/api/v1/experiments/%C2%B3",
        "/api/v1/experiments/%C2%B3/results",
        "/api/v1/training-runs/%C2%B3",
        "/api/v1/checkpoints/99999999999999999999999",
        "/api/v1/experiments/99999999999999999999999",
    ],
)
def test_a_path_id_that_is_not_ascii_digits_in_range_is_a_json_404(
    staff: Client, path: str
) -> None:
    assert_error_shape(staff.get(path), 404)


def test_assigning_in_an_experiment_with_a_superscript_id_is_a_json_404(staff: Client) -> None:
    response = staff.get("/api/v1/experiments/%C2%B3/assign", {"rater": "u-1"})

    assert_error_shape(response, 404)


@pytest.mark.parametrize("version", ["¹", "v¹", "99999999999999999999999"])
def test_a_training_run_for_a_dataset_version_that_is_not_an_id_is_a_400(
    staff: Client, version: str
) -> None:
    response = staff.post(
        "/api/v1/training-runs",
        {"dataset_version": version, "method": "sft"},
        content_type="application/json",
    )

    error = assert_error_shape(response, 400)
    assert "dataset_version" in error.get("fields", {}), error


def test_a_nul_in_a_recipes_decontaminate_is_a_400(staff: Client) -> None:
    response = staff.post(
        "/api/v1/recipes",
        {"name": "r1", "decontaminate": "eval\x00set"},
        content_type="application/json",
    )

    error = assert_error_shape(response, 400)
    assert "decontaminate" in error["fields"]


def test_a_page_beyond_bigint_on_the_langfuse_scores_is_a_400(src: SourceWithKeys) -> None:
    import base64

    token = base64.b64encode(f"{src.publishable}:{src.secret}".encode()).decode()

    response = Client().get(
        "/api/public/scores",
        {"page": "1000000000000000000"},
        HTTP_AUTHORIZATION=f"Basic {token}",
    )

    error = assert_error_shape(response, 400)
    assert "page" in error["fields"]


# --- bodies ---------------------------------------------------------------------------------------


def test_a_body_that_starts_with_a_utf8_bom_is_accepted(api: Api) -> None:
    raw = b"\xef\xbb\xbf" + json.dumps(rating()).encode()

    response = api.post(None, raw=raw)

    assert response.status_code == 201, response.content
    assert Event.objects.count() == 1


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.slow
def test_a_chunked_body_through_gunicorn_is_accepted(tmp_path: Path) -> None:
    """Django's test client never chunks, so this goes through the real server (gunicorn, as
    `manage.py serve` and compose run it) on a database of its own."""
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in {"DATABASE_URL", "CELERY_BROKER_URL", "CACHE_URL", "PROMETHEUS_MULTIPROC_DIR"}
    }
    env.update(
        {
            "SINKHOLE_DATA_DIR": str(tmp_path),
            "DJANGO_SETTINGS_MODULE": settings.SETTINGS_MODULE,
            "PYTHONUNBUFFERED": "1",
            "DEBUG": "false",
        }
    )
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    made = subprocess.run(
        [*manage, "create_source", "chunky"],
        cwd=ROOT,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=120,
    ).stdout
    secret = next(word for word in made.split() if word.startswith("sk-"))
    port = _free_port()
    log = (tmp_path / "gunicorn.log").open("wb")
    server = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "gunicorn",
            "-c",
            "python:config.gunicorn",
            "config.wsgi",
            "--bind",
            f"127.0.0.1:{port}",
            "--workers",
            "1",
        ],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        for _ in range(300):
            try:
                httpx.get(f"{url}/healthz", timeout=1)
                break
            except httpx.TransportError:
                time.sleep(0.1)

        def pieces() -> Any:
            body = json.dumps(rating(id="chunked-1")).encode()
            yield b"\xef\xbb\xbf"
            for start in range(0, len(body), 7):
                yield body[start : start + 7]

        response = httpx.post(
            f"{url}/api/v1/feedback",
            content=pieces(),
            headers={"Authorization": f"Bearer {secret}", "Content-Type": "application/json"},
            timeout=30,
        )

        assert response.request.headers.get("Transfer-Encoding") == "chunked"
        assert response.status_code == 201, response.text
        assert response.json()["client_id"] == "chunked-1"
        unknown = httpx.get(f"{url}/api/v1/nothing-here", timeout=10)
        assert unknown.status_code == 404 and "error" in unknown.json()
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


# --- ids in pages and query strings ---------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/inbox/?before=%C2%B3",
        "/inbox/?before=99999999999999999999999",
        "/dashboard/?days=%C2%B3",
        "/dashboard/?days=99999999999999999999999",
    ],
)
def test_a_page_given_a_query_id_that_is_not_ascii_digits_ignores_it(
    staff: Client, path: str
) -> None:
    assert staff.get(path).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/judges/%C2%B3",
        "/api/v1/judges/x@%C2%B3",
        "/api/v1/judges/99999999999999999999999",
        "/api/v1/judges/x@99999999999999999999999",
    ],
)
def test_a_judge_named_by_a_superscript_or_huge_number_is_a_json_404(
    staff: Client, path: str
) -> None:
    assert_error_shape(staff.get(path), 404)


def test_comparing_with_a_version_that_is_not_an_id_asks_for_one(staff: Client, src: Any) -> None:
    from apps.datasets.models import DatasetVersion, Recipe

    recipe = Recipe.objects.create(name="r", kind="sft")
    version = DatasetVersion.objects.create(recipe=recipe, kind="sft")
    for other in ("%C2%B3", "99999999999999999999999"):
        response = staff.get(f"/datasets/versions/{version.pk}/compare?with={other}")
        assert response.status_code == 302, other
