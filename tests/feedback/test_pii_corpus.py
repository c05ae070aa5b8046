"""The PII corpus, in and out: each value a front-end might leak (in any field, in any of the
spellings that slipped through before) goes in through the ingest API, and comes out nowhere:
not in the API's read, not in the inbox page's text, not in a dataset export. A dataset build
that finds a secret or card in its rows anyway (a source that opted out of redaction) refuses to
publish and says where."""

from __future__ import annotations

import json
from typing import Any

import pytest
from django.test import Client

from apps.datasets.models import DatasetVersion
from apps.datasets.selectors import version_rows
from apps.datasets.services import dataset_version_build, dataset_version_create, recipe_create
from apps.feedback.services.normalize import feedback_events_normalize
from apps.quality.services import quality_events_judge, verdict_override
from tests.conftest import Api, SourceWithKeys

pytestmark = pytest.mark.django_db

# Each value, and a fragment of it that must not come out (a redacted text keeps its context).
CORPUS: dict[str, tuple[str, str]] = {
    "email": ("jane.doe@example.org", "jane.doe"),
    "email-fullwidth": ("carol\uff20example.com", "carol"),
    "email-zero-width": ("da\u200bve@example.net", "example.net"),
    "email-spelled": ("erin at example dot com", "erin at"),
    "card-dots": ("4111.1111.1111.1111", "1111.1111"),
    "card-nbsp": ("5555\u00a05555\u00a05555\u00a04444", "5555"),
    "phone": ("+1 (415) 555-2671", "555-2671"),
    "ssn": ("078-05-1120", "05-1120"),
    "iban": ("DE89 3704 0044 0532 0130 00", "3704 0044"),
    "aws-secret": ("AWS secret: wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY", "wJalrXUtnFEMI"),
    "aws-access-key": ("AKIAIOSFODNN7EXAMPLE", "AKIAIOSFODNN7"),
    "openai-zero-width": ("sk-\u200bproj-abcdefghijklmnopqrstuvwx12", "abcdefghijklmnop"),
    "github": ("ghp_abcdefghijklmnopqrstuvwxyz0123456789", "ghp_abcdef"),
    "slack": ("xoxb-1234567890-abcdefghij", "xoxb-123"),
    "stripe": ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "4eC39HqLyjWD"),
    "google": ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "AIzaSyA123"),
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "dozjgNryP4J3",
    ),
    "private-key": (
        "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEAtopsecret\n-----END RSA PRIVATE KEY-----",
        "MIIEpAIBAAKCAQEA",
    ),
    "url-password": ("postgres://admin:hunter2secret@db.example.com/app", "hunter2secret"),
}
# Numbers sent as JSON numbers in metadata.
NUMBERS = {
    "card_number": (4111111111111111, "4111111111111111"),
    "phone": (14155552671, "4155552671"),
}


def _event(number: int) -> dict[str, Any]:
    values = [value for value, _ in CORPUS.values()]
    text = " | ".join(values)
    return {
        "type": "preference",
        "id": f"corpus-{number} {CORPUS['email'][0]}",
        "rater": "rater@example.org",
        "model": f"bot for {CORPUS['email-fullwidth'][0]}",
        "licence": f"CC-BY-4.0 by {CORPUS['email-spelled'][0]}",
        "messages": [{"role": "user", "content": f"question {number}: my details are {text}"}],
        "responses": [
            {"model": "a", "content": f"Noted {number}: {text}"},
            {"model": "b", "content": f"I cannot store {CORPUS['card-dots'][0]} ({number})"},
        ],
        "choice": 0,
        "comment": text,
        "tags": [CORPUS["ssn"][0]],
        "metadata": {
            CORPUS["email"][0]: CORPUS["aws-secret"][0],
            "card": NUMBERS["card_number"][0],
            "phone": NUMBERS["phone"][0],
        },
    }


def _leaks(text: str) -> list[str]:
    fragments = {name: fragment for name, (_, fragment) in CORPUS.items()}
    fragments.update({f"number-{name}": fragment for name, (_, fragment) in NUMBERS.items()})
    fragments["rater"] = "rater@example.org"
    return [name for name, fragment in fragments.items() if fragment in text]


def test_the_corpus_comes_out_redacted_in_the_api_read(api: Api) -> None:
    response = api.post(_event(1))
    assert response.status_code == 201, response.content

    listed = api.get("/api/v1/feedback")
    detail = api.get(f"/api/v1/feedback/{response.json()['id']}")

    for answer in (listed, detail):
        text = answer.content.decode()
        assert _leaks(json.dumps(json.loads(text), ensure_ascii=False)) == []
    redactions = detail.json()["redactions"]
    for kind in ("email", "card_number", "phone", "ssn", "iban", "aws_secret_key", "api_key"):
        assert redactions.get(kind), (kind, redactions)
    assert redactions.get("private_key") and redactions.get("url_credentials")


def test_the_corpus_comes_out_redacted_in_the_inbox_and_event_page(
    api: Api, client: Client
) -> None:
    from tests.curation.conftest import user_in

    event_id = api.post(_event(1)).json()["id"]
    feedback_events_normalize(event_ids=[event_id])
    quality_events_judge(event_ids=[event_id])
    client.force_login(user_in("curator", "cora"))

    for page in ("/inbox/", f"/events/{event_id}/"):
        html = client.get(page)
        assert html.status_code == 200
        assert _leaks(html.content.decode()) == [], page


def _build(kind: str = "dpo") -> DatasetVersion:
    recipe = recipe_create(name=f"corpus-{kind}", kind=kind, test_fraction=0)
    return dataset_version_build(version_id=dataset_version_create(recipe=recipe, enqueue=False).pk)


def test_the_corpus_comes_out_redacted_in_a_dataset_export(api: Api) -> None:
    ids = [api.post(_event(n)).json()["id"] for n in range(3)]
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)
    for event_id in ids:  # the advertising filter holds them (a link): a curator lets them in
        verdict_override(event_id=event_id, status="accepted", curator=None)

    version = _build()

    assert version.status == "succeeded", version.error
    rows = version_rows(version, "train") + version_rows(version, "test")
    assert rows
    assert _leaks(json.dumps(rows, ensure_ascii=False)) == []


def test_a_build_with_a_card_in_its_rows_is_refused_and_lists_where(
    make_source: Any, client: Client
) -> None:
    raw: SourceWithKeys = make_source("raw-source", redact_pii=False)
    keyed = Api(client, raw.secret)
    ids = [
        keyed.post(
            {
                "type": "preference",
                "id": f"raw-{n}",
                "messages": [{"role": "user", "content": f"pay {n}"}],
                "responses": [
                    {"content": f"use card 4111 1111 1111 1111 ({n})"},
                    {"content": f"no ({n})"},
                ],
                "choice": 0,
            }
        ).json()["id"]
        for n in range(2)
    ]
    feedback_events_normalize(event_ids=ids)
    quality_events_judge(event_ids=ids)

    version = _build()

    assert version.status == "failed"
    assert "card_number" in version.error and "train.jsonl:1" in version.error
    assert not version.files
