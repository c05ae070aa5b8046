"""Writes of the judges app: registering judges, auditing them against people, and gates.

    judge_register(name=..., kind=..., config=..., checkpoint=...)   -> Judge (versioned)
    judge_audit(judge=..., pairs=..., source=...)                     -> JudgeAudit
    gate_run_create(candidate=..., against_alias=..., dataset_version=..., judge=...) -> GateRun
    gate_run_execute(gate_run=...)                                    -> GateRun (passed/failed)

Heavy work (a reward model, generation) happens inside execute/audit, never at import."""

from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.core.exceptions import ApplicationError
from apps.judges import kinds
from apps.judges.audit import LabelledPair, as_pairs, audit
from apps.judges.kinds.base import Pair
from apps.judges.models import GateRun, Judge, JudgeAudit
from apps.judges.stats import bootstrap_interval
from apps.registry.models import Alias
from apps.serving.backends import BuiltinBackend, Params, Usage, backend_for

LOSSES_SHOWN = 5


def _invalid(fields: dict[str, str]) -> ApplicationError:
    return ApplicationError(
        "The request is invalid; see fields.", fields={k: [v] for k, v in fields.items()}
    )


# -- judges -------------------------------------------------------------------------------------


def _config_problems(kind: str, config: dict[str, Any], checkpoint: Any) -> dict[str, str]:
    errors: dict[str, str] = {}
    if kind not in kinds.KINDS:
        errors["kind"] = f"must be one of {', '.join(kinds.KINDS)}, not {kind!r}"
        return errors
    if not isinstance(config, dict):
        return {"config": "must be an object"}
    if kind == "reward_model":
        if checkpoint is None:
            errors["checkpoint"] = "a reward_model judge needs a reward-model checkpoint"
        elif checkpoint.kind != "reward":
            errors["checkpoint"] = (
                f"{checkpoint.name} is a {checkpoint.kind} checkpoint, not a reward model "
                "(train one with --method rm)"
            )
    elif checkpoint is not None:
        errors["checkpoint"] = "only a reward_model judge names a checkpoint"
    if kind == "llm":
        for key in ("base_url", "model"):
            if not str(config.get(key, "")).strip():
                errors[f"config.{key}"] = "is required for an LLM judge"
        url = str(config.get("base_url", ""))
        if url and not url.startswith(("http://", "https://")):
            errors["config.base_url"] = "must be an http(s) URL ending in /v1"
        if "api_key" in config:
            errors["config.api_key"] = (
                "keys are not stored; name the environment variable in api_key_env"
            )
    if kind == "rule":
        from apps.judges.kinds.rules import RULES

        if config.get("rule") not in RULES:
            errors["config.rule"] = f"must be one of {', '.join(RULES)}"
    if not errors:
        try:
            kinds.build(kind, config, checkpoint)
        except (ValueError, TypeError) as exc:
            errors["config"] = str(exc)
    return errors


def judge_register(
    *,
    name: str,
    kind: str,
    config: dict[str, Any] | None = None,
    checkpoint: Any = None,
    description: str = "",
    user: Any = None,
) -> Judge:
    """Register judge NAME; if its newest version has other settings, the next version. The same
    settings again return the newest version (idempotent)."""
    config = dict(config or {})
    errors = _config_problems(kind, config, checkpoint)
    if errors:
        raise _invalid(errors)
    with transaction.atomic():
        latest = Judge.objects.select_for_update().filter(name=name).order_by("-version").first()
        if (
            latest is not None
            and latest.kind == kind
            and latest.config == config
            and latest.checkpoint_id == getattr(checkpoint, "pk", None)
        ):
            return latest
        judge = Judge(
            name=name,
            version=(latest.version + 1) if latest else 1,
            kind=kind,
            config=config,
            checkpoint=checkpoint,
            description=description[:500],
            created_by=user if getattr(user, "pk", None) else None,
        )
        try:
            judge.full_clean()
        except Exception as exc:  # ValidationError: name etc.
            fields = getattr(exc, "message_dict", {"name": [str(exc)]})
            raise ApplicationError("The request is invalid; see fields.", fields=fields) from exc
        judge.save()
    return judge


def judge_for(judge: Judge) -> kinds.BaseJudge:
    try:
        return kinds.build(judge.kind, judge.config, judge.checkpoint)
    except ValueError as exc:
        raise ApplicationError(f"{judge.label} cannot judge: {exc}") from exc


