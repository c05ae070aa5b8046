"""Text keys for building datasets: normalization, the hashes that dedup, split and
decontaminate by, and near-duplicate detection (MinHash over word shingles with LSH banding).

Pure Python (numpy for MinHash), no Django: the build calls these once or more per row, so they
stay small and fast. Every hash is keyed by nothing and seeded explicitly, so the same text gives
the same key in every process (Python's own `hash()` is salted per process)."""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterable
from typing import Any

import numpy as np

from apps.feedback.services.normalize import message_text

_WORD = re.compile(r"\w+")

NGRAM = 13  # words; the usual contamination n-gram (GPT-3's decontamination)


def normalize(text: str) -> str:
    """Case and white space do not make two texts different. (`str.split()` splits on the same
    white space as the regex `\\s+`, several times faster.)"""
    return " ".join(text.split()).lower()


def prompt_key(messages: list[dict[str, str]]) -> str:
    """`apps.feedback.services.normalize.prompt_hash` of clean messages, without its regex:
    the same value (the split and the thumbs pairing must agree with ingest's hash)."""
    digest = hashlib.blake2b(digest_size=16)
    for message in messages:
        digest.update(f"{message['role']}\x00{normalize(message['content'])}\x01".encode())
    return digest.hexdigest()


def key64(text: str) -> int:
    """A stable 64-bit key of TEXT (exact-duplicate and prompt keys)."""
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def text_hash(text: str) -> str:
    """The hex key of a normalized text, as eval sets store their prompts."""
    return hashlib.blake2b(normalize(text).encode(), digest_size=8).hexdigest()


def split_unit(prompt_hash: str, seed: int) -> float:
    """Where a prompt falls in [0, 1): a row goes to test when this is below the test fraction.
    Depends only on the prompt and the seed, so a prompt is on one side for every row."""
    digest = hashlib.blake2b(f"{seed}\x00{prompt_hash}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") / 2**64


def clean_messages(messages: Iterable[dict[str, Any]]) -> list[dict[str, str]]:
    """OpenAI messages as TRL's conversational formats take them: role and text content only
    (content parts joined), so every row has the same columns in JSONL, Parquet and Arrow."""
    out = []
    for message in messages:
        if not isinstance(message, dict):
            continue
        role = str(message.get("role") or "user")
        out.append(
            {
                "role": "system" if role == "developer" else role,
                "content": message_text(message.get("content")),
            }
        )
    return out


def user_texts(messages: Iterable[dict[str, str]]) -> list[str]:
    return [m["content"] for m in messages if m["role"] == "user" and m["content"]]


def ngrams(text: str, n: int = NGRAM) -> set[int]:
    """Hashed word n-grams of TEXT (empty when it has fewer than N words)."""
    words = _WORD.findall(text.lower())
    return {zlib.crc32(" ".join(words[i : i + n]).encode()) for i in range(len(words) - n + 1)}


# --- near duplicates ----------------------------------------------------------------------------

_PRIME = (1 << 61) - 1


class NearDuplicates:
    """Remembers texts and answers whether a new one is a near duplicate of one seen before
    (estimated Jaccard similarity of word 3-gram shingles at or over THRESHOLD).

    MinHash with PERMUTATIONS hash functions, split into bands for locality-sensitive hashing:
    only texts sharing a band are compared, so the cost per text stays flat as the set grows.
    Deterministic: the permutations come from a fixed seed."""

    def __init__(self, threshold: float = 0.9, permutations: int = 64, bands: int = 16) -> None:
        if permutations % bands:
            raise ValueError("permutations must be a multiple of bands")
        self.threshold = threshold
        self.rows = permutations // bands
        self.bands = bands
        rng = np.random.default_rng(20240601)
        self._a = rng.integers(1, _PRIME, size=permutations, dtype=np.uint64)
        self._b = rng.integers(0, _PRIME, size=permutations, dtype=np.uint64)
        self._buckets: list[dict[bytes, int]] = [{} for _ in range(bands)]
        self._signatures: list[np.ndarray] = []

    def signature(self, text: str) -> np.ndarray:
        words = _WORD.findall(text.lower())
        if len(words) < 3:
            shingles = {zlib.crc32(" ".join(words).encode())}
        else:
            shingles = {
                zlib.crc32(" ".join(words[i : i + 3]).encode()) for i in range(len(words) - 2)
            }
        x = np.fromiter(shingles, dtype=np.uint64, count=len(shingles))
        # (a * x + b) mod p, in uint64 with wrap-around: x < 2^32 and a < 2^61 can overflow, which
        # only permutes values further; the result is still a fixed, seeded hash per function.
        hashed = (np.outer(x, self._a) + self._b) % np.uint64(_PRIME)
        return hashed.min(axis=0)

    def seen(self, text: str) -> bool:
        """True when TEXT nearly duplicates a text added before; otherwise add it."""
        sig = self.signature(text)
        keys = [sig[i * self.rows : (i + 1) * self.rows].tobytes() for i in range(self.bands)]
        candidates = {
            bucket[k] for bucket, k in zip(self._buckets, keys, strict=True) if k in bucket
        }
        for index in candidates:
            if float(np.mean(self._signatures[index] == sig)) >= self.threshold:
                return True
        index = len(self._signatures)
        self._signatures.append(sig)
        for bucket, k in zip(self._buckets, keys, strict=True):
            bucket.setdefault(k, index)
        return False
