"""Command line: python -m trainer {run,validate,convert-smollm2,chat} ...

    python -m trainer validate spec.yaml
    python -m trainer run spec.yaml [--json] [--max-steps N] [--output-dir DIR]
    python -m trainer convert-smollm2          # warm the model cache once
    python -m trainer chat MODEL [--adapter DIR] "prompt"

`run` draws a progress bar on a terminal (log lines otherwise, on stderr). It restarts itself on
jemalloc where the system has it (about 0.5 GB less peak memory on a CPU than glibc's malloc,
same speed; SINKHOLE_TRAIN_JEMALLOC=0 keeps the system's). Ctrl-C (or SIGTERM)
stops at the end of the current step and saves a checkpoint, so the same command resumes; a
second Ctrl-C aborts at once. Exit status: 0 done, 2 invalid spec, 3 cancelled."""

from __future__ import annotations

import argparse
import json
import signal
import sys
from typing import Any


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m trainer", description=__doc__.split("\n\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser(
        "run", help="train a spec (resumes from its output folder's last checkpoint)"
    )
    run.add_argument("spec", help="job spec, .json or .yaml")
    run.add_argument("--json", action="store_true", help="print the result as one JSON object")
    run.add_argument("--max-steps", type=int, help="override the spec's max_steps")
    run.add_argument("--output-dir", help="override the spec's output_dir")
    validate = commands.add_parser("validate", help="check a spec without training")
    validate.add_argument("spec")
    validate.add_argument("--json", action="store_true")
    commands.add_parser(
        "convert-smollm2", help="dequantize SmolLM2-135M-Instruct from its wheel into the cache"
    )
    chat = commands.add_parser(
        "chat", help="generate one reply (base model, optionally with an adapter)"
    )
    chat.add_argument("model", help="base model id or folder")
    chat.add_argument("prompt")
    chat.add_argument("--adapter", help="LoRA adapter folder")
    chat.add_argument("--max-new-tokens", type=int, default=128)
    chat.add_argument("--temperature", type=float, default=0.0)
    args = parser.parse_args(argv)
    if argv is None and args.command == "run":  # the real command line, not a test calling main
        _restart_on_jemalloc()
    return {"run": _run, "validate": _validate, "convert-smollm2": _convert, "chat": _chat}[
        args.command
    ](args)


def _restart_on_jemalloc() -> None:
    """Replace this process with the same command on jemalloc (same pid, same terminal), before
    anything heavy is imported; nothing happens where jemalloc_env says there is nothing to do."""
    import os

    from trainer.memory import allocator_in_use, jemalloc_env

    env = jemalloc_env(dict(os.environ))
    if env is None or allocator_in_use() == "jemalloc":
        return
    sys.stdout.flush()
    sys.stderr.flush()
    # The same interpreter with the same arguments (orig_argv: its own flags too), no shell.
    os.execve(sys.executable, sys.orig_argv, env)  # noqa: S606


def _load(args: argparse.Namespace) -> Any:
    from trainer.spec import JobSpec

    spec = JobSpec.from_file(args.spec)
    if getattr(args, "max_steps", None) is not None:
        spec.max_steps = args.max_steps
    if getattr(args, "output_dir", None):
        spec.output_dir = args.output_dir
    return spec.validate()


def _print_errors(error: Any, as_json: bool) -> int:
    if as_json:
        print(json.dumps({"valid": False, "errors": error.errors}))
    else:
        print("The spec cannot run:", file=sys.stderr)
        for path, message in error.errors.items():
            print(f"  {path}: {message}", file=sys.stderr)
    return 2


def _validate(args: argparse.Namespace) -> int:
    from trainer.spec import SpecError

    try:
        spec = _load(args)
    except SpecError as error:
        return _print_errors(error, args.json)
    if args.json:
        print(json.dumps({"valid": True, "spec": spec.to_dict()}))
    else:
        print(f"ok: {spec.method} on {spec.base_model}, output in {spec.output_dir}")
    return 0


def _run(args: argparse.Namespace) -> int:
    from trainer.run import run_job
    from trainer.spec import SpecError

    try:
        spec = _load(args)
    except SpecError as error:
        return _print_errors(error, args.json)

    stop = {"asked": False}

    def on_signal(signum: int, frame: Any) -> None:
        if stop["asked"]:
            raise KeyboardInterrupt
        stop["asked"] = True
        print("\nstopping after this step (again to abort)...", file=sys.stderr)

    signal.signal(signal.SIGINT, on_signal)
    signal.signal(signal.SIGTERM, on_signal)
    bar = None
    if sys.stderr.isatty():
        from tqdm import tqdm

        bar = tqdm(total=0, unit="step", dynamic_ncols=True, file=sys.stderr)

    def on_progress(progress: Any) -> None:
        if bar is None:
            print(progress.log, file=sys.stderr, flush=True)
            return
        if progress.total_steps and bar.total != progress.total_steps:
            bar.total = progress.total_steps
        if progress.step > bar.n:
            bar.update(progress.step - bar.n)
        postfix = {"phase": progress.phase}
        if progress.loss is not None:
            postfix["loss"] = f"{progress.loss:.4f}"
        if progress.tokens_per_second:
            postfix["tok/s"] = f"{progress.tokens_per_second:,.0f}"
        bar.set_postfix(postfix, refresh=True)
        if progress.phase not in {"training"}:
            bar.write(progress.log, file=sys.stderr)

    try:
        result = run_job(spec, on_progress=on_progress, should_stop=lambda: stop["asked"])
    except SpecError as error:
        return _print_errors(error, args.json)
    finally:
        if bar is not None:
            bar.close()
    if args.json:
        print(json.dumps(result.to_dict(), default=str))
    else:
        state = "cancelled" if result.cancelled else "done"
        print(f"{state}: {result.steps}/{result.total_steps} steps in {result.seconds:.1f}s")
        if not result.cancelled:
            print(f"adapter: {result.adapter_dir}")
            for key, value in result.metrics.items():
                print(f"  {key}: {value:g}")
        elif result.checkpoint_dir:
            print(f"checkpoint: {result.checkpoint_dir} (run the same command to resume)")
    return 3 if result.cancelled else 0


def _convert(args: argparse.Namespace) -> int:
    from trainer.models import ModelNotFound, convert_smollm2

    try:
        print(convert_smollm2())
    except ModelNotFound as error:
        print(error, file=sys.stderr)
        return 2
    return 0


def _chat(args: argparse.Namespace) -> int:
    from trainer.inference import load_model

    model = load_model(args.model, adapter_dir=args.adapter)
    pieces = model.chat(
        [{"role": "user", "content": args.prompt}],
        max_new_tokens=args.max_new_tokens,
        temperature=args.temperature,
        stream=True,
    )
    for piece in pieces:
        print(piece, end="", flush=True)
    print()
    return 0


if __name__ == "__main__":
    sys.exit(main())