def default_judge() -> Judge:
    """JUDGES_DEFAULT_JUDGE, else the newest reward-model judge."""
    from apps.judges.selectors import judge_get

    if settings.JUDGES_DEFAULT_JUDGE:
        return judge_get(settings.JUDGES_DEFAULT_JUDGE)
    judge = Judge.objects.filter(kind=Judge.Kind.REWARD_MODEL).order_by("-created_at").first()
    if judge is None:
        raise _invalid({"judge": "no judge named and no reward-model judge registered"})
    return judge


# -- audits -------------------------------------------------------------------------------------


def judge_audit(
    *, judge: Judge, pairs: list[LabelledPair], source: str, save: bool = True
) -> JudgeAudit:
    """Ask JUDGE every pair in both orders and measure it against the people (apps.judges.audit)."""
    if not pairs:
        raise _invalid({"pairs": "there are no human-labelled pairs to audit on"})
    started = time.monotonic()
    verdicts = _judge_pairs(judge, as_pairs(pairs))
    results = audit(pairs, verdicts)
    results = {"judge": judge.label, "source": source, **results}
    row = JudgeAudit(
        judge=judge,
        source=source[:500],
        pairs=results["pairs"],
        agreement=results["agreement"],
        kappa=results["kappa"],
        results=results,
        seconds=round(time.monotonic() - started, 2),
    )
    if save:
        row.full_clean()
        row.save()
    return row


def _judge_pairs(judge: Judge, pairs: list[Pair]) -> list[Any]:
    try:
        return judge_for(judge).compare(pairs)
    except ApplicationError:
        raise
    except Exception as exc:  # noqa: BLE001 - an endpoint or model failure is the judge's
        raise ApplicationError(
            f"{judge.label} failed while judging: {exc}", code="judge_failed", status_code=502
        ) from exc


# -- the offline gate ---------------------------------------------------------------------------


def held_out_prompts(version: Any, limit: int) -> list[Any]:
    """The distinct prompts of a dataset version's test split (chat messages or text)."""
    import json
    from pathlib import Path

    path = version.file_path("test", "jsonl")
    if path is None or not Path(path).is_file() or Path(path).stat().st_size == 0:
        raise _invalid({"dataset_version": f"v{version.pk} has no held-out (test) prompts"})
    prompts: list[Any] = []
    seen: set[str] = set()
    for line in Path(path).read_text(encoding="utf-8").splitlines():
        if not line.strip():
            continue
        row = json.loads(line)
        if "messages" in row:
            messages = row["messages"]
            last_user = max((i for i, m in enumerate(messages) if m["role"] == "user"), default=-1)
            prompt: Any = messages[: last_user + 1]
        else:
            prompt = row.get("prompt")
        if isinstance(prompt, str):
            prompt = [{"role": "user", "content": prompt}]
        if not prompt:
            continue
        key = json.dumps(prompt, sort_keys=True)
        if key not in seen:
            seen.add(key)
            prompts.append(prompt)
        if len(prompts) >= limit:
            break
    return prompts


def _resolve_against(against: Any, against_alias: str) -> tuple[Any, str]:
    if against is not None:
        return against, against_alias
    alias = Alias.objects.select_related("checkpoint").filter(name=against_alias).first()
    if alias is None:
        raise _invalid({"against": f"there is no alias {against_alias!r}"})
    return alias.checkpoint, against_alias


