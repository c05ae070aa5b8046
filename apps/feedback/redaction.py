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

import hashlib
import ipaddress
import re
import unicodedata
from collections import Counter
from dataclasses import dataclass
from typing import Any

_PRIVATE_KEY = (
    r"-----BEGIN[A-Z ]{0,20}PRIVATE KEY-----"
    r"(?:[\s\S]*?-----END[A-Z ]{0,20}PRIVATE KEY-----|[\s\S]*)"
)
_URL_CREDENTIALS = r"\b[A-Za-z][A-Za-z0-9+.\-]{0,20}://[^\s:/?#@]{1,256}:[^\s/?#@]{1,256}@"
_STRIPE = r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{16,}"
_AWS_SECRET_PATTERN = r"(?<![A-Za-z0-9/+])[A-Za-z0-9/+]{40}(?![A-Za-z0-9/+=])"  # noqa: S105
_SSN = r"(?<![\w\-])(?!000|666|9\d\d)\d{3}-(?!00)\d{2}-(?!0000)\d{4}(?![\w\-])"
_IBAN = r"\b[A-Z]{2}\d{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,3})?\b"
# "erin at example dot com", "erin [at] example (dot) com": an address spelled out in words.
_SPELLED_EMAIL = (
    r"(?i:\b[a-z0-9._%+\-]+[ \t]*[(\[{<]?[ \t]*\bat\b[ \t]*[)\]}>]?[ \t]*[a-z0-9\-]+"
    r"(?:[ \t]*[(\[{<]?[ \t]*\bdot\b[ \t]*[)\]}>]?[ \t]*[a-z0-9\-]+)*"
    r"[ \t]*[(\[{<]?[ \t]*\bdot\b[ \t]*[)\]}>]?[ \t]*"
    # The last word a top-level domain, so that "looked at the dot matrix" stays prose.
    r"(?:com|org|net|edu|gov|mil|int|info|biz|io|ai|co|me|app|dev|uk|us|ca|au|de|fr|es|it|nl"
    r"|be|ch|at|se|no|dk|fi|pl|pt|ie|jp|cn|in|br|mx|ru|nz|za|eu)\b)"
)

