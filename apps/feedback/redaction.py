"""PII redaction, applied to every free-text field before anything is written.

Finds e-mail addresses, phone numbers, payment card numbers (Luhn-checked), IP addresses, and
API keys and tokens, and replaces each with a placeholder such as `[EMAIL]`. What was redacted
is recorded as kind → count, never the value. One compiled alternation scans each text once.

Speed (this runs on every string of every ingested event): most texts cannot hold most kinds —
no `@`, no `sk-`, too few digits for a card. Each alternative of the scanner has such a cheap
necessary condition (`_NEEDS`), and a text is searched only with the alternatives whose condition
it meets — usually none. Those are merged exactly as the one alternation would match them: the
leftmost match wins, the earlier alternative on a tie, and the search goes on after it. An
alternative that cannot match anywhere in a text changes nothing when left out, so the result
is `_SCANNER.sub`'s, for a fraction of the time."""

from __future__ import annotations

import ipaddress
import re
from collections import Counter
from dataclasses import dataclass
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
        r"|(?<![\w+\-.:/])0\d{1,4}[\s.\-]\d{2,4}[\s.\-]\d{2,4}(?:[\s.\-]\d{2,4}){0,2}(?![\w\-])"
    ),
}
_SCANNER = re.compile("|".join(f"(?P<{kind}>{pattern})" for kind, pattern in _PATTERNS.items()))
PLACEHOLDERS = {kind: f"[{kind.upper()}]" for kind in _PATTERNS}


@dataclass(frozen=True)
class _Needs:
    """What a text must contain for one alternative to match anywhere in it: each of LITERALS (a
    literal listed twice must occur twice), at least DIGITS decimal digits (`\\d`: any Unicode
    digit), and, with BEARER, the word "bearer" in any case."""

    literals: tuple[str, ...] = ()
    digits: int = 0
    bearer: bool = False


# Each kind's top-level alternatives, in order, with their necessary conditions. Joined with
# "|" they must give _PATTERNS[kind] back exactly (checked below), so the two cannot drift.
_NEEDS: dict[str, tuple[tuple[str, _Needs], ...]] = {
    "api_key": (
        (r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}", _Needs(("sk-",))),
        (r"\bAKIA[0-9A-Z]{16}\b", _Needs(("AKIA",))),
        (r"\bgh[pousr]_[A-Za-z0-9]{30,}", _Needs(("gh", "_"))),
        (r"\bgithub_pat_[A-Za-z0-9_]{30,}", _Needs(("github_pat_",))),
        (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _Needs(("xox",))),
        (r"\bAIza[0-9A-Za-z_\-]{35}", _Needs(("AIza",))),
        (r"\bhf_[A-Za-z0-9]{30,}", _Needs(("hf_",))),
        (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", _Needs(("eyJ",))),
    ),
    "bearer_token": ((_PATTERNS["bearer_token"], _Needs(bearer=True)),),
    "email": ((_PATTERNS["email"], _Needs(("@",))),),
    "ip_address": (
        (
            r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)",
            _Needs((".", ".", "."), digits=4),
        ),
        (r"(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])", _Needs((":", ":"))),
    ),
    "card_number": ((_PATTERNS["card_number"], _Needs(digits=13)),),
    "phone": (
        (
            r"(?<![\w+])\+\d{1,3}[\s.\-]?(?:\(\d{1,4}\)[\s.\-]?)?\d{1,4}(?:[\s.\-]?\d{2,4}){1,4}(?!\w)",
            _Needs(("+",), digits=4),
        ),
        (
            r"(?<![\w+\-.])\(\d{2,4}\)[\s.\-]?\d{3,4}[\s.\-]\d{3,4}(?!\w)",
            _Needs(("(", ")"), digits=8),
        ),
        (r"(?<![\w+\-.:/])\d{3}[\s.\-]\d{3}[\s.\-]\d{4}(?![\w\-])", _Needs(digits=10)),
        (
            r"(?<![\w+\-.:/])0\d{1,4}[\s.\-]\d{2,4}[\s.\-]\d{2,4}(?:[\s.\-]\d{2,4}){0,2}(?![\w\-])",
            _Needs(("0",), digits=6),
        ),
    ),
}
for _kind, _alternatives in _NEEDS.items():
    if "|".join(pattern for pattern, _ in _alternatives) != _PATTERNS[_kind]:
        raise ImportError(f"redaction: _NEEDS[{_kind!r}] is out of step with _PATTERNS[{_kind!r}]")