def gate_run_create(
    *,
    candidate: Any,
    dataset_version: Any,
    against_alias: str = "",
    against: Any = None,
    judge: Judge | None = None,
    prompts: int | None = None,
    line: float | None = None,
    user: Any = None,
) -> GateRun:
    """Queue a gate: CANDIDATE against the checkpoint behind AGAINST_ALIAS (or AGAINST)."""
    errors: dict[str, str] = {}
    if candidate.kind == "reward":
        errors["candidate"] = f"{candidate.name} is a reward model; a gate compares policies"
    if not against_alias and against is None:
        errors["against"] = "name an alias (or a checkpoint) to compare with"
    prompts = settings.JUDGES_GATE_PROMPTS if prompts is None else prompts
    if not 1 <= prompts <= 5000:
        errors["prompts"] = f"must be between 1 and 5000, not {prompts}"
    line = settings.JUDGES_GATE_LINE if line is None else line
    if not 0 <= line < 1:
        errors["line"] = f"must be in [0, 1), not {line}"
    if errors:
        raise _invalid(errors)
    against, against_alias = _resolve_against(against, against_alias)
    if against.pk == candidate.pk:
        raise _invalid({"against": f"{against_alias or against.name} is the candidate itself"})
    judge = judge or default_judge()
    held_out_prompts(dataset_version, 1)  # refuses a version without a test split now
    run = GateRun(
        candidate=candidate,
        against=against,
        against_alias=against_alias,
        judge=judge,
        dataset_version=dataset_version,
        prompts=prompts,
        line=line,
        created_by=user if getattr(user, "pk", None) else None,
    )
    run.full_clean()
    run.save()
    return run


def _answers(checkpoint: Any, prompts: list[Any]) -> list[str]:
    """Greedy answers of CHECKPOINT through its serving backend: an upstream (vLLM) gets several
    requests in flight and batches them itself; the built-in engine gets the prompts in batches
    of `JUDGES_GATE_BATCH`, left-padded, one `generate` call each."""
    backend = backend_for(checkpoint)
    if isinstance(backend, BuiltinBackend):
        return _builtin_batches(backend, checkpoint, prompts)
    params = Params(max_tokens=settings.JUDGES_GATE_MAX_TOKENS, temperature=0.0, top_p=1.0)

    def answer(messages: Any) -> str:
        return backend.complete(checkpoint, messages, params, Usage())

    with ThreadPoolExecutor(max(1, settings.JUDGES_GATE_CONCURRENCY)) as pool:
        return list(pool.map(answer, prompts))


def _builtin_batches(backend: Any, checkpoint: Any, prompts: list[Any]) -> list[str]:
    import torch  # heavy: only a gate on the built-in engine needs it

    chat = backend._model(checkpoint)  # the engine's loaded model, shared with the gateway
    tokenizer = chat.tokenizer
    texts = []
    for messages in prompts:
        plain = backend._plain(messages)
        if tokenizer.chat_template:
            texts.append(
                tokenizer.apply_chat_template(plain, add_generation_prompt=True, tokenize=False)
            )
        else:
            texts.append("".join(f"{m['role']}: {m['content']}\n" for m in plain) + "assistant:")
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    answers: list[str] = []
    size = max(1, settings.JUDGES_GATE_BATCH)
    with chat._lock:  # one generation at a time per model, as the gateway does
        side, tokenizer.padding_side = tokenizer.padding_side, "left"
        try:
            for start in range(0, len(texts), size):
                encoded = tokenizer(
                    texts[start : start + size],
                    return_tensors="pt",
                    padding=True,
                    add_special_tokens=False,
                ).to(chat.model.device)
                with torch.inference_mode():
                    output = chat.model.generate(
                        **encoded,
                        max_new_tokens=settings.JUDGES_GATE_MAX_TOKENS,
                        do_sample=False,
                        pad_token_id=pad,
                    )
                width = encoded["input_ids"].shape[1]
                answers += [
                    tokenizer.decode(row[width:], skip_special_tokens=True).strip()
                    for row in output
                ]
        finally:
            tokenizer.padding_side = side
    return answers


def gate_outcome(
    prompts: list[Any], candidate: list[str], baseline: list[str], verdicts: list[Any], line: float
) -> dict[str, Any]:
    """Win rate of the candidate (a tie counts half) with its bootstrap interval, the verdict,
    and the prompts where it lost most clearly."""
    credit = [1.0 if v.winner == "a" else 0.5 if v.winner == "tie" else 0.0 for v in verdicts]
    low, high = bootstrap_interval(credit, rounds=2000, seed=0)
    win_rate = sum(credit) / len(credit)
    losses = sorted(
        (i for i, v in enumerate(verdicts) if v.winner == "b"), key=lambda i: verdicts[i].preference
    )[:LOSSES_SHOWN]
    return {
        "prompts": len(prompts),
        "wins": sum(v.winner == "a" for v in verdicts),
        "losses": sum(v.winner == "b" for v in verdicts),
        "ties": sum(v.winner == "tie" for v in verdicts),
        "flips": sum(v.flipped for v in verdicts),
        "win_rate": round(win_rate, 4),
        "interval": [low, high],
        "line": line,
        "passed": low > line,
        "worst_losses": [
            {
                "prompt": prompts[i][-1]["content"] if prompts[i] else "",
                "candidate": candidate[i],
                "baseline": baseline[i],
                "p_candidate_better": round(verdicts[i].preference, 4),
                "scores": [verdicts[i].score_a, verdicts[i].score_b],
            }
            for i in losses
        ],
    }


