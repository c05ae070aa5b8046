"""`manage.py demo_loop`: the whole loop on this machine's CPU, in minutes.

1. import real preference data (Anthropic hh-rlhf pairs from ../shared/data, or the slice that
   ships in tests/fixtures) into a `demo-loop` source;
2. build a DPO dataset version from it (`build_dataset`);
3. train SmolLM2-135M-Instruct with LoRA for a few DPO steps (`train --here`);
4. publish the adapter as the alias `canary` (`publish`); the base model, served without an
   adapter, is the alias `production` (made if missing);
5. start an experiment `production` (control) against `canary` on the alias `production`;
6. answer prompts through the gateway (`POST /v1/chat/completions`, model `production`, one
   simulated user each, so the experiment splits them);
7. post feedback on those answers through `POST /api/v1/feedback`, quoting each answer's
   interaction id: a thumbs from each user and some side-by-side preferences. The users are
   SIMULATED (seeded coin flips with the rates given by --canary-up and --base-up): this
   machine has no people; the point is the plumbing, and the output says so;
8. print the leaderboard (`leaderboard`) and the experiment's results and verdict.

Tasks run in this process (Celery eager), so no worker is needed. Use a scratch data folder
to keep the demo out of your real database, e.g. `make demo-loop` runs
`SINKHOLE_DATA_DIR=var/demo-loop manage.py migrate && … demo_loop`."""

from __future__ import annotations

import io
import json
import random
import time
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.test import Client

from apps.registry.models import Alias
from apps.registry.selectors import base_model_find
from apps.registry.services import alias_set, checkpoint_register_base
from apps.sources.models import ApiKey, Source
from apps.sources.services import api_key_issue, source_create

SHARED = (
    Path(settings.BASE_DIR).parent / "shared" / "data" / "formats" / "hh_rlhf_harmless_sample.jsonl"
)
SLICE = Path(settings.BASE_DIR) / "tests" / "fixtures" / "importers" / "hh_rlhf_harmless.jsonl"
SOURCE = "demo-loop"
PROMPTS = [
    "What is the capital of France?",
    "Give me one tip for sleeping better.",
    "How do I boil an egg?",
    "Write a haiku about autumn.",
    "What is 12 times 12?",
    "Explain what a neural network is in one sentence.",
    "How can I be kinder to my neighbours?",
    "Name three fruits that are red.",
]