_ALTERNATIVES = [
    (kind, pattern, needs)
    for kind, alternatives in _NEEDS.items()
    for pattern, needs in alternatives
]

# A quick test that lets most texts skip the scanner altogether: a text with none of these (no
# '@', no digit, none of the strings, no "bearer" in any case) is never scanned. Kept exactly as
# the regex `[@\d]|sk-|gh|xox|AIza|hf_|eyJ|(?i:bearer)|::` that it replaces.
_MAYBE_LITERALS = ("@", "sk-", "gh", "xox", "AIza", "hf_", "eyJ", "::")
# Every (literal, times) that some condition asks about, with its bit in a text's profile.
_LITERAL_BITS = tuple(
    (1 << bit, literal, times)
    for bit, (literal, times) in enumerate(
        sorted(
            {
                (literal, needs.literals.count(literal))
                for _, _, needs in _ALTERNATIVES
                for literal in needs.literals
            }
            | {(literal, 1) for literal in _MAYBE_LITERALS}
        )
    )
)
_MOST_DIGITS_NEEDED = max(needs.digits for _, _, needs in _ALTERNATIVES)
_DIGIT = re.compile(r"\d")
_BEARER = re.compile(r"(?i:bearer)")
_COMPILED = tuple((kind, re.compile(pattern)) for kind, pattern, _ in _ALTERNATIVES)
# A text's profile (literal bits, digits up to the most any condition asks, "bearer") → the
# indices of the alternatives that may match in it. Cheap to recompute, so simply bounded.
_usable_for: dict[tuple[int, int, bool], tuple[int, ...]] = {}


def _digits(text: str) -> int:
    """How many decimal digits TEXT holds, counting no further than any condition asks."""
    if text.isascii():
        return min(_MOST_DIGITS_NEEDED, sum(map(text.count, "0123456789")))
    count = 0
    for _ in _DIGIT.finditer(text):
        count += 1
        if count >= _MOST_DIGITS_NEEDED:
            break
    return count


def _usable(text: str) -> tuple[int, ...]:
    """Indices into _ALTERNATIVES of those that can match somewhere in TEXT, in order (none
    where the _MAYBE test says the text needs no scan)."""
    mask = 0
    for bit, literal, times in _LITERAL_BITS:
        if (literal in text) if times == 1 else text.count(literal) >= times:
            mask |= bit
    digits = _digits(text)
    bearer = "bearer" in text.lower() if text.isascii() else _BEARER.search(text) is not None
    profile = (mask, digits, bearer)
    found = _usable_for.get(profile)
    if found is None:
        present = {literal: text.count(literal) for _, literal, _ in _LITERAL_BITS}
        maybe = digits > 0 or bearer or any(present[literal] for literal in _MAYBE_LITERALS)
        found = tuple(
            index
            for index, (_, _, needs) in enumerate(_ALTERNATIVES)
            if maybe
            and digits >= needs.digits
            and (bearer or not needs.bearer)
            and all(present[literal] >= needs.literals.count(literal) for literal in needs.literals)
        )
        if len(_usable_for) >= 8192:
            _usable_for.clear()
        _usable_for[profile] = found
    return found


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


# 01.02.2024, 05-06-2023: a date, though shaped like a national phone number.
_DATE = re.compile(r"(\d{1,2})([.\-/ ])(\d{1,2})\2\d{4}")


def _is_date(text: str) -> bool:
    match = _DATE.fullmatch(text)
    if match is None:
        return False
    first, second = int(match.group(1)), int(match.group(3))
    return (1 <= first <= 31 and 1 <= second <= 12) or (1 <= first <= 12 and 1 <= second <= 31)


