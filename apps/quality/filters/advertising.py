"""Advertising, link and contact injection: comments, edited replies and responses that try to send
the reader somewhere (a link, a shortener, a phone number, a handle) or sell something.

Each text is scanned for cues of a few kinds; a kind counts once and weighs what it says about
intent. One cue is never enough ("the docs are at docs.python.org", "call me later", "I won"):
a text is quarantined when its cues add up and one of them is a destination or a call to action.
Contact details arrive already redacted by ingest (`[PHONE]`, `[EMAIL]`) and count as contacts.
Responses are model-written and may cite links and numbers in good faith, so they need more.
An edit is judged only on what it added to the reply it corrects."""

from __future__ import annotations

import re
from functools import lru_cache

from apps.quality.filters.base import (
    PASS,
    QUARANTINE,
    REJECT,
    Context,
    Filter,
    FilterResult,
    Reason,
)

_TLDS = (
    "com|net|org|info|biz|io|co|me|xyz|shop|store|online|site|top|club|live|tv|ly|gg|app|ru|cn|uk|de|"
    "in|us|link|click|win|bet|vip|pro|cc|ws|su|tk|ml|ga|cf|gq|buzz|icu|fun|space|website|blog|today"
)
_SHORTENERS = (
    r"bit\.ly|bit\.do|tinyurl\.com|goo\.gl|t\.co|ow\.ly|is\.gd|buff\.ly|cutt\.ly|rebrand\.ly|shorturl\.at|"
    r"rb\.gy|tiny\.cc|t\.ly|s\.id|lnkd\.in|linktr\.ee|t\.me|wa\.me|v\.gd|qr\.co|shorte\.st|adf\.ly"
)


def _any(
    *patterns: tuple[str, tuple[str, ...]],
) -> tuple[tuple[re.Pattern[str], tuple[str, ...]], ...]:
    """Small patterns, each with the substrings one of which it cannot match without: a regular
    expression costs microseconds per text, a substring test nanoseconds, and most texts have no
    cue at all."""
    return tuple((re.compile(pattern), triggers) for pattern, triggers in patterns)


_TLD_TRIGGERS = tuple(f".{tld}" for tld in _TLDS.split("|"))