class Command(BaseCommand):
    help = "Run the whole feedback → dataset → training → serving → experiment loop on this CPU."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--data",
            type=Path,
            default=None,
            help="hh-rlhf .jsonl (default: ../shared/data's sample)",
        )
        parser.add_argument("--max-rows", type=int, default=64, help="DPO rows to train on")
        parser.add_argument("--steps", type=int, default=4, help="DPO steps")
        parser.add_argument(
            "--max-length",
            type=int,
            default=160,
            help="tokens per training row (CPU: keep it short)",
        )
        parser.add_argument(
            "--answers", type=int, default=32, help="answers to serve through the gateway"
        )
        parser.add_argument("--pairs", type=int, default=4, help="side-by-side preferences")
        parser.add_argument("--max-tokens", type=int, default=16)
        parser.add_argument(
            "--canary-up", type=float, default=0.8, help="simulated thumbs-up rate of canary"
        )
        parser.add_argument(
            "--base-up", type=float, default=0.35, help="simulated thumbs-up rate of the base"
        )
        parser.add_argument("--min-events", type=int, default=10, help="per arm, before a verdict")
        parser.add_argument("--seed", type=int, default=0)

    def handle(self, *args: Any, **options: Any) -> None:
        from django.test.utils import override_settings

        # The gateway and the feedback API are called in-process, through Django's test client.
        with override_settings(ALLOWED_HOSTS=[*settings.ALLOWED_HOSTS, "testserver"]):
            self._run(options)

    def _run(self, options: dict[str, Any]) -> None:
        from config.celery import app

        app.conf.task_always_eager = True  # every task in this process: no worker needed
        started = time.perf_counter()
        rng = random.Random(options["seed"])
        _, secret = self._source()

        self._step(1, "import real preference data")
        data = options["data"] or (SHARED if SHARED.is_file() else SLICE)
        self._call("import_feedback", str(data), "--format", "hh-rlhf", "--source", SOURCE)

        self._step(2, "build a DPO dataset version")
        version = json.loads(
            self._call(
                "build_dataset",
                "--kind",
                "dpo",
                "--source",
                SOURCE,
                "--max-rows",
                str(options["max_rows"]),
                "--json",
                quiet=True,
            )
        )
        if version["status"] != "succeeded":
            raise CommandError(f"the dataset build {version['status']}: {version}")
        self.stdout.write(f"   dataset version {version['version']}: {version['rows']}")

        self._step(3, f"train SmolLM2-135M with LoRA ({options['steps']} DPO steps, here)")
        # In a child process: training leaves torch state behind (threads, memory) that made the
        # serving steps in this process many times slower; the child also shows the real CLI.
        run = json.loads(
            self._subprocess(
                "train",
                "--dataset",
                str(version["version"]),
                "--method",
                "dpo",
                "--max-steps",
                str(options["steps"]),
                "--set",
                "batch_size=1",
                "--set",
                f"max_length={options['max_length']}",
                "--set",
                "num_samples=1",
                "--set",
                "sample_max_new_tokens=16",
                "--here",
                "--json",
            )
        )
        if run["status"] != "succeeded" or not run["checkpoint"]:
            raise CommandError(f"training {run['status']}: {run.get('error', '')}")
        self.stdout.write(f"   run {run['run']} → checkpoint {run['checkpoint']}")

        self._step(4, "publish it as `canary`; the base model is `production`")
        self._call("publish", run["checkpoint"], "--alias", "canary", "--reason", "demo loop")
        base = self._production()
        self.stdout.write(f"   production → {base.name}, canary → {run['checkpoint']}")

        self._step(5, "start an experiment: production (control) against canary")
        experiment = self._experiment(options["min_events"])
        self.stdout.write(f"   experiment {experiment.name} running on alias production")

        self._step(
            6, f"answer {options['answers']} prompts through the gateway (one simulated user each)"
        )
        client = Client()
        answers = []
        for i in range(options["answers"]):
            body = self._chat(
                client,
                secret,
                "production",
                PROMPTS[i % len(PROMPTS)],
                options["max_tokens"],
                user=f"user-{i}",
            )
            answers.append((f"user-{i}", PROMPTS[i % len(PROMPTS)], body))
        served = {
            arm: sum(1 for _, _, b in answers if b["sinkhole"]["arm"] == arm)
            for arm in ("production", "canary")
        }
        self.stdout.write(
            f"   served: {served}; e.g. {answers[0][2]['sinkhole']['checkpoint']}: "
            f"{answers[0][2]['choices'][0]['message']['content'][:70]!r}"
        )

        self._step(7, "post feedback quoting the interaction ids (SIMULATED users)")
        events = []
        for user, prompt, body in answers:
            up = options["canary_up"] if body["sinkhole"]["arm"] == "canary" else options["base_up"]
            events.append(
                {
                    "type": "rating",
                    "id": f"demo-thumb-{body['id']}",
                    "rater": user,
                    "interaction_id": body["id"],
                    "messages": [{"role": "user", "content": prompt}],
                    "response": body["choices"][0]["message"]["content"] or "(empty)",
                    "rating": 1 if rng.random() < up else -1,
                    "metadata": {"simulated": True},
                }
            )
        for i in range(options["pairs"]):
            prompt = PROMPTS[i % len(PROMPTS)]
            one = self._chat(client, secret, base.name, prompt, options["max_tokens"])
            two = self._chat(client, secret, run["checkpoint"], prompt, options["max_tokens"])
            wins = rng.random() < options["canary_up"] / (options["canary_up"] + options["base_up"])
            events.append(
                {
                    "type": "preference",
                    "id": f"demo-pref-{two['id']}",
                    "rater": f"judge-{i}",
                    "messages": [{"role": "user", "content": prompt}],
                    "responses": [
                        {
                            "content": one["choices"][0]["message"]["content"] or "(empty)",
                            "interaction_id": one["id"],
                        },
                        {
                            "content": two["choices"][0]["message"]["content"] or "(empty)",
                            "interaction_id": two["id"],
                        },
                    ],
                    "choice": 1 if wins else 0,
                    "metadata": {"simulated": True},
                }
            )
        response = client.post(
            "/api/v1/feedback",
            json.dumps(events),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        summary = response.json().get("summary", {})
        self.stdout.write(f"   feedback: {summary}")

        self._step(8, "the leaderboard and the experiment's verdict")
        self.stdout.write(self._call("leaderboard", "--bootstrap", "200", quiet=True))
        from apps.serving import selectors
        from apps.serving.management.commands.experiment import format_results

        self.stdout.write(format_results(selectors.experiment_results(experiment)))
        self.stdout.write(
            f"\nDone in {time.perf_counter() - started:.0f} s. Promote with: manage.py experiment promote "
            f"{experiment.name}  (moves `production` to the winner; `experiment rollback` undoes it)."
        )

    # ---- helpers -------------------------------------------------------------------------

    def _step(self, number: int, text: str) -> None:
        self.stdout.write(self.style.MIGRATE_HEADING(f"[{number}/8] {text}"))

    def _call(self, name: str, *args: str, quiet: bool = False) -> str:
        out = io.StringIO()
        call_command(name, *args, stdout=out, stderr=io.StringIO())
        text = out.getvalue().strip()
        if not quiet and text:
            self.stdout.write("   " + text.replace("\n", "\n   "))
        return text

    def _subprocess(self, *args: str) -> str:
        import os
        import subprocess
        import sys

        done = subprocess.run(  # noqa: S603 - our own manage.py, arguments built here
            [sys.executable, str(Path(settings.BASE_DIR) / "manage.py"), *args],
            capture_output=True,
            text=True,
            env={**os.environ, "CELERY_TASK_ALWAYS_EAGER": "1"},
            check=False,
        )
        if done.returncode != 0:
            raise CommandError(f"manage.py {args[0]} failed: {done.stderr.strip()[-500:]}")
        return done.stdout.strip().splitlines()[-1]

    def _source(self) -> tuple[Any, str]:
        source = Source.objects.filter(name=SOURCE).first()
        if source is None:
            source, secret, _ = source_create(name=SOURCE, allowed_origins=[])
            return source, secret.raw
        return source, api_key_issue(source=source, kind=ApiKey.Kind.SECRET).raw

    def _production(self) -> Any:
        base_model = base_model_find(None)
        if base_model is None:
            raise CommandError("there is no default base model (run migrate)")
        base = checkpoint_register_base(base_model=base_model)
        if not Alias.objects.filter(name="production").exists():
            alias_set(name="production", checkpoint=base, reason="demo loop: the base model")
        return base

    def _experiment(self, min_events: int) -> Any:
        from apps.serving import services
        from apps.serving.models import Experiment

        for running in Experiment.objects.filter(
            alias__name="production", status=Experiment.Status.RUNNING
        ):
            services.experiment_stop(experiment=running)
        experiment = services.experiment_create(
            name=f"demo-loop-{int(time.time())}",
            alias="production",
            description="production (the base model) against canary (fresh DPO adapter); simulated users",
            min_events=min_events,
            arms=[
                services.ArmSpec(alias="production", name="production", is_control=True),
                services.ArmSpec(alias="canary", name="canary"),
            ],
        )
        return services.experiment_start(experiment=experiment)

    def _chat(
        self, client: Client, secret: str, model: str, prompt: str, max_tokens: int, user: str = ""
    ) -> dict[str, Any]:
        body = {
            "model": model,
            "messages": [{"role": "user", "content": prompt}],
            "max_tokens": max_tokens,
        }
        if user:
            body["user"] = user
        response = client.post(
            "/v1/chat/completions",
            json.dumps(body),
            content_type="application/json",
            HTTP_AUTHORIZATION=f"Bearer {secret}",
        )
        if response.status_code != 200:
            raise CommandError(
                f"the gateway answered {response.status_code}: {response.content[:300]!r}"
            )
        return response.json()
