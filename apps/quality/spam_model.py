"""The learned spam classifier: TF-IDF over word 1-2-grams and character 2-5-grams, with a few
shape tokens (a link, a number of N digits, a price, a redacted phone number, the advertising
filter's cue kinds), into a class-balanced logistic regression (scikit-learn).

It is trained from the seed corpus that ships in `data/` plus every curator label. The seed-only
model is rebuilt in-process when no trained version is active; trained versions are stored in
`SpamClassifier` rows. scikit-learn and numpy are imported inside the functions that need them,
so the web process never pays for them."""

from __future__ import annotations

import hashlib
import io
import json
import re
import threading
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

SEED_PATH = Path(__file__).resolve().parent / "data" / "seed_corpus.jsonl"
# Without labels from the deployment's own traffic the model is trusted only when it is sure:
# a false positive silences a real user.
SEED_THRESHOLD = 0.9
DEFAULT_THRESHOLD = 0.5
# From this many curator labels (at least MIN_EACH_CLASS of each) the model has seen the
# deployment's own traffic and its balanced decision boundary is trusted.
MIN_LABELS_TO_TUNE = 100
MIN_SPAM_TO_TUNE = 10

_URL = re.compile(r"(?i)\bhttps?://\S+|\bwww\.\S+")
_NUMBER = re.compile(r"\d+")
_MONEY = re.compile(r"[£$€¥₹]")
_PLACEHOLDER = re.compile(r"\[(PHONE|EMAIL|CARD_NUMBER|IP_ADDRESS|API_KEY|BEARER_TOKEN)\]")


def featurize(text: str) -> str:
    """TEXT with shapes made into tokens: numbers by their length, links, prices, placeholders."""
    from apps.quality.filters.advertising import cues

    kinds = " ".join(f"zzcue{kind}" for kind in cues(text))
    text = _PLACEHOLDER.sub(lambda m: f" zz{m.group(1).lower()} ", text)
    text = _URL.sub(" zzurl ", text)
    text = _MONEY.sub(" zzmoney ", text)
    text = _NUMBER.sub(lambda m: f" zznum{min(len(m.group()), 9)} ", text)
    return f"{text} {kinds}"


@dataclass
class SpamModel:
    version: str
    threshold: float
    estimator: Any
    metrics: dict[str, Any] = field(default_factory=dict)

    def predict(self, texts: Sequence[str]) -> list[float]:
        """Spam probability of each text."""
        if not texts:
            return []
        return self.estimator.predict_proba([featurize(text) for text in texts])[:, 1].tolist()

    def dumps(self) -> bytes:
        import joblib

        buffer = io.BytesIO()
        joblib.dump(self.estimator, buffer, compress=3)
        return buffer.getvalue()

    @classmethod
    def loads(
        cls, data: bytes, *, version: str, threshold: float, metrics: dict[str, Any] | None = None
    ) -> SpamModel:
        import joblib

        return cls(
            version=version,
            threshold=threshold,
            estimator=joblib.load(io.BytesIO(data)),
            metrics=metrics or {},
        )


