"""Arena identity leaks: in an anonymous comparison, a response that says which model or maker it
is ("I am Claude, made by Anthropic", "As a language model trained by OpenAI…") lets the rater vote
for a name instead of an answer, so the vote is held out of leaderboards.

Only self-identification counts — a response *about* GPT-4 or Llama is not a leak. A comparison
is anonymous unless the front-end says otherwise with `"metadata": {"anonymous": false}`."""

from __future__ import annotations

import re
from functools import lru_cache

from apps.quality.filters.base import PASS, QUARANTINE, Context, Filter, FilterResult, Reason

MODELS = (
    r"chat\s?gpt|gpt-?[345][\w.\-]*|gpt|o[134](?:-mini)?|claude(?:[\s-][\w.]+)?|gemini(?:[\s-][\w.]+)?|bard|palm\s?2?|"
    r"llama\s?[\d.]*|vicuna|alpaca|koala|mistral|mixtral|qwen[\d.]*|tongyi\s+qianwen|deepseek(?:[\s-]\w+)?|"
    r"gemma\s?[\d.]*|phi-?[\d.]*|falcon|command[\s-]r\+?|grok|ernie(?:\s?bot)?|chatglm|glm-?\d*|kimi|"
    r"yi-?\w*|olmo|nemotron|starling|zephyr|openchat|wizardlm|dolly|stablelm|bloom|copilot"
)
VENDORS = (
    r"openai|open\s+ai|anthropic|google(?:\s+deepmind)?|deepmind|meta(?:\s+ai)?|facebook|mistral\s+ai|alibaba(?:\s+cloud)?|"
    r"deepseek|microsoft|lmsys|large\s+model\s+systems\s+organization|tii|technology\s+innovation\s+institute|"
    r"cohere|01\.ai|xai|x\.ai|baidu|zhipu(?:\s+ai)?|moonshot(?:\s+ai)?|tsinghua|nvidia|allen\s+institute|ai2|"
    r"stability\s+ai|databricks|hugging\s?face|berkeley|stanford"
)
_FILLER = r"(?:(?:a|an|the|large|big|language|model|ai|artificial|intelligence|assistant|chatbot|chat|bot|version|of|based|on|called|named|known|as|helpful|virtual|conversational|multimodal|model's|just)[\s,]+){0,6}"
_SELF = re.compile(
    rf"(?i)\b(?:i\s+am|i'm|i’m|my\s+name\s+is|you\s+can\s+call\s+me|this\s+is)\s+{_FILLER}(?P<model>{MODELS})\b"
    rf"|\b(?:i\s+(?:was|am|have\s+been)|i'm|i’m|i’ve\s+been|i've\s+been)\s+{_FILLER}(?:developed|created|trained|built|made|designed|programmed|released)\s+by\s+(?P<vendor>{VENDORS})\b"
    rf"|\bas\s+(?:an?\s+)?{_FILLER}(?:developed|created|trained|built|made|designed)\s+by\s+(?P<vendor2>{VENDORS})\b"
    rf"|\bmy\s+(?:creators?|developers?|makers?|training\s+team)\s+(?:at\s+|is\s+|are\s+|was\s+)?(?P<vendor3>{VENDORS})\b"
    rf"|\b(?:i\s+am|i'm|i’m)\s+{_FILLER}(?:from|by)\s+(?P<vendor4>{VENDORS})\b"
)


@lru_cache(maxsize=4096)
def leak(text: str) -> str | None:
    """The model or maker a response claims to be, or None (cached: a comparison's responses
    come back in other comparisons, and the search is the costly part of judging a vote)."""
    match = _SELF.search(text)
    if not match:
        return None
    return next(value for value in match.groupdict().values() if value)


class ArenaFilter(Filter):
    name = "arena"
    version = "1"

    def check(self, ctx: Context) -> FilterResult:
        event = ctx.event
        if not event.is_vote:
            return FilterResult(action=PASS)
        metadata = event.payload.get("metadata") or {}
        if isinstance(metadata, dict) and metadata.get("anonymous") is False:
            return FilterResult(action=PASS)
        reasons = []
        for index, (model, text) in enumerate(event.texts.responses):
            named = leak(text)
            if named:
                own = f" ({model})" if model else ""
                reasons.append(
                    Reason(
                        "arena.identity_leak",
                        f"Response {index + 1}{own} names itself as {named.strip()!r} in an anonymous comparison.",
                    )
                )
        if not reasons:
            return FilterResult(action=PASS)
        return FilterResult(action=QUARANTINE, score=0.5, reasons=reasons)


FILTER = ArenaFilter()
