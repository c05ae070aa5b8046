"""Writes of the quality app: judging events (`judging`), curators overruling verdicts
(`curators`), training the classifier (`classifier`), and replaying history (`requalify`)."""

from apps.quality.services.classifier import classifier_train
from apps.quality.services.curators import curator_label_add, verdict_override
from apps.quality.services.judging import JudgeSummary, quality_events_judge
from apps.quality.services.requalify import (
    requalify_job_cancel,
    requalify_job_create,
    requalify_job_run,
)

__all__ = [
    "JudgeSummary",
    "classifier_train",
    "curator_label_add",
    "quality_events_judge",
    "requalify_job_cancel",
    "requalify_job_create",
    "requalify_job_run",
    "verdict_override",
]