# kind → (weight, patterns, what the reason's sentence calls it). Texts are lower-cased first.
CUES: dict[str, tuple[float, tuple[tuple[re.Pattern[str], tuple[str, ...]], ...], str]] = {
    "shortener": (
        2.5,
        _any(
            (rf"(?<![\w.])(?:{_SHORTENERS})/\S*", ("/",)),
        ),
        "a link shortener",
    ),
    "link": (
        1.0,
        _any(
            (r"\bhttps?://\S+", ("http",)),
            (r"\bwww\.\S+", ("www.",)),
            (
                rf"(?<![\w@.-])[a-z0-9][a-z0-9-]*(?:\.[a-z0-9-]+)*\.(?:{_TLDS})\b(?:/\S*)?",
                _TLD_TRIGGERS,
            ),
        ),
        "a link",
    ),
    "contact": (
        1.5,
        _any(
            (r"\[(?:phone|email)\]", ("[phone]", "[email]")),
            (
                r"(?<![\w+])\+?\d[\d .\-]{8,}\d(?!\w)",
                ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
            ),
            (
                r"\b(?:whats\s?app|telegram|wechat|viber|kik|signal|snapchat|skype|discord)\b(?:\s+(?:me|us|at|on|group|channel|id|number))?",
                (
                    "whats",
                    "telegram",
                    "wechat",
                    "viber",
                    "kik",
                    "signal",
                    "snapchat",
                    "skype",
                    "discord",
                ),
            ),
            (
                r"\b(?:dm|pm|inbox|message|text|contact|email|e-mail|ping)\s+(?:me|us)\b",
                ("dm", "pm", "inbox", "message", "text", "contact", "mail", "ping"),
            ),
            (r"(?<![\w@.])@[a-z0-9_][a-z0-9_.]{2,}", ("@",)),
            (
                r"\b(?:text|txt|sms|send|reply)\s+\w{1,12}\s+to\s+\d{4,6}\b",
                ("text", "txt", "sms", "send", "reply"),
            ),
        ),
        "contact details",
    ),
    "self_promo": (
        2.5,
        _any(
            (
                r"\b(?:check\s*out|visit|subscribe\s+to|follow|see|watch|join)\s+(?:my|our)\s+"
                r"(?:new\s+)?(?:youtube\s+|instagram\s+|tiktok\s+|twitch\s+)?"
                r"(?:channel|page|profile|blog|website|web\s*site|site|store|shop|video|videos|music|insta|instagram|tiktok|youtube|group|server|account|stream|playlist)\b",
                ("my", "our"),
            ),
            (r"\blink\s+in\s+(?:my\s+)?(?:bio|profile|description)\b", ("link",)),
            (
                r"\b(?:sub4sub|f4f|follow\s+(?:for|4)\s+follow|follow\s+back|subscribe\s+(?:to\s+(?:me|us)|for\s+more))\b",
                ("subscribe", "sub4sub", "f4f", "follow"),
            ),
        ),
        "self-promotion",
    ),
    "call_to_action": (
        1.5,
        _any(
            (
                r"\b(?:click|tap)\s+(?:here|the\s+link|this\s+link|below|now|on\s+the\s+link)\b",
                ("click", "tap"),
            ),
            (
                r"\b(?:order|buy|shop|call|apply|act|book|download|register|sign\s*up|join|enroll|grab\s+it|play|bet|install)\s+(?:now|today)\b",
                ("now", "today"),
            ),
            (
                r"\b(?:call\s+(?:us|free)|(?:to\s+)?claim\s+(?:it|now|your|the)|to\s+claim|redeem|only\s+today|don'?t\s+miss|hurry|offer\s+(?:ends|expires)|please\s+subscribe|subscribe\s+now)\b",
                ("call", "claim", "redeem", "today", "miss", "hurry", "offer", "subscribe"),
            ),
            (r"\b(?:limited|for\s+a\s+limited)\s+(?:time|offer|spots)\b", ("limited",)),
            (
                r"\b(?:use\s+(?:my\s+)?(?:code|link|referral)|reply\s+(?:yes|stop|win)|sign\s+up\s+(?:free|with|for|at|here))\b",
                ("use", "reply", "sign"),
            ),
            (r"\b(?:visit|go\s+to|head\s+to)\s+(?:us|our|now)\b", ("visit", "go", "head")),
            (r"\bvisit\b(?=[^.!?\n]{0,40}(?:www\.|https?://|\.com\b))", ("visit",)),
        ),
        "a call to action",
    ),
    "money": (
        1.0,
        _any(
            (r"[£$€]\s?\d", ("£", "$", "€")),
            (
                r"\b\d[\d,.]*\s?(?:usd|dollars|euros?|pounds|gbp|k\s+a\s+(?:month|week))\b",
                ("usd", "dollar", "euro", "pound", "gbp", "month", "week"),
            ),
            (
                r"\b(?:prize|jackpot|lottery|giveaway|cash\s+reward|gift\s*card|voucher|coupon|promo(?:tion)?\s+code|discount\s+code|referral\s+code|free\s+spins|bonus)\b",
                (
                    "prize",
                    "jackpot",
                    "lottery",
                    "giveaway",
                    "cash",
                    "gift",
                    "voucher",
                    "coupon",
                    "promo",
                    "discount",
                    "referral",
                    "spins",
                    "bonus",
                ),
            ),
            (
                r"\b(?:you\s+(?:have\s+)?won|winner|congratulations|(?:been|were)\s+awarded)\b",
                ("won", "winner", "congratulations", "awarded"),
            ),
            (r"\b\d{1,3}\s?%\s?off\b", ("%",)),
            (
                r"\b(?:wholesale|cheap(?:est)?\s+(?:price|deals?)|best\s+(?:deals?|price|offer))\b",
                ("wholesale", "cheap", "best"),
            ),
        ),
        "prizes or prices",
    ),
    "scheme": (
        1.5,
        _any(
            (
                r"\b(?:earn|make|made|making)\s+(?:up\s+to\s+)?[£$€]?\d[\d,.]*k?\b",
                ("earn", "make", "made", "making"),
            ),
            (
                r"\b(?:work\s+from\s+home|passive\s+income|make\s+money|get\s+rich|financial\s+freedom|guaranteed\s+(?:returns?|profit|income))\b",
                ("work", "passive", "money", "rich", "freedom", "guaranteed"),
            ),
            (
                r"\b(?:bitcoin|btc|crypto(?:currency)?|ethereum|usdt|forex|binance|airdrop|nft|trading\s+signals?|staking)\b",
                (
                    "bitcoin",
                    "btc",
                    "crypto",
                    "ethereum",
                    "usdt",
                    "forex",
                    "binance",
                    "airdrop",
                    "nft",
                    "trading",
                    "staking",
                ),
            ),
            (
                r"\b(?:loan|mortgage|debt\s+relief|credit\s+(?:score|repair))\b",
                ("loan", "mortgage", "debt", "credit"),
            ),
        ),
        "money schemes or crypto",
    ),
    "goods": (
        1.5,
        _any(
            (
                r"\b(?:viagra|cialis|levitra|tramadol|xanax|oxycodone|pharmacy|without\s+(?:a\s+)?prescription|diet\s+pills?|fat\s+burner|weight\s+loss\s+(?:pills?|supplement)|keto\s+pills?|male\s+enhancement|enlargement)\b",
                (
                    "viagra",
                    "cialis",
                    "levitra",
                    "tramadol",
                    "xanax",
                    "oxycodone",
                    "pharmacy",
                    "prescription",
                    "pill",
                    "burner",
                    "supplement",
                    "enhancement",
                    "enlargement",
                ),
            ),
            (
                r"\b(?:hot\s+singles|sexy\s+(?:girls|women|singles)|escorts?|xxx|porn|webcam\s+(?:shows?|girls)|hook\s?up|sugar\s+daddy|dating\s+site)\b",
                ("singles", "sexy", "escort", "xxx", "porn", "webcam", "hook", "daddy", "dating"),
            ),
            (
                r"\b(?:replica\s+(?:watches|bags)|followers|views\s+and\s+likes|backlinks|seo\s+services|essay\s+writing|casino|slots|betting)\b",
                (
                    "replica",
                    "followers",
                    "likes",
                    "backlinks",
                    "seo",
                    "essay",
                    "casino",
                    "slots",
                    "betting",
                ),
            ),
        ),
        "pills, adult content or sold goods",
    ),
}
# Where an advertisement sends its reader (a link, a number or address, an account to follow).
# A text with none of these is never flagged, so the
# scan stops at a cheap test for them (one regular expression, a few microseconds).
DESTINATIONS = frozenset({"shortener", "link", "contact", "self_promo"})
_GATE_WORDS = (
    "http",
    "www.",
    "/",
    "[phone]",
    "[email]",
    "@",
    "whats",
    "telegram",
    "wechat",
    "viber",
    "kik",
    "signal",
    "snapchat",
    "skype",
    "discord",
    "subscri",
    "sub4sub",
    "f4f",
    "link in",
)
_GATE_TLD = re.compile(rf"\.(?:{_TLDS})\b")
_GATE_DIGITS = re.compile(r"\d[\d .\-]{8}|to\s+\d{4}")
_GATE_ASK = re.compile(
    r"\b(?:dm|pm|inbox|message|text|contact|e-?mail|ping)\s+(?:me|us)\b|\bfollow\s+(?:for|4|back)\b"
)
_GATE_OWN = re.compile(
    r"\b(?:my|our)\s+(?:new\s+)?(?:\w+\s+)?(?:channel|page|profile|blog|website|site|store|shop|video|music"
    r"|insta|tiktok|youtube|group|server|account|stream|playlist)"
)
_DIGIT = re.compile(r"\d")
_ASK_WORDS = ("dm ", "pm ", "inbox", "message", "text", "contact", "mail", "ping", "follow")
_OWN_WORDS = (
    "channel",
    "page",
    "profile",
    "blog",
    "site",
    "store",
    "shop",
    "video",
    "music",
    "insta",
    "tiktok",
    "youtube",
    "group",
    "server",
    "account",
    "stream",
    "playlist",
)


