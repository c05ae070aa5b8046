"""Sinkhole's trainer: plain Python on TRL + PEFT + torch (LoRA SFT, DPO, KTO).

It imports no Django: it takes a serializable job spec and a progress callback and returns a
result, so it runs from a Celery worker on a GPU box or alone from the command line. The
training issue fills it in; until then this package holds nothing but this description."""
