"""The learned classifier over the rater's own text (comment and edited reply): spam probability
from the active `SpamClassifier` version, or from the seed model before any is trained.

All texts of a batch go through the model in one call. `spam_eval` puts its own model in
`batch.state["classifier.model"]` to score a corpus without touching the database."""

from __future__ import annotations

from apps.quality import conf
from apps.quality.filters.base import (
    PASS,
    QUARANTINE,
    REJECT,
    Batch,
    Context,
    Filter,
    FilterResult,
    Reason,
)
from apps.quality.spam_model import SpamModel, active_model


class ClassifierFilter(Filter):
    name = "classifier"
    version = "1"

    def _model(self, batch: Batch) -> SpamModel:
        model = batch.state.get("classifier.model")
        if model is None:
            model = batch.state["classifier.model"] = active_model()
        return model

    def current_version(self, batch: Batch | None = None) -> str:
        model = self._model(batch) if batch is not None else active_model()
        return f"{self.version}/{model.version}"

    def prepare(self, batch: Batch) -> None:
        model = self._model(batch)
        texts = {event.id: event.texts.rater_text for event in batch.events}
        # Each distinct text once: floods and edits that keep a reply repeat texts in a batch.
        distinct = list(dict.fromkeys(text for text in texts.values() if text.strip()))
        score_of = dict(zip(distinct, model.predict(distinct), strict=True))
        batch.state[self.name] = {
            event_id: score_of[text] for event_id, text in texts.items() if text.strip()
        }

    def check(self, ctx: Context) -> FilterResult:
        score = ctx.state[self.name].get(ctx.event.id)
        if score is None:
            return FilterResult(action=PASS)
        model = self._model(ctx.batch)
        if score < model.threshold:
            return FilterResult(action=PASS, score=score)
        action = (
            REJECT if score >= max(conf.get("CLASSIFIER_REJECT"), model.threshold) else QUARANTINE
        )
        return FilterResult(
            action=action,
            score=score,
            reasons=[
                Reason(
                    "classifier.spam",
                    f"The spam classifier ({model.version}) puts this text at {score:.0%} spam.",
                )
            ],
        )


FILTER = ClassifierFilter()
