"""Sinkhole's trainer: plain Python on TRL + PEFT + torch (LoRA SFT, DPO, KTO).

It imports no Django: it takes a serializable job spec and a progress callback and returns a
result, so it runs from a Celery worker on a GPU box or alone from the command line
(`python -m trainer run SPEC`). Importing the package is cheap: torch, transformers, trl and peft
load only when a job runs or a model is loaded.

    from trainer import JobSpec, SpecError, run_job, TrainResult, Progress
    spec = JobSpec.from_dict({...}).validate()
    result = run_job(spec, on_progress=print, should_stop=lambda: False)
"""

from trainer.models import SMOLLM2_ID, resolve_base_model
from trainer.run import Progress, TrainResult, evaluate_adapter, latest_checkpoint, run_job
from trainer.spec import DatasetSpec, JobSpec, LoraSpec, SpecError

__all__ = [
    "SMOLLM2_ID",
    "DatasetSpec",
    "JobSpec",
    "LoraSpec",
    "Progress",
    "SpecError",
    "TrainResult",
    "evaluate_adapter",
    "latest_checkpoint",
    "resolve_base_model",
    "run_job",
]