def _maybe_destination(lowered: str) -> bool:
    """False when TEXT cannot hold a destination: substring tests first, patterns only when needed."""
    if any(word in lowered for word in _GATE_WORDS) or _GATE_TLD.search(lowered):
        return True
    if _DIGIT.search(lowered) and _GATE_DIGITS.search(lowered):
        return True
    if any(word in lowered for word in _ASK_WORDS) and _GATE_ASK.search(lowered):
        return True
    return any(word in lowered for word in _OWN_WORDS) and _GATE_OWN.search(lowered) is not None


QUARANTINE_AT = {"rater": 2.5, "response": 4.0}
REJECT_AT = 5.5


@lru_cache(maxsize=8192)
def _scan(lowered: str) -> tuple[tuple[str, tuple[str, ...]], ...]:
    # The classifier's features and this filter scan the same texts: scan each once.
    found: list[tuple[str, tuple[str, ...]]] = []
    if not _maybe_destination(lowered):
        return ()
    for kind, (_, patterns, _) in CUES.items():
        snippets = tuple(
            m.group().strip()
            for pattern, triggers in patterns
            if any(t in lowered for t in triggers)
            for m in pattern.finditer(lowered)
        )
        if snippets:
            found.append((kind, snippets))
    return tuple(found)


def cues(text: str, *, already: str = "") -> dict[str, str]:
    """Kind → the first snippet (lower-cased) of that kind in TEXT, skipping snippets that ALREADY
    contains (an edit is judged on what it added)."""
    found: dict[str, str] = {}
    before = already.lower()
    for kind, snippets in _scan(text.lower()):
        fresh = [snippet for snippet in snippets if not (before and snippet in before)]
        if fresh:
            found[kind] = fresh[0]
    if "shortener" in found:  # a shortener is also a link: count it once, as the stronger
        found.pop("link", None)
    return found


