"""PII redaction, applied to every free-text field before anything is written.

Finds e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IP addresses, and
API keys and tokens, and replaces each with a placeholder such as `[EMAIL]`. What was redacted
is recorded as kind → count, never the value. One compiled alternation scans each text once."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from typing import Any

_PATTERNS = {
    # Secrets first: a token can contain digit runs that look like phones or cards.
    "api_key": (
        r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
        r"|\bAIza[0-9A-Za-z_\-]{35}"
        r"|\bhf_[A-Za-z0-9]{30,}"
        r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
    ),
    "bearer_token": r"(?i:\bbearer)\s+[A-Za-z0-9._~+/\-]{16,}=*",
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}",
    "ip_address": (
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)"
        r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
    ),
    "card_number": r"(?<![\w\-])\d(?:[ \-]?\d){12,18}(?![\w\-])",
    "phone": (
        r"(?<![\w+])\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}(?!\w)"
        r"|(?<![\w+\-.])\(\d{2,4}\)[\s.\-]?\d{3,4}[\s.\-]\d{3,4}(?!\w)"
        r"|(?<![\w+\-.:/])\d{3}[\s.\-]\d{3}[\s.\-]\d{4}(?![\w\-])"
        r"|(?<![\w+\-.:/])0\d{1,4}[\s.\-]\d{2,4}[\s.\-]\d{2,4}(?:[\s.\-]\d{2,4})?(?![\w\-])"
    ),
}
_SCANNER = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _PATTERNS.items()))
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in _PATTERNS}
# A quick test that lets most texts skip the scanner's slower alternation.
_MAYBE = re.compile(r"[@\d]|sk-|gh|xox|AIza|hf_|eyJ|(?i:bearer)|::")


def _luhn_ok(digits: str) -> bool:
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def _accept(kind: str, text: str) -> bool:
    if kind == "card_number":
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1
    if kind == "ip_address" and ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        # Two colons also make C++ and Rust paths (`a::b`): ask for a fuller address.
        return text.count(":") >= 3 or text == "::1"
    if kind == "phone":
        digits = sum(char.isdigit() for char in text)
        return 7 <= digits <= 15
    return True


def redact_text(text: str, counts: Counter[str]) -> str:
    """TEXT with its PII replaced; COUNTS gains one per redaction, by kind."""
    if not _MAYBE.search(text):
        return text

    def replace(match: re.Match[str]) -> str:
        kind = match.lastgroup or ""
        value = match.group()
        if not _accept(kind, value):
            return value
        counts[kind] += 1
        return PLACEHOLDERS[kind]

    return _SCANNER.sub(replace, text)


# Keys whose values are identifiers, not free text written by a person.
_STRUCTURAL = frozenset({"type", "id", "rater", "model", "checkpoint", "role", "licence", "timestamp", "choice", "ranking"})


def redact_event(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of the raw event with PII redacted in every free-text value (messages, responses,
    comments, edits, tags, metadata), and the counts by kind."""
    counts: Counter[str] = Counter()
    redacted = {key: value if key in _STRUCTURAL else _walk(value, counts) for key, value in payload.items()}
    return redacted, dict(counts)


def _walk(value: Any, counts: Counter[str]) -> Any:
    if isinstance(value, str):
        return redact_text(value, counts)
    if isinstance(value, list):
        return [_walk(item, counts) for item in value]
    if isinstance(value, dict):
        return {key: _walk(item, counts) for key, item in value.items()}
    return value
