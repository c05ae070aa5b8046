"""Training the spam classifier from the curators' labels and the seed corpus."""

from __future__ import annotations

import logging
from collections import Counter

from django.db import transaction

from apps.quality import conf
from apps.quality.models import CuratorLabel, SpamClassifier

logger = logging.getLogger(__name__)


def classifier_train(
    *, force: bool = False, min_new_labels: int | None = None, seed: int = 0
) -> SpamClassifier | None:
    """Train a new classifier version on the seed corpus plus every curator label (the newest
    label of a text wins) and make it the active one. Without FORCE nothing happens until
    MIN_NEW_LABELS labels (default `QUALITY_RETRAIN_MIN_NEW_LABELS`) arrived since the active version."""
    from apps.quality import spam_model

    active = SpamClassifier.objects.filter(is_active=True).only("version", "last_label_id").first()
    newest = CuratorLabel.objects.order_by("-id").values_list("id", flat=True).first() or 0
    wanted = conf.get("RETRAIN_MIN_NEW_LABELS") if min_new_labels is None else min_new_labels
    if not force:
        fresh = CuratorLabel.objects.filter(id__gt=active.last_label_id if active else 0).count()
        if fresh < max(1, wanted):
            return None
    labelled: dict[str, bool] = {}
    for text, label in CuratorLabel.objects.order_by("id").values_list("text", "label"):
        labelled[text] = label == "spam"
    seed_rows = spam_model.seed_corpus()
    texts = [t for t, _ in seed_rows] + list(labelled)
    labels = [s for _, s in seed_rows] + list(labelled.values())
    in_domain = [False] * len(seed_rows) + [True] * len(labelled)
    version = (
        SpamClassifier.objects.order_by("-version").values_list("version", flat=True).first() or 0
    ) + 1
    model = spam_model.train(texts, labels, version=f"v{version}", in_domain=in_domain, seed=seed)
    counts = Counter(
        ("curator" if d else "seed") + ("_spam" if s else "_ham")
        for d, s in zip(in_domain, labels, strict=True)
    )
    with transaction.atomic():
        SpamClassifier.objects.filter(is_active=True).update(is_active=False)
        row = SpamClassifier(
            version=version,
            is_active=True,
            artifact=model.dumps(),
            threshold=model.threshold,
            trained_on=dict(counts),
            metrics=model.metrics,
            last_label_id=newest,
        )
        row.full_clean(exclude=["artifact"])
        row.save()
    logger.info(
        "trained spam classifier",
        extra={"version": version, "trained_on": dict(counts), "metrics": model.metrics},
    )
    return row