def weigh(found: dict[str, str]) -> float:
    return sum(CUES[kind][0] for kind in found)


def _sentence(what: str, found: dict[str, str]) -> str:
    parts = [f"{CUES[kind][2]} ({snippet[:40]!r})" for kind, snippet in found.items()]
    return f"The {what} advertises: " + ", ".join(parts) + "."


class AdvertisingFilter(Filter):
    name = "advertising"
    version = "1"

    def check(self, ctx: Context) -> FilterResult:
        texts = ctx.event.texts
        candidates = [("comment", texts.comment, "", "rater")]
        if ctx.event.type == "edit":
            candidates.append(("edited reply", texts.edited, texts.original, "rater"))
        else:
            for index, (_, response) in enumerate(texts.responses):
                what = "response" if len(texts.responses) == 1 else f"response {index + 1}"
                candidates.append((what, response, "", "response"))
        worst: tuple[float, str, dict[str, str], str] | None = None
        for what, text, already, kind in candidates:
            if not text:
                continue
            found = cues(text, already=already)
            weight = weigh(found)
            if weight >= QUARANTINE_AT[kind] and DESTINATIONS.intersection(found):
                if worst is None or weight > worst[0]:
                    worst = (weight, what, found, kind)
        if worst is None:
            return FilterResult(action=PASS)
        weight, what, found, kind = worst
        action = REJECT if weight >= REJECT_AT and kind == "rater" else QUARANTINE
        code = (
            "advertising.link"
            if {"link", "shortener"} & set(found)
            else ("advertising.contact" if "contact" in found else "advertising.promotion")
        )
        return FilterResult(
            action=action,
            score=min(1.0, 0.5 + weight / 10),
            reasons=[Reason(code, _sentence(what, found))],
        )


FILTER = AdvertisingFilter()
