"""Junk: text that carries no feedback — an empty edit, keyboard mash, gibberish, one character or
syllable repeated, a length far outside what a person writes.

It reads only what the rater wrote (comment, edited reply). It is deliberately timid: text
messages in abbreviations ("k thx c u l8r"), other languages and scripts, laughter and emphasis
("Nooo way") are not junk; only text that is mostly mash is."""

from __future__ import annotations

import re
from functools import lru_cache

from apps.quality.filters.base import PASS, QUARANTINE, Context, Filter, FilterResult, Reason

MAX_COMMENT_CHARS = 8000
EDIT_GROWTH = 20  # an edit this many times longer than the reply it corrects…
EDIT_GROWTH_MIN_CHARS = 4000  # …and at least this long

_LETTERS = re.compile(r"[A-Za-z]+")
_VOWELS = frozenset("aeiouy")
_CONSONANT_RUN = re.compile(r"[b-df-hj-np-tv-xz]{6,}")
_CONSONANT_UNIT = re.compile(r"([b-df-hj-np-tv-xz]{3,})\1+")
_SAME_CHAR = re.compile(r"(\S)\1{7,}")
_REPEATED_UNIT = re.compile(r"(\S{2,8}?)\1{4,}")


def _row_walks() -> frozenset[str]:
    """Four keys in a row on a QWERTY/QWERTZ/AZERTY keyboard, either way ('asdf', 'lkjh')."""
    rows = [
        "qwertyuiop",
        "asdfghjkl",
        "zxcvbnm",
        "qwertzuiop",
        "yxcvbnm",
        "azertyuiop",
        "qsdfghjklm",
        "wxcvbn",
    ]
    walks = set()
    for row in rows:
        for text in (row, row[::-1]):
            walks.update(text[i : i + 4] for i in range(len(text) - 3))
    # Row walks that English words contain: property, liberty, strewn.
    return frozenset(walks - {"erty", "wert", "trew", "ertz"})


_WALKS = _row_walks()
_SUSPECT = re.compile(
    "|".join(sorted(_WALKS)) + r"|[b-df-hj-np-tv-xz]{6,}|([b-df-hj-np-tv-xz]{3,})\1"
)


def is_mash(token: str) -> bool:
    """A run of letters that no language writes: a keyboard walk, or consonants without end."""
    word = token.lower()
    if len(word) >= 6 and _CONSONANT_UNIT.fullmatch(word):  # sdfsdf, jkljkl
        return True
    if len(word) < 5 or len(set(word)) < 4:
        return False
    if any(word[i : i + 4] in _WALKS for i in range(len(word) - 3)):
        return True
    if len(word) >= 6 and not _VOWELS.intersection(word):
        return True
    return bool(_CONSONANT_RUN.search(word))


def gibberish_share(text: str) -> tuple[float, int]:
    """The share of Latin letters that sit in mash tokens, and how many letters that is."""
    if not _SUSPECT.search(text.lower()):  # most texts: no walk, no long consonant run
        return 0.0, 0
    tokens = _LETTERS.findall(text)
    letters = sum(len(token) for token in tokens)
    mash = sum(len(token) for token in tokens if is_mash(token))
    return (mash / letters if letters else 0.0), mash


def repeated_share(text: str) -> float:
    """The share of non-space characters inside runs of one character or one short unit."""
    visible = sum(map(len, text.split()))  # str.split() splits on exactly str.isspace()
    if not visible:
        return 0.0
    covered = sum(len(m.group()) for m in _SAME_CHAR.finditer(text))
    covered = max(covered, sum(len(m.group()) for m in _REPEATED_UNIT.finditer(text)))
    return covered / visible


@lru_cache(maxsize=4096)
def _judge_text(text: str, what: str) -> Reason | None:
    # Cached: a text sent again (an edit that keeps the reply, a flood) costs one look.
    stripped = text.strip()
    if not stripped:
        return None
    share, mash = gibberish_share(stripped)
    if mash >= 6 and share >= 0.6:
        return Reason("junk.gibberish", f"The {what} is keyboard mash or gibberish.")
    if len(stripped) >= 12 and repeated_share(stripped) >= 0.8:
        return Reason("junk.repetition", f"The {what} is one character or syllable repeated.")
    return None


class JunkFilter(Filter):
    name = "junk"
    version = "1"

    def check(self, ctx: Context) -> FilterResult:
        texts = ctx.event.texts
        reasons: list[Reason] = []
        if ctx.event.type == "edit":
            if not texts.edited.strip():
                reasons.append(Reason("junk.empty_edit", "The edited reply is empty."))
            elif len(texts.edited) >= EDIT_GROWTH_MIN_CHARS and len(
                texts.edited
            ) > EDIT_GROWTH * max(1, len(texts.original)):
                reasons.append(
                    Reason(
                        "junk.length",
                        f"The edited reply is {len(texts.edited):,} characters, over {EDIT_GROWTH}× the reply it corrects.",
                    )
                )
            else:
                found = _judge_text(texts.edited, "edited reply")
                if found:
                    reasons.append(found)
        if len(texts.comment) > MAX_COMMENT_CHARS:
            reasons.append(
                Reason("junk.length", f"The comment is {len(texts.comment):,} characters long.")
            )
        else:
            found = _judge_text(texts.comment, "comment")
            if found:
                reasons.append(found)
        if not reasons:
            return FilterResult(action=PASS)
        return FilterResult(action=QUARANTINE, score=0.8, reasons=reasons)


FILTER = JunkFilter()