def _accept(kind: str, text: str) -> bool:
    if kind == "card_number":
        digits = re.sub(r"\D", "", text)
        return 13 <= len(digits) <= 19 and _luhn_ok(digits) and len(set(digits)) > 1
    if kind == "ip_address" and ":" in text:
        try:
            ipaddress.IPv6Address(text)
        except ValueError:
            return False
        # Two colons also make C++ and Rust paths (`a::b`, `dead::beef`): ask for a fuller
        # address, or one that looks like a real one (`fe80::1`: digits and a long group).
        if text.count(":") >= 3 or text == "::1":
            return True
        return (
            any(char.isdigit() for char in text)
            and max(len(group) for group in text.split(":")) >= 3
        )
    if kind == "phone":
        digits = sum(char.isdigit() for char in text)
        return 7 <= digits <= 15 and not _is_date(text)
    return True


def redact_text(text: str, counts: Counter[str]) -> str:
    """TEXT with its PII replaced; COUNTS gains one per redaction, by kind."""
    if len(text) > _MEMO_CHARS:
        return _redact(text, counts)
    # Short strings (keys, roles, model names, tags) repeat endlessly: remember their answer.
    remembered = _memo.get(text)
    if remembered is None:
        tally: Counter[str] = Counter()
        remembered = (_redact(text, tally), tuple(tally.items()))
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[text] = remembered
    redacted, found = remembered
    for kind, count in found:
        counts[kind] += count
    return redacted


_MEMO_CHARS = 64
_MEMO_SIZE = 4096
_memo: dict[str, tuple[str, tuple[tuple[str, int], ...]]] = {}


def _redact(text: str, counts: Counter[str]) -> str:
    usable = _usable(text)
    if not usable:
        return text
    if len(usable) == 1:
        kind, pattern = _COMPILED[usable[0]]
        return pattern.sub(lambda match: _replacement(kind, match.group(), counts), text)
    # What _SCANNER.sub does, with only the usable alternatives: take the leftmost of their next
    # matches (the earlier alternative on a tie), replace it, go on from its end. No alternative
    # matches the empty string, and search() from a position still sees the text before it, for
    # look-behinds and \b, as the one scan would.
    pieces: list[str] = []
    done = 0
    upcoming = [(index, _COMPILED[index][1].search(text)) for index in usable]
    while True:
        best: re.Match[str] | None = None
        best_index = -1
        for index, match in upcoming:
            if match is not None and (best is None or match.start() < best.start()):
                best, best_index = match, index
        if best is None:
            break
        pieces.append(text[done : best.start()])
        pieces.append(_replacement(_COMPILED[best_index][0], best.group(), counts))
        done = best.end()
        upcoming = [
            (
                index,
                match
                if match is None or match.start() >= done
                else _COMPILED[index][1].search(text, done),
            )
            for index, match in upcoming
        ]
    pieces.append(text[done:])
    return "".join(pieces)


def _replacement(kind: str, value: str, counts: Counter[str]) -> str:
    if not _accept(kind, value):
        return value
    counts[kind] += 1
    return PLACEHOLDERS[kind]


# Keys whose values are identifiers, not free text written by a person.
_STRUCTURAL = frozenset(
    {
        "type",
        "id",
        "rater",
        "model",
        "checkpoint",
        "role",
        "licence",
        "timestamp",
        "choice",
        "ranking",
        "interaction_id",
    }
)


def redact_event(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of the raw event with PII redacted in every free-text value (messages, responses,
    comments, edits, tags, metadata: values and keys), and the counts by kind."""
    counts: Counter[str] = Counter()
    redacted = {
        key: value if key in _STRUCTURAL else _walk(value, counts) for key, value in payload.items()
    }
    return redacted, dict(counts)


def _walk(value: Any, counts: Counter[str]) -> Any:
    # Strings are most of what is walked: they go straight to redact_text, not through a call.
    if isinstance(value, str):
        return redact_text(value, counts)
    if isinstance(value, list):
        return [
            redact_text(item, counts) if type(item) is str else _walk(item, counts)
            for item in value
        ]
    if isinstance(value, dict):
        out: dict[str, Any] = {}
        for key, item in value.items():
            # Keys are free text too ({"jane@example.org": …}); two that redact alike both stay.
            name = redact_text(key, counts) if isinstance(key, str) else key
            while name in out:
                name = f"{name}~"
            out[name] = redact_text(item, counts) if type(item) is str else _walk(item, counts)
        return out
    return value
