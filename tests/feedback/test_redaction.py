"""PII redaction: e-mails, phone numbers, cards (Luhn), IP addresses and API keys are replaced
before anything is written, counted by kind; what only looks like them (dates, versions, code,
ordinary numbers) stays as it was. A source can opt out."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest

from apps.feedback.models import Event
from apps.feedback.redaction import redact_event, redact_text
from apps.sources.hashing import rater_hash
from tests.conftest import Api, preference, rating


def _redact(text: str) -> tuple[str, dict[str, int]]:
    counts: Counter[str] = Counter()
    return redact_text(text, counts), dict(counts)


REDACTED = {
    # e-mail
    "email": ("write to jane.doe@example.org today", "write to [EMAIL] today", "email"),
    "email-plus-tag-and-subdomains": (
        "cc j.doe+feedback@mail.corp.example.co.uk.",
        "cc [EMAIL].",
        "email",
    ),
    "email-in-angle-brackets": ("From: Jane <jane@example.org>", "From: Jane <[EMAIL]>", "email"),
    # phone
    "phone-us-dashes": ("call 555-123-4567 now", "call [PHONE] now", "phone"),
    "phone-us-dots": ("call 555.123.4567", "call [PHONE]", "phone"),
    "phone-us-parentheses": ("call (555) 123-4567", "call [PHONE]", "phone"),
    "phone-international": ("call +1 (555) 123-4567", "call [PHONE]", "phone"),
    "phone-uk": ("ring +44 20 7946 0958 or 020 7946 0958", "ring [PHONE] or [PHONE]", "phone"),
    "phone-france-whole": ("appelez le 01 23 45 67 89 svp", "appelez le [PHONE] svp", "phone"),
    "phone-germany": ("Tel. +49 30 901820", "Tel. [PHONE]", "phone"),
    # payment cards, Luhn-checked
    "card-visa-spaced": (
        "card 4111 1111 1111 1111 exp 12/29",
        "card [CARD_NUMBER] exp 12/29",
        "card_number",
    ),
    "card-visa-dashed": ("4111-1111-1111-1111", "[CARD_NUMBER]", "card_number"),
    "card-visa-solid": ("my card is 4111111111111111.", "my card is [CARD_NUMBER].", "card_number"),
    "card-mastercard": ("5555 5555 5555 4444", "[CARD_NUMBER]", "card_number"),
    "card-amex": ("amex 3782 822463 10005", "amex [CARD_NUMBER]", "card_number"),
    # IP addresses
    "ipv4": ("from 192.168.1.20 today", "from [IP_ADDRESS] today", "ip_address"),
    "ipv4-with-port": ("at 10.0.0.1:8080", "at [IP_ADDRESS]:8080", "ip_address"),
    "ipv6-full": (
        "host 2001:0db8:85a3:0000:0000:8a2e:0370:7334 up",
        "host [IP_ADDRESS] up",
        "ip_address",
    ),
    "ipv6-compressed": ("host 2001:db8::8a2e:370:7334", "host [IP_ADDRESS]", "ip_address"),
    "ipv6-loopback": ("bind ::1 only", "bind [IP_ADDRESS] only", "ip_address"),
    "ipv6-link-local": ("via fe80::1 on eth0", "via [IP_ADDRESS] on eth0", "ip_address"),
    # API keys and tokens
    "openai-key": ("key sk-proj-abcdefghijklmnopqrstuvwx1234", "key [API_KEY]", "api_key"),
    "openai-key-plain": (
        "OPENAI_API_KEY=sk-abcdefghijklmnopqrstuvwxyz",
        "OPENAI_API_KEY=[API_KEY]",
        "api_key",
    ),
    "anthropic-key": ("sk-ant-api03-abcdefghijklmnopqrstuvwxyz", "[API_KEY]", "api_key"),
    "aws-access-key": ("aws AKIAIOSFODNN7EXAMPLE here", "aws [API_KEY] here", "api_key"),
    "github-token": (
        "token ghp_abcdefghijklmnopqrstuvwxyz0123456789",
        "token [API_KEY]",
        "api_key",
    ),
    "github-pat": (
        "github_pat_11ABCDEFG0123456789_abcdefghijklmnopqrstuvwxyz",
        "[API_KEY]",
        "api_key",
    ),
    "slack-token": ("xoxb-1234567890-abcdefghij", "[API_KEY]", "api_key"),
    "huggingface-token": ("hf_abcdefghijklmnopqrstuvwxyzABCDEF", "[API_KEY]", "api_key"),
    "jwt": (
        "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U",
        "[API_KEY]",
        "api_key",
    ),
    "bearer-token": (
        "Authorization: Bearer abcdefghijklmnopqrstuvwxyz012345",
        "Authorization: [BEARER_TOKEN]",
        "bearer_token",
    ),
    "bearer-token-lower-case": (
        "curl -H 'authorization: bearer 0123456789abcdef0123'",
        "curl -H 'authorization: [BEARER_TOKEN]'",
        "bearer_token",
    ),
    # what slipped through before: other spellings of the same values
    "card-dotted": ("card 4111.1111.1111.1111 ok", "card [CARD_NUMBER] ok", "card_number"),
    "card-no-break-spaces": (
        "card 4111\u00a01111\u00a01111\u00a01111",
        "card [CARD_NUMBER]",
        "card_number",
    ),
    "card-narrow-no-break-spaces": (
        "4111\u202f1111\u202f1111\u202f1111",
        "[CARD_NUMBER]",
        "card_number",
    ),
    "email-fullwidth-at": ("mail carol\uff20example.com", "mail [EMAIL]", "email"),
    "email-zero-width-split": ("mail ca\u200brol@exa\u200bmple.com", "mail [EMAIL]", "email"),
    "email-spelled-out": ("write erin at example dot com", "write [EMAIL]", "email"),
    "email-spelled-brackets": ("erin [at] example [dot] co [dot] uk!", "[EMAIL]!", "email"),
    "openai-key-zero-width": (
        "key sk-\u200bproj-abcdefghijklmnopqrstuvwx",
        "key [API_KEY]",
        "api_key",
    ),
    "ssn": ("my SSN is 123-45-6789.", "my SSN is [SSN].", "ssn"),
    "iban-spaced": ("IBAN DE89 3704 0044 0532 0130 00 please", "IBAN [IBAN] please", "iban"),
    "iban-solid": ("pay GB82WEST12345698765432", "pay [IBAN]", "iban"),
    "aws-secret-key": (
        "aws_secret_access_key = wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY",
        "aws_secret_access_key = [AWS_SECRET_KEY]",
        "aws_secret_key",
    ),
    "private-key-block": (
        "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nbye",
        "key:\n[PRIVATE_KEY]\nbye",
        "private_key",
    ),
    "private-key-unterminated": (
        "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA",
        "[PRIVATE_KEY]",
        "private_key",
    ),
    "url-with-password": (
        "db postgres://admin:hunter2@db.example.com:5432/app",
        "db [URL_CREDENTIALS]db.example.com:5432/app",
        "url_credentials",
    ),
    "stripe-key": ("sk_live_4eC39HqLyjWDarjtT1zdp7dc", "[API_KEY]", "api_key"),
    "stripe-restricted-key": ("rk_test_4eC39HqLyjWDarjtT1zdp7dc", "[API_KEY]", "api_key"),
    "google-api-key": ("AIzaSyA1234567890abcdefghijklmnopqrstuv", "[API_KEY]", "api_key"),
}


@pytest.mark.parametrize(("text", "expected", "kind"), list(REDACTED.values()), ids=list(REDACTED))
def test_it_redacts_pii(text: str, expected: str, kind: str) -> None:
    redacted, counts = _redact(text)

    assert redacted == expected
    assert set(counts) == {kind}


KEPT = {
    # numbers that are neither phones nor cards
    "small-numbers": "I have 3 cats, 12 dogs and 1234567 ants.",
    "decimals": "pi is 3.14159 and e is 2.71828",
    "thousands": "it costs 1,000,000 dollars (or 1 000 000 €)",
    "unix-time": "created at 1700000000, or 1700000000000 in ms",
    "long-digit-run": "order 12345678901234567890 shipped",
    "card-failing-luhn": "4111 1111 1111 1112",
    "card-all-zeros": "0000 0000 0000 0000",
    "isbn": "ISBN 978-3-16-148410-0",
    "ranges": "pages 1-2-3 and 100-200-300",
    "short-phone-like": "room 555-1234",
    "hash": "commit 9fceb02d0ae598e95dc970b74767f19372d61af8",
    "uuid": "id 123e4567-e89b-12d3-a456-426614174000",
    # dates and times
    "iso-date": "on 2024-01-15 at noon",
    "iso-datetime": "at 2024-01-15T12:30:45Z",
    "european-date-dots": "born 01.02.2024 or 15.01.2024",
    "date-dashes": "due 05-06-2023",
    "date-slashes": "due 01/02/2024",
    "time": "at 12:30:45 sharp",
    # versions
    "semver": "upgrade to 1.2.3 or 0.10.2",
    "python-version": "Python 3.12.1 on Windows 10.0.19041.1",
    "v-prefixed-four-part": "release v1.2.3.4",
    "model-tag": "llama3.1:8b and qwen2.5:7b-instruct",
    # code
    "cpp-scope": "use std::vector and a::b",
    "rust-path": "Vec::new() and dead::beef and u8::MAX",
    "hex-ish-rust-path": "call abc::def here",
    # words that start like secrets
    "task-words": "the task-management-system-for everyone",
    "bearer-in-prose": "the bearer of bad news",
    "sk-short": "sk-learn is short",
    "at-sign-alone": "meet @ noon, @handle",
    "at-and-dot-in-prose": "we looked at the dot matrix printer; meet at home, dot the i",
    "hex-digest-40": "sha1 0123456789abcdef0123456789abcdef01234567 ok",
    "long-word-40-no-digits": "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN",
    "iban-bad-checksum": "DE89 3704 0044 0532 0130 01",
    "ssn-impossible-area": "666-12-3456 and 900-12-3456 and 123-00-4567",
    "url-without-password": "see https://example.com:8080/x?y=1",
    "fullwidth-text-without-pii": "ＡＢＣ　ｄｅｆ and ﬁne ligatures",
}


@pytest.mark.parametrize("text", list(KEPT.values()), ids=list(KEPT))
def test_it_keeps_what_only_looks_like_pii(text: str) -> None:
    assert _redact(text) == (text, {})


def test_it_counts_each_redaction_by_kind() -> None:
    redacted, counts = _redact("a@example.org, b@example.org, 555-123-4567 and 4111 1111 1111 1111")

    assert redacted == "[EMAIL], [EMAIL], [PHONE] and [CARD_NUMBER]"
    assert counts == {"email": 2, "phone": 1, "card_number": 1}


def test_it_redacts_every_free_text_field_of_an_event() -> None:
    event = preference(
        messages=[{"role": "user", "content": [{"type": "text", "text": "I am a@example.org"}]}],
        responses=[{"model": "a", "content": "Call 555-123-4567"}, {"model": "b", "content": "no"}],
        comment="card 4111 1111 1111 1111",
        reason="ip 10.0.0.1",
        tags=["b@example.org"],
        metadata={"note": {"deep": ["sk-abcdefghijklmnopqrstuvwxyz"]}, "c@example.org": 1},
    )

    redacted, counts = redact_event(event)

    assert redacted["messages"][0]["content"][0]["text"] == "I am [EMAIL]"
    assert redacted["responses"][0]["content"] == "Call [PHONE]"
    assert redacted["comment"] == "card [CARD_NUMBER]"
    assert redacted["reason"] == "ip [IP_ADDRESS]"
    assert redacted["tags"] == ["[EMAIL]"]
    assert redacted["metadata"] == {"note": {"deep": ["[API_KEY]"]}, "[EMAIL]": 1}
    assert counts == {"email": 3, "phone": 1, "card_number": 1, "ip_address": 1, "api_key": 1}


def test_two_metadata_keys_that_redact_alike_are_both_kept() -> None:
    redacted, counts = redact_event(rating(metadata={"a@example.org": 1, "b@example.org": 2}))

    assert sorted(redacted["metadata"].values()) == [1, 2]
    assert all("@" not in key for key in redacted["metadata"])
    assert counts == {"email": 2}


def test_it_leaves_references_alone_and_redacts_the_model_licence_and_id() -> None:
    event = rating(
        id="evt:jane@example.org",
        model="llama3.1:8b for bob@example.org",
        checkpoint="ckpt-555-123-4567",
        licence="CC-BY-4.0 (ask carol@example.org)",
        timestamp="2026-01-31T12:00:00Z",
    )

    redacted, counts = redact_event(event)

    assert redacted["checkpoint"] == "ckpt-555-123-4567"
    assert redacted["timestamp"] == event["timestamp"]
    assert redacted["model"] == "llama3.1:8b for [EMAIL]"
    assert redacted["licence"] == "CC-BY-4.0 (ask [EMAIL])"
    assert redacted["id"].startswith("evt:[EMAIL]~") and "jane" not in redacted["id"]
    assert counts == {"email": 3}


def test_a_redacted_client_id_stays_one_per_event_and_stable_for_retries() -> None:
    first = redact_event(rating(id="jane@example.org"))[0]["id"]
    again = redact_event(rating(id="jane@example.org"))[0]["id"]
    other = redact_event(rating(id="john@example.org"))[0]["id"]

    assert first == again
    assert first != other


def test_a_clean_model_licence_and_id_are_kept_as_sent() -> None:
    event = rating(id="evt-192.168-1", model="llama3.1:8b", licence="CC-BY-4.0")

    redacted, counts = redact_event(event)

    assert redacted == event
    assert counts == {}


def test_it_does_not_change_the_event_it_was_given() -> None:
    event = rating(comment="a@example.org")

    redact_event(event)

    assert event["comment"] == "a@example.org"


# --- through the API -------------------------------------------------------------------------------


def test_pii_never_reaches_the_database(api: Api) -> None:
    sent = rating(
        messages=[{"role": "user", "content": "I'm jane@example.org, card 4111 1111 1111 1111"}],
        response="Noted, I'll call +1 (555) 123-4567.",
        comment="my key sk-proj-abcdefghijklmnopqrstuvwx leaked from 203.0.113.7",
    )

    response = api.post(sent)

    event = Event.objects.get(pk=response.json()["id"])
    # The stored `id` carries a hex digest keyed by SECRET_KEY, which may contain "555" by chance.
    stored = str({key: value for key, value in event.payload.items() if key != "id"})
    for secret in ("jane@example.org", "4111 1111 1111 1111", "555", "sk-proj-abc", "203.0.113.7"):
        assert secret not in stored
    assert event.payload["messages"][0]["content"] == "I'm [EMAIL], card [CARD_NUMBER]"
    assert event.redactions == {
        "email": 1,
        "card_number": 1,
        "phone": 1,
        "api_key": 1,
        "ip_address": 1,
    }


def test_the_redaction_counts_are_shown_to_readers(api: Api) -> None:
    event_id = api.post(rating(comment="a@example.org and b@example.org")).json()["id"]

    assert api.get(f"/api/v1/feedback/{event_id}").json()["redactions"] == {"email": 2}


def test_a_clean_event_records_no_redactions(api: Api) -> None:
    event = Event.objects.get(
        pk=api.post(rating(comment="Version 1.2.3 fixed it on 2024-01-15.")).json()["id"]
    )

    assert event.redactions == {}
    assert event.payload["comment"] == "Version 1.2.3 fixed it on 2024-01-15."


def test_a_source_that_opts_out_keeps_the_text_as_sent(make_source: Any, client: Any) -> None:
    raw = make_source("raw", redact_pii=False)
    sent = rating(rater="jane@example.org", comment="mail jane@example.org")

    event = Event.objects.get(pk=Api(client, raw.secret).post(sent).json()["id"])

    assert event.payload["comment"] == "mail jane@example.org"
    assert event.redactions == {}
    # Opting out of redaction does not opt out of hashing rater ids.
    assert (
        event.payload["rater"] == rater_hash(raw.source.pk, "jane@example.org") == event.rater_hash
    )
    assert "jane@example.org" not in event.rater_hash


def test_numbers_that_are_cards_or_phone_numbers_are_redacted_in_metadata() -> None:
    metadata = {
        "card": 4111111111111111,
        "phone": 14155552671,
        "nested": [{"uk_phone": 442079460958}],
        "unix_time": 1700000000,
        "unix_ms": 1700000000000,
        "order": 123456789,
        "ratio": 0.5,
    }

    redacted, counts = redact_event(rating(metadata=metadata))

    assert redacted["metadata"] == {
        "card": "[CARD_NUMBER]",
        "phone": "[PHONE]",
        "nested": [{"uk_phone": "[PHONE]"}],
        "unix_time": 1700000000,
        "unix_ms": 1700000000000,
        "order": 123456789,
        "ratio": 0.5,
    }
    assert counts == {"card_number": 1, "phone": 2}
