"""An LLM as a pairwise judge, through any OpenAI-compatible chat endpoint (OpenAI, vLLM, a
llama.cpp server, or Sinkhole's own gateway at /v1/chat/completions).

The prompt (also in docs/judges.md) shows the conversation and the two replies as "A" and "B" and
asks for one letter. Every pair is asked twice, A/B and B/A (`compare_both_orders`); when the two
answers disagree the pair is a tie. Where the endpoint returns `logprobs`, the probability of "A"
against "B" among the top tokens is the preference; otherwise the letter counts as certain.

Config: `base_url` (ending in /v1), `model`, `api_key_env` (the name of an environment variable
that holds the key: keys are never stored in the database), `max_tokens` (default 4),
`timeout` (s, default 60), `concurrency` (requests in flight, default 4)."""

from __future__ import annotations

import math
import os
import re
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from apps.judges.kinds.base import BaseJudge, Pair, Verdict

SYSTEM = (
    "You are an impartial judge of AI assistants. You compare two replies to the same "
    "conversation and decide which one is better: more helpful, more honest and more harmless. "
    "Ignore the order in which the replies are shown and their length. "
    "Answer with exactly one letter: A if reply A is better, B if reply B is better."
)
TEMPLATE = (
    "[Conversation]\n{conversation}\n\n[Reply A]\n{a}\n\n[Reply B]\n{b}\n\n"
    "Which reply is better? Answer with one letter, A or B."
)
_LETTER = re.compile(r"\b([AB])\b")


def conversation_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    return "\n".join(f"{m.get('role', 'user')}: {m.get('content', '')}" for m in prompt)


def judge_messages(pair: Pair) -> list[dict[str, str]]:
    return [
        {"role": "system", "content": SYSTEM},
        {
            "role": "user",
            "content": TEMPLATE.format(
                conversation=conversation_text(pair.prompt), a=pair.a, b=pair.b
            ),
        },
    ]


def verdict_from_answer(answer: dict[str, Any]) -> Verdict:
    """A Verdict from one chat completion (logprobs when present, else the letter)."""
    choice = (answer.get("choices") or [{}])[0]
    text = str((choice.get("message") or {}).get("content") or "").strip()
    logprobs = ((choice.get("logprobs") or {}).get("content") or [None])[0]
    if logprobs and logprobs.get("top_logprobs"):
        weights = {"A": 0.0, "B": 0.0}
        for item in logprobs["top_logprobs"]:
            token = str(item.get("token", "")).strip().upper()
            if token in weights:
                weights[token] += math.exp(float(item.get("logprob", -100.0)))
        if weights["A"] + weights["B"] > 0:
            p = weights["A"] / (weights["A"] + weights["B"])
            return Verdict(p, abs(2 * p - 1))
    match = _LETTER.search(text.upper())
    if not match:
        return Verdict(0.5, 0.0)
    return Verdict(1.0, 1.0) if match.group(1) == "A" else Verdict(0.0, 1.0)


class LlmJudge(BaseJudge):
    def __init__(self, config: dict[str, Any]) -> None:
        self.base_url = str(config.get("base_url", "")).rstrip("/")
        self.model = str(config.get("model", ""))
        if not self.base_url or not self.model:
            raise ValueError("an LLM judge needs base_url and model")
        key_env = str(config.get("api_key_env", ""))
        self.api_key = os.environ.get(key_env, "") if key_env else ""
        self.max_tokens = int(config.get("max_tokens", 4))
        self.timeout = float(config.get("timeout", 60))
        self.concurrency = max(1, int(config.get("concurrency", 4)))
        self.logprobs = bool(config.get("logprobs", True))

    def _ask(self, client: Any, pair: Pair) -> Verdict:
        body: dict[str, Any] = {
            "model": self.model,
            "messages": judge_messages(pair),
            "max_tokens": self.max_tokens,
            "temperature": 0,
        }
        if self.logprobs:
            body |= {"logprobs": True, "top_logprobs": 5}
        response = client.post(f"{self.base_url}/chat/completions", json=body)
        if response.status_code >= 400:
            raise RuntimeError(
                f"the judge endpoint answered {response.status_code}: {response.text[:300]}"
            )
        return verdict_from_answer(response.json())

    def compare_once(self, pairs: list[Pair]) -> list[Verdict]:
        import httpx

        headers = {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}
        with httpx.Client(timeout=self.timeout, headers=headers) as client:
            with ThreadPoolExecutor(self.concurrency) as pool:
                return list(pool.map(lambda pair: self._ask(client, pair), pairs))