class CharGrams:
    """Hashed counts of character n-grams of lower-cased text, as a sparse matrix: what
    scikit-learn's char n-gram vectorizer counts, but in one vectorized numpy pass per batch
    instead of a Python loop per n-gram (it is most of the classifier's time otherwise)."""

    def __init__(self, ngram_range: tuple[int, int] = (1, 4), n_features: int = 1 << 18) -> None:
        self.ngram_range = ngram_range
        self.n_features = n_features

    def get_params(self, deep: bool = True) -> dict[str, Any]:
        return {"ngram_range": self.ngram_range, "n_features": self.n_features}

    def set_params(self, **params: Any) -> CharGrams:
        for key, value in params.items():
            setattr(self, key, value)
        return self

    def fit(self, texts: Sequence[str], y: Any = None) -> CharGrams:
        return self

    def fit_transform(self, texts: Sequence[str], y: Any = None) -> Any:
        return self.transform(texts)

    def transform(self, texts: Sequence[str]) -> Any:
        import numpy as np
        from scipy.sparse import csr_matrix

        # Each text framed by a space, texts apart by a NUL that no gram may cross.
        framed = [f" {text.lower()} " for text in texts]
        lengths = np.fromiter((len(t) + 1 for t in framed), dtype=np.int64, count=len(framed))
        codes = np.frombuffer(
            "\x00".join(framed).encode("utf-32-le") + b"\x00\x00\x00\x00", dtype="<u4"
        ).astype(np.uint64)
        owner_of = np.repeat(np.arange(len(framed)), lengths)
        rows, cols = [], []
        low, high = self.ngram_range
        mix = np.uint64(0)
        for n in range(1, high + 1):
            count = len(codes) - n + 1
            mix = (mix[:count] if n > 1 else np.zeros(count, dtype=np.uint64)) * np.uint64(
                0x100000001B3
            ) + codes[n - 1 : n - 1 + count]
            if n < low:
                continue
            # A gram that holds the NUL between two texts belongs to neither.
            crosses = np.zeros(count, dtype=bool)
            for k in range(n):
                crosses |= codes[k : k + count] == 0
            z = mix[~crosses] + np.uint64(n * 0x9E3779B97F4A7C15 & 0xFFFFFFFFFFFFFFFF)
            z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
            z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
            z = z ^ (z >> np.uint64(31))
            rows.append(owner_of[:count][~crosses])
            cols.append((z % np.uint64(self.n_features)).astype(np.int64))
        # One sort of (row, column) keys gives the counts in CSR order, duplicates summed.
        keys, counts = np.unique(
            np.concatenate(rows) * self.n_features + np.concatenate(cols), return_counts=True
        )
        indptr = np.zeros(len(framed) + 1, dtype=np.int64)
        np.cumsum(np.bincount(keys // self.n_features, minlength=len(framed)), out=indptr[1:])
        return csr_matrix(
            (counts.astype(np.float64), keys % self.n_features, indptr),
            shape=(len(framed), self.n_features),
        )


def _estimator(seed: int) -> Any:
    from sklearn.feature_extraction.text import TfidfTransformer, TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import FeatureUnion, make_pipeline

    features = FeatureUnion(
        [
            (
                "words",
                TfidfVectorizer(
                    ngram_range=(1, 2),
                    sublinear_tf=True,
                    token_pattern=r"(?u)\b\w+\b",  # noqa: S106 (a regex, not a password)
                    max_features=200_000,
                ),
            ),
            (
                "chars",
                make_pipeline(CharGrams((1, 4), 1 << 18), TfidfTransformer(sublinear_tf=True)),
            ),
        ]
    )
    model = LogisticRegression(
        C=10.0, class_weight="balanced", max_iter=2000, solver="liblinear", random_state=seed
    )
    return make_pipeline(features, model)


def train(
    texts: Sequence[str],
    labels: Sequence[bool],
    *,
    version: str,
    in_domain: Sequence[bool] | None = None,
    seed: int = 0,
) -> SpamModel:
    """Fit on TEXTS (LABELS true = spam). IN_DOMAIN marks the labels that came from this
    deployment's curators: with enough of them texts are quarantined from DEFAULT_THRESHOLD,
    without from the cautious SEED_THRESHOLD."""
    import numpy as np

    y = np.asarray(labels, dtype=bool)
    if y.all() or not y.any():
        raise ValueError("training needs both spam and ham examples")
    features = [featurize(text) for text in texts]
    estimator = _estimator(seed).fit(features, y)
    metrics = {"labels": len(y), "spam": int(y.sum())}
    mask = np.asarray(in_domain if in_domain is not None else [False] * len(y), dtype=bool)
    ours = y[mask]
    enough = mask.sum() >= MIN_LABELS_TO_TUNE and min(ours.sum(), (~ours).sum()) >= MIN_SPAM_TO_TUNE
    threshold = DEFAULT_THRESHOLD if enough else SEED_THRESHOLD
    metrics["in_domain_labels"] = int(mask.sum())
    return SpamModel(version=version, threshold=threshold, estimator=estimator, metrics=metrics)


def seed_corpus() -> list[tuple[str, bool]]:
    """(text, is_spam) pairs of the shipped seed corpus."""
    rows = []
    for line in SEED_PATH.read_text(encoding="utf-8").splitlines():
        if line.strip():
            record = json.loads(line)
            rows.append((record["text"], record["label"] == "spam"))
    return rows


@lru_cache(maxsize=1)
def seed_digest() -> str:
    return hashlib.blake2b(SEED_PATH.read_bytes(), digest_size=4).hexdigest()


_seed_lock = threading.Lock()
_seed_model: SpamModel | None = None


def seed_model() -> SpamModel:
    """The model of the seed corpus alone, built once per process (about a second)."""
    global _seed_model
    with _seed_lock:
        if _seed_model is None:
            rows = seed_corpus()
            _seed_model = train(
                [t for t, _ in rows], [s for _, s in rows], version=f"seed-{seed_digest()}"
            )
        return _seed_model


_loaded: dict[tuple[int, int], SpamModel] = {}


def active_model() -> SpamModel:
    """The active trained version (loaded once per process), or the seed model."""
    from apps.quality.models import SpamClassifier

    row = SpamClassifier.objects.filter(is_active=True).values("id", "version", "threshold").first()
    if row is None:
        return seed_model()
    key = (row["id"], row["version"])
    model = _loaded.get(key)
    if model is None:
        stored = SpamClassifier.objects.get(pk=row["id"])
        model = SpamModel.loads(
            bytes(stored.artifact),
            version=f"v{stored.version}",
            threshold=stored.threshold,
            metrics=stored.metrics,
        )
        _loaded.clear()
        _loaded[key] = model
    return model