_PATTERNS = {
    # Secrets first: a token can contain digit runs that look like phones or cards.
    "private_key": _PRIVATE_KEY,
    "url_credentials": _URL_CREDENTIALS,
    "api_key": (
        r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}"
        r"|\bAKIA[0-9A-Z]{16}\b"
        r"|\bgh[pousr]_[A-Za-z0-9]{30,}"
        r"|\bgithub_pat_[A-Za-z0-9_]{30,}"
        r"|\bxox[abposr]-[A-Za-z0-9-]{10,}"
        r"|\bAIza[0-9A-Za-z_\-]{35}"
        r"|\bhf_[A-Za-z0-9]{30,}"
        r"|\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}"
        f"|{_STRIPE}"
    ),
    "aws_secret_key": f"{_AWS_SECRET_PATTERN}|{_AWS_SECRET_PATTERN}",
    "bearer_token": r"(?i:\bbearer)\s+[A-Za-z0-9._~+/\-]{16,}=*",
    "email": r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}"
    f"|{_SPELLED_EMAIL}",
    "iban": _IBAN,
    "ssn": _SSN,
    "ip_address": (
        r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w.]|\.\d)"
        r"|(?<![\w:])(?:[0-9A-Fa-f]{0,4}:){2,7}[0-9A-Fa-f]{0,4}(?![\w:])"
    ),
    # Groups split by spaces, dashes or dots (no-break spaces are spaces after NFKC).
    "card_number": r"(?<![\w\-.])\d(?:[ \-.]?\d){12,18}(?![\w\-]|\.\d)",
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
    digit), and each of LOWERED in the lower-cased text ("bearer" in any case)."""

    literals: tuple[str, ...] = ()
    digits: int = 0
    lowered: tuple[str, ...] = ()


# Each kind's top-level alternatives, in order, with their necessary conditions. Joined with
# "|" they must give _PATTERNS[kind] back exactly (checked below), so the two cannot drift.
_NEEDS: dict[str, tuple[tuple[str, _Needs], ...]] = {
    "private_key": ((_PRIVATE_KEY, _Needs(("PRIVATE KEY",))),),
    "url_credentials": ((_URL_CREDENTIALS, _Needs(("://", "@"))),),
    "api_key": (
        (r"\bsk-(?:proj-|ant-|live-|test-)?[A-Za-z0-9_\-]{16,}", _Needs(("sk-",))),
        (r"\bAKIA[0-9A-Z]{16}\b", _Needs(("AKIA",))),
        (r"\bgh[pousr]_[A-Za-z0-9]{30,}", _Needs(("gh", "_"))),
        (r"\bgithub_pat_[A-Za-z0-9_]{30,}", _Needs(("github_pat_",))),
        (r"\bxox[abposr]-[A-Za-z0-9-]{10,}", _Needs(("xox",))),
        (r"\bAIza[0-9A-Za-z_\-]{35}", _Needs(("AIza",))),
        (r"\bhf_[A-Za-z0-9]{30,}", _Needs(("hf_",))),
        (r"\beyJ[A-Za-z0-9_\-]{8,}\.eyJ[A-Za-z0-9_\-]{8,}\.[A-Za-z0-9_\-]{8,}", _Needs(("eyJ",))),
        (_STRIPE, _Needs(("k_",))),
    ),
    # A secret access key: 40 characters of mixed case with digits (_accept checks), near the
    # word "AWS" or "secret" (as in `aws_secret_access_key=`). A bare 40-character run cannot be
    # told from other random text, and looking for it in every text doubled the cost.
    "aws_secret_key": (
        (_AWS_SECRET_PATTERN, _Needs(digits=1, lowered=("aws",))),
        (_AWS_SECRET_PATTERN, _Needs(digits=1, lowered=("secret",))),
    ),
    "bearer_token": ((_PATTERNS["bearer_token"], _Needs(lowered=("bearer",))),),
    "email": (
        (r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}", _Needs(("@",))),
        (_SPELLED_EMAIL, _Needs(lowered=("dot",))),
    ),
    # The shortest IBANs (Norway: NO93 8601 1117 947) hold 13 digits; letters in a BBAN leave
    # at least 10.
    "iban": ((_IBAN, _Needs(digits=10)),),
    "ssn": ((_SSN, _Needs(digits=9)),),
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
if list(_NEEDS) != list(_PATTERNS):
    raise ImportError("redaction: _NEEDS lists the kinds in another order than _PATTERNS")
for _kind, _alternatives in _NEEDS.items():
    if "|".join(pattern for pattern, _ in _alternatives) != _PATTERNS[_kind]:
        raise ImportError(f"redaction: _NEEDS[{_kind!r}] is out of step with _PATTERNS[{_kind!r}]")
_ALTERNATIVES = [
    (kind, pattern, needs)
    for kind, alternatives in _NEEDS.items()
    for pattern, needs in alternatives
]
if any(needs == _Needs() for _, _, needs in _ALTERNATIVES):
    raise ImportError("redaction: every alternative needs a condition, or every text is scanned")

# Every (literal, times) that some condition asks about, with its bit in a text's profile; and
# every lower-cased literal, with its bit. A text that meets no alternative's condition (most
# texts: no '@', no digit, no "sk-"...) is never scanned.
_LITERAL_BITS = tuple(
    (1 << bit, literal, times)
    for bit, (literal, times) in enumerate(
        sorted(
            {
                (literal, needs.literals.count(literal))
                for _, _, needs in _ALTERNATIVES
                for literal in needs.literals
            }
        )
    )
)
_LOWERED_BITS = tuple(
    (1 << bit, literal)
    for bit, literal in enumerate(
        sorted({literal for _, _, needs in _ALTERNATIVES for literal in needs.lowered})
    )
)
_MOST_DIGITS_NEEDED = max(needs.digits for _, _, needs in _ALTERNATIVES)
_DIGIT = re.compile(r"\d")
_COMPILED = tuple((kind, re.compile(pattern)) for kind, pattern, _ in _ALTERNATIVES)
# A text's profile (literal bits, digits up to the most any condition asks, lower-cased literal
# bits) → the indices of the alternatives that may match in it. Cheap to recompute, so simply
# bounded.
_usable_for: dict[tuple[int, int, int], tuple[int, ...]] = {}


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
    """Indices into _ALTERNATIVES of those that can match somewhere in TEXT, in order."""
    mask = 0
    for bit, literal, times in _LITERAL_BITS:
        if (literal in text) if times == 1 else text.count(literal) >= times:
            mask |= bit
    digits = _digits(text)
    lower = text.lower()
    lowered = 0
    for bit, literal in _LOWERED_BITS:
        if literal in lower:
            lowered |= bit
    profile = (mask, digits, lowered)
    found = _usable_for.get(profile)
    if found is None:
        present = {literal: text.count(literal) for _, literal, _ in _LITERAL_BITS}
        found = tuple(
            index
            for index, (_, _, needs) in enumerate(_ALTERNATIVES)
            if digits >= needs.digits
            and all(literal in lower for literal in needs.lowered)
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
    if kind == "aws_secret_key":
        # 40 characters of mixed case and digits; a hex digest (git, SHA-1) is one case only.
        return (
            any(c.isupper() for c in text)
            and any(c.islower() for c in text)
            and any(c.isdigit() for c in text)
        )
    if kind == "iban":
        from stdnum import iban  # the ISO 13616 checksum and each country's length and format

        return iban.is_valid(text)
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


# Characters that render as nothing: a secret split by them ("sk-\u200bproj-…") still reads
# whole to anyone who copies it.
_INVISIBLE = re.compile("[\u00ad\u180e\u200b-\u200d\u2060-\u2064\ufeff]")


def redact_text(text: str, counts: Counter[str]) -> str:
    """TEXT with its PII replaced; COUNTS gains one per redaction, by kind. Non-ASCII text is
    searched in its NFKC form without invisible characters, so fullwidth (`carol＠example.com`),
    no-break-space-separated or zero-width-split values are found; a text with PII found that
    way is kept in that form (redacted), any other text exactly as sent."""
    if len(text) > _MEMO_CHARS:
        return _redact_any(text, counts)
    # Short strings (keys, roles, model names, tags) repeat endlessly: remember their answer.
    remembered = _memo.get(text)
    if remembered is None:
        tally: Counter[str] = Counter()
        remembered = (_redact_any(text, tally), tuple(tally.items()))
        if len(_memo) >= _MEMO_SIZE:
            _memo.clear()
        _memo[text] = remembered
    redacted, found = remembered
    for kind, count in found:
        counts[kind] += count
    return redacted


def _redact_any(text: str, counts: Counter[str]) -> str:
    if text.isascii():
        return _redact(text, counts)
    visible = _INVISIBLE.sub("", text) if _INVISIBLE.search(text) else text
    if visible is text and unicodedata.is_normalized("NFKC", text):
        return _redact(text, counts)
    plain = unicodedata.normalize("NFKC", visible)
    tally: Counter[str] = Counter()
    redacted = _redact(plain, tally)
    if not tally:
        return text
    counts.update(tally)
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


# What must never leave in a published dataset, redaction or not (a source that opted out, a
# curator's gold reply, an event stored before a kind was known): secrets and payment cards.
SECRET_KINDS = frozenset(
    {
        "private_key",
        "url_credentials",
        "api_key",
        "aws_secret_key",
        "bearer_token",
        "card_number",
        "iban",
        "ssn",
    }
)


def find_secrets(text: str) -> dict[str, int]:
    """The SECRET_KINDS found in TEXT, by kind, as redaction would count them."""
    counts: Counter[str] = Counter()
    _redact_any(text, counts)
    return {kind: n for kind, n in counts.items() if kind in SECRET_KINDS}


# Keys whose values are references or enumerations, not text a person wrote: the checkpoint and
# the gateway's answer id must resolve as sent, and the rater is replaced by its keyed hash.
# Everything else is redacted: texts, tags, metadata (keys, values, numbers), and the model,
# licence and client id too (a front-end may put an e-mail address anywhere).
_STRUCTURAL = frozenset(
    {"type", "rater", "checkpoint", "role", "timestamp", "choice", "ranking", "interaction_id"}
)


def redact_event(payload: dict[str, Any]) -> tuple[dict[str, Any], dict[str, int]]:
    """A copy of the raw event with PII redacted in every value but references (see
    _STRUCTURAL): messages, responses, comments, edits, tags, model, licence, the client id,
    metadata keys and values, and numbers that are card (Luhn) or phone numbers. Counts by kind.

    A client id with PII (and a `supersedes` reference to one) becomes its redacted text plus a
    keyed digest of the original, so that a retry of the same event is still recognised and two
    ids never become one."""
    counts: Counter[str] = Counter()
    redacted = {
        key: value if key in _STRUCTURAL else _walk(value, counts) for key, value in payload.items()
    }
    # `supersedes` names another event's client id: redacted the same way, so it still names it.
    for key in ("id", "supersedes"):
        client_id = payload.get(key)
        if isinstance(client_id, str) and redacted.get(key) != client_id:
            redacted[key] = f"{redacted[key]}~{_digest(client_id)}"
    return redacted, dict(counts)


def _digest(value: str) -> str:
    from django.conf import settings

    key = settings.RATER_HASH_KEY.encode()
    return hashlib.blake2b(value.encode(), key=key[:64], digest_size=8).hexdigest()


def _redact_number(value: int, counts: Counter[str]) -> int | str:
    """A JSON number that is a payment card (13-19 digits, Luhn) or a phone number in
    international form (10-15 digits that libphonenumber calls valid) → its placeholder."""
    if value < 10**9 or value >= 10**19:
        return value
    digits = str(value)
    if len(digits) >= 13 and _luhn_ok(digits) and len(set(digits)) > 1:
        counts["card_number"] += 1
        return PLACEHOLDERS["card_number"]
    if len(digits) <= 15:
        import phonenumbers

        try:
            number = phonenumbers.parse(f"+{digits}")
        except phonenumbers.NumberParseException:
            return value
        if phonenumbers.is_valid_number(number):
            counts["phone"] += 1
            return PLACEHOLDERS["phone"]
    return value


def _walk(value: Any, counts: Counter[str]) -> Any:
    # Strings are most of what is walked: they go straight to redact_text, not through a call.
    kind = type(value)
    if kind is str:
        return redact_text(value, counts)
    if kind is int:
        return _redact_number(value, counts) if value >= 10**9 else value
    if kind is list:
        return [
            redact_text(item, counts) if type(item) is str else _walk(item, counts)
            for item in value
        ]
    if kind is dict:
        out: dict[str, Any] = {}
        for key, item in value.items():
            # Keys are free text too ({"jane@example.org": …}); two that redact alike both stay.
            name = redact_text(key, counts) if isinstance(key, str) else key
            while name in out:
                name = f"{name}~"
            out[name] = redact_text(item, counts) if type(item) is str else _walk(item, counts)
        return out
    return value