def gate_run_execute(*, gate_run: GateRun) -> GateRun:
    """Both checkpoints answer the held-out prompts; the judge compares every pair in both
    orders; the run records the win rate, its interval and the verdict. A failure is recorded
    on the run (status error) and raised."""
    with transaction.atomic():
        run = GateRun.objects.select_for_update().get(pk=gate_run.pk)
        if run.status in (GateRun.Status.PASSED, GateRun.Status.FAILED):
            return run  # a task that runs twice does the work once
        run.status = GateRun.Status.RUNNING
        run.save(update_fields=["status"])
    run = GateRun.objects.select_related(
        "candidate__base_model", "against__base_model", "judge__checkpoint__base_model"
    ).get(pk=run.pk)
    started = time.monotonic()
    try:
        prompts = held_out_prompts(run.dataset_version, run.prompts)
        timings: dict[str, float] = {}
        mark = time.monotonic()
        candidate = _answers(run.candidate, prompts)
        baseline = _answers(run.against, prompts)
        timings["generate_seconds"] = round(time.monotonic() - mark, 2)
        mark = time.monotonic()
        verdicts = _judge_pairs(
            run.judge, [Pair(p, c, b) for p, c, b in zip(prompts, candidate, baseline, strict=True)]
        )
        timings["judge_seconds"] = round(time.monotonic() - mark, 2)
        outcome = gate_outcome(prompts, candidate, baseline, verdicts, run.line) | timings
    except Exception as exc:
        GateRun.objects.filter(pk=run.pk).update(
            status=GateRun.Status.ERROR,
            error=str(getattr(exc, "message", exc))[:2000],
            finished_at=timezone.now(),
            seconds=round(time.monotonic() - started, 2),
        )
        raise
    run.status = GateRun.Status.PASSED if outcome["passed"] else GateRun.Status.FAILED
    run.win_rate = outcome["win_rate"]
    run.win_rate_low, run.win_rate_high = outcome["interval"]
    run.results = {
        "candidate": run.candidate.name,
        "against": run.against.name,
        "against_alias": run.against_alias,
        "judge": run.judge.label,
        "dataset_version": run.dataset_version_id,
        **outcome,
    }
    run.finished_at = timezone.now()
    run.seconds = round(time.monotonic() - started, 2)
    run.save(
        update_fields=[
            "status",
            "win_rate",
            "win_rate_low",
            "win_rate_high",
            "results",
            "finished_at",
            "seconds",
        ]
    )
    return run


def gate_publish_check(checkpoint: Any, alias: str) -> str | None:
    """Registered with the registry's publish: with JUDGES_REQUIRE_GATE, publishing an adapter
    to an alias needs a passed gate; the newest gate's result goes into the alias history."""
    from apps.judges.selectors import gate_run_list

    if checkpoint.kind != "adapter":
        return None
    finished = gate_run_list(candidate=checkpoint).filter(status__in=["passed", "failed"])
    latest = finished.first()
    passed = gate_run_list(candidate=checkpoint).filter(status=GateRun.Status.PASSED).first()
    if settings.JUDGES_REQUIRE_GATE and passed is None:
        said = f" (the newest, gate {latest.pk}, is {latest.status})" if latest else ""
        raise ApplicationError(
            f"{checkpoint.name} has no passed offline gate{said}; run "
            f"`manage.py gate {checkpoint.name} --against {alias} --prompts VERSION` first "
            "(JUDGES_REQUIRE_GATE is on).",
            code="gate_required",
            status_code=409,
        )
    shown = passed or latest
    if shown is None:
        return None
    return (
        f"gate {shown.pk} {shown.status}: win rate {shown.win_rate:.2f} "
        f"[{shown.win_rate_low:.2f}, {shown.win_rate_high:.2f}] vs {shown.against.name}"
    )
