"""Texts of an event as the filters see them, and fingerprints of a text for near-duplicates.

The *rater's text* is what the person who sent the feedback wrote themselves: the comment and the
edited reply. Responses were written by a model (or claim to be); prompts are the user's question.
"""

from __future__ import annotations

import hashlib
import re
import unicodedata
from dataclasses import dataclass, field
from typing import Any

from apps.feedback.services.normalize import message_text

_SPACE = re.compile(r"\s+")
_NON_WORD = re.compile(r"[^\w\[\]]+")
_DIGITS = re.compile(r"\d")
_WORD = re.compile(r"\w+")


@dataclass
class EventTexts:
    comment: str = ""
    edited: str = ""
    original: str = ""  # the reply an edit corrected
    responses: list[tuple[str, str]] = field(default_factory=list)  # (model, text)
    prompt: str = ""

    @property
    def rater_text(self) -> str:
        """The comment and the edited reply: what the rater wrote."""
        return "\n".join(part for part in (self.comment, self.edited) if part.strip())


def event_texts(payload: dict[str, Any]) -> EventTexts:
    kind = payload.get("type")
    texts = EventTexts(comment=_str(payload.get("comment")))
    model = _str(payload.get("model"))
    if kind in ("rating", "edit"):
        texts.responses = [(model, _str(payload.get("response")))]
        if kind == "edit":
            texts.edited = _str(payload.get("edited"))
            texts.original = texts.responses[0][1]
    else:
        texts.responses = [
            (_str(r.get("model")) or model, _str(r.get("content")))
            for r in payload.get("responses") or []
            if isinstance(r, dict)
        ]
    messages = payload.get("messages") or []
    users = [
        message_text(m.get("content"))
        for m in messages
        if isinstance(m, dict) and m.get("role") == "user"
    ]
    texts.prompt = users[-1] if users else ""
    return texts


def _str(value: Any) -> str:
    return value if isinstance(value, str) else ""


def normalize(text: str) -> str:
    """Case, accents, digits and punctuation folded away: 'WIN £500 now!!' ~ 'win £900 now'."""
    text = unicodedata.normalize("NFKC", text).lower()
    text = _DIGITS.sub("0", text)
    return _SPACE.sub(" ", _NON_WORD.sub(" ", text)).strip()


def word_count(text: str) -> int:
    return len(_WORD.findall(text))


def _h64(data: str) -> int:
    return int.from_bytes(hashlib.blake2b(data.encode(), digest_size=8).digest(), "big")


def exact_hash(normalized: str) -> int:
    return to_signed(_h64(normalized))


def simhashes(texts: list[str]) -> list[int]:
    """64-bit SimHash of each normalized text over its character 4-grams, unsigned: similar texts
    differ in few bits. One vectorized pass (numpy) for the whole list: each 4-gram of code points
    is mixed into 64 bits by splitmix64, and each bit is set where most of a text's grams set it."""
    import numpy as np

    if not texts:
        return []
    padded = [text if len(text) >= 4 else text.ljust(4, "\x00") for text in texts]
    lengths = np.fromiter((len(text) for text in padded), dtype=np.int64, count=len(padded))
    codes = np.frombuffer("".join(padded).encode("utf-32-le"), dtype="<u4").astype(np.uint64)
    ends = np.cumsum(lengths)
    n = len(codes) - 3
    grams = (
        codes[:n] * np.uint64(0x9E3779B97F4A7C15)
        + codes[1 : n + 1] * np.uint64(0xC2B2AE3D27D4EB4F)
        + codes[2 : n + 2] * np.uint64(0x165667B19E3779F9)
        + codes[3:]
    )
    # Grams that start in one text and end in the next are dropped.
    keep = np.ones(n, dtype=bool)
    for shift in (1, 2, 3):
        cut = ends - shift
        keep[cut[cut < n]] = False
    owner = np.repeat(np.arange(len(padded)), lengths)[:n][keep]
    z = grams[keep] + np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    bits = np.unpackbits(z.astype("<u8").view(np.uint8).reshape(-1, 8), axis=1, bitorder="little")
    counts = np.bincount(owner, minlength=len(padded))
    firsts = np.cumsum(counts) - counts
    by_bit = np.ascontiguousarray(bits.T)  # reduceat is fast along the contiguous axis
    sums = np.add.reduceat(by_bit, np.minimum(firsts, len(owner) - 1), axis=1, dtype=np.int32).T
    majority = (sums * 2 > counts[:, None]) & (counts[:, None] > 0)
    packed = np.packbits(majority, axis=1, bitorder="little")
    return [int.from_bytes(row.tobytes(), "little") for row in packed]


def simhash(normalized: str) -> int:
    return simhashes([normalized])[0]


def bands(value: int) -> tuple[int, int, int, int]:
    """Four 16-bit bands: two hashes within 3 bits of each other share at least one."""
    return tuple((value >> (16 * i)) & 0xFFFF for i in range(4))  # type: ignore[return-value]


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & 0xFFFFFFFFFFFFFFFF).bit_count()


def to_signed(value: int) -> int:
    """An unsigned 64-bit value as the signed one a BIGINT column holds."""
    return value - (1 << 64) if value >= 1 << 63 else value


def to_unsigned(value: int) -> int:
    return value + (1 << 64) if value < 0 else value
