"""Strict parsing of ids that arrive as text (URL paths, query strings, JSON strings).

`str.isdigit()` is true for '³' and '¹' (which `int()` then refuses: a 500) and for any number of
digits (which PostgreSQL's bigint then refuses: another 500). An id is ASCII digits only, and
fits a bigint."""

from __future__ import annotations

BIGINT_MAX = 2**63 - 1


def parse_id(text: str | int | None) -> int | None:
    """TEXT as a row id, or None when it is not one: ASCII digits 0-9 only (no sign, no space,
    no superscripts or other scripts' digits), at most BIGINT_MAX."""
    if isinstance(text, int) and not isinstance(text, bool):
        return text if 0 <= text <= BIGINT_MAX else None
    if not isinstance(text, str) or not text.isascii() or not text.isdigit() or len(text) > 19:
        return None
    value = int(text)
    return value if value <= BIGINT_MAX else None
