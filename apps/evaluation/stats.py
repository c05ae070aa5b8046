"""Small, dependency-free statistics for rates and A/B verdicts.

Everything here is plain Python (``statistics.NormalDist`` for the normal quantiles) so the web
process can import it without numpy or scipy. The A/B experiments (apps.serving) and the thumbs-up
charts (apps.evaluation.selectors) share these functions, so a rate printed on one page and a
verdict given on another always agree.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from statistics import NormalDist

_NORMAL = NormalDist()


def z_value(confidence: float = 0.95) -> float:
    """The two-sided normal quantile for ``confidence`` (1.959964 for 0.95)."""
    if not 0.0 < confidence < 1.0:
        raise ValueError("confidence must be strictly between 0 and 1")
    return _NORMAL.inv_cdf(1.0 - (1.0 - confidence) / 2.0)


def wilson_interval(
    successes: float, n: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """The Wilson score interval for a proportion: ``(p, lower, upper)``.

    Wilson rather than the normal ("Wald") interval because it stays inside [0, 1] and keeps its
    coverage for small n and rates near 0 or 1, which is exactly where a fresh checkpoint sits.
    With ``n == 0`` nothing is known: ``p`` is ``nan`` and the interval is the whole ``(0, 1)``.
    ``successes`` may be fractional (ties counted as half a win).
    """
    if n < 0 or successes < 0 or successes > n:
        raise ValueError("need 0 <= successes <= n")
    if n == 0:
        return (math.nan, 0.0, 1.0)
    z = z_value(confidence)
    p = successes / n
    z2 = z * z
    denom = 1.0 + z2 / n
    center = (p + z2 / (2.0 * n)) / denom
    half = z * math.sqrt(p * (1.0 - p) / n + z2 / (4.0 * n * n)) / denom
    lower = 0.0 if successes == 0 else max(0.0, center - half)
    upper = 1.0 if successes == n else min(1.0, center + half)
    return (p, lower, upper)


def diff_interval(
    s1: float, n1: float, s2: float, n2: float, confidence: float = 0.95
) -> tuple[float, float, float]:
    """Newcombe's hybrid score interval for ``p2 - p1``: ``(diff, lower, upper)``.

    Built from the two Wilson intervals (Newcombe 1998, method 10), so it inherits their good
    small-sample behaviour. With an empty arm the difference is unknown: ``(nan, -1, 1)``.
    """
    if n1 == 0 or n2 == 0:
        return (math.nan, -1.0, 1.0)
    p1, l1, u1 = wilson_interval(s1, n1, confidence)
    p2, l2, u2 = wilson_interval(s2, n2, confidence)
    d = p2 - p1
    lower = d - math.sqrt((p2 - l2) ** 2 + (u1 - p1) ** 2)
    upper = d + math.sqrt((u2 - p2) ** 2 + (p1 - l1) ** 2)
    return (d, max(-1.0, lower), min(1.0, upper))


def two_proportion_ztest(s1: float, n1: float, s2: float, n2: float) -> tuple[float, float]:
    """Pooled two-sided z-test of ``p1 == p2``: ``(z, p_value)``; ``(0, 1)`` when undecidable."""
    if n1 == 0 or n2 == 0:
        return (0.0, 1.0)
    pooled = (s1 + s2) / (n1 + n2)
    var = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if var <= 0:
        return (0.0, 1.0)
    z = (s2 / n2 - s1 / n1) / math.sqrt(var)
    return (z, 2.0 * (1.0 - _NORMAL.cdf(abs(z))))


def events_needed(p1: float, p2: float, confidence: float = 0.95, power: float = 0.8) -> int:
    """Events needed *per arm* for a two-sided two-proportion z-test to tell ``p1`` from ``p2``.

    The classic formula (Fleiss): n = (z_a * sqrt(2 p q) + z_b * sqrt(p1 q1 + p2 q2))^2 / (p1-p2)^2
    with p the mean of p1 and p2. Equal rates cannot be told apart by any finite sample: the
    answer is then the sentinel ``NO_FINITE_N`` (a large int, not ``inf``), so callers can
    compare and subtract without special cases; show it as "unreachable".
    """
    for name, value in (("p1", p1), ("p2", p2)):
        if not 0.0 <= value <= 1.0 or math.isnan(value):
            raise ValueError(f"{name} must be a proportion in [0, 1]")
    if not 0.0 < power < 1.0:
        raise ValueError("power must be strictly between 0 and 1")
    delta = abs(p1 - p2)
    if delta < 1e-12:
        return NO_FINITE_N
    z_a = z_value(confidence)
    z_b = _NORMAL.inv_cdf(power)
    p_bar = (p1 + p2) / 2.0
    n = (
        z_a * math.sqrt(2.0 * p_bar * (1.0 - p_bar))
        + z_b * math.sqrt(p1 * (1.0 - p1) + p2 * (1.0 - p2))
    ) ** 2 / delta**2
    return min(NO_FINITE_N, max(1, math.ceil(n)))


#: What ``events_needed`` answers when the two rates are equal (no finite sample decides).
NO_FINITE_N = 10**12


@dataclass(frozen=True)
class ProportionComparison:
    """The numbers an A/B verdict rests on, arm 1 (control) against arm 2 (treatment)."""

    n1: float
    n2: float
    p1: float
    p2: float
    diff: float
    diff_lower: float
    diff_upper: float
    z: float
    p_value: float
    #: per-arm events the test needs at the observed rates (or at ``min_effect``)
    needed_per_arm: int
    #: events still missing in the smaller arm (0 once enough)
    remaining: int
    #: "better" (arm 2 wins), "worse" (arm 2 loses), "no_difference" (enough data, the interval
    #: excludes ``min_effect`` both ways), or "inconclusive"
    verdict: str

    def as_dict(self) -> dict:
        return asdict(self)


def compare_proportions(
    s1: float,
    n1: float,
    s2: float,
    n2: float,
    *,
    confidence: float = 0.95,
    power: float = 0.8,
    min_effect: float = 0.0,
) -> ProportionComparison:
    """Compare two success rates and give a verdict for arm 2 against arm 1.

    The verdict is decided by the Newcombe interval for ``p2 - p1``: entirely above zero is
    "better", entirely below is "worse". With ``min_effect``
    > 0 an interval lying wholly inside ``(-min_effect, min_effect)`` is "no_difference". Anything
    else is "inconclusive", with ``remaining`` telling how many more events the smaller arm needs
    for the chosen power at the observed rates (or at ``p1 + min_effect`` when the observed gap
    is smaller than ``min_effect``).
    """
    p1 = s1 / n1 if n1 else math.nan
    p2 = s2 / n2 if n2 else math.nan
    diff, lower, upper = diff_interval(s1, n1, s2, n2, confidence)
    z, p_value = two_proportion_ztest(s1, n1, s2, n2)
    if n1 and n2:
        target = p2
        if min_effect > 0 and abs(p2 - p1) < min_effect:
            target = p1 + min_effect if p1 + min_effect <= 1.0 else p1 - min_effect
        needed = events_needed(p1, target, confidence, power)
    else:
        base = p1 if n1 else (p2 if n2 else 0.5)
        effect = min_effect or 0.05
        target = base + effect if base + effect <= 1.0 else base - effect
        needed = events_needed(base, target, confidence, power)
    remaining = max(0, needed - math.floor(min(n1, n2)))
    if n1 and n2 and lower > 0.0:
        verdict = "better"
    elif n1 and n2 and upper < 0.0:
        verdict = "worse"
    elif n1 and n2 and min_effect > 0 and -min_effect < lower and upper < min_effect:
        verdict = "no_difference"
    else:
        verdict = "inconclusive"
    return ProportionComparison(
        n1=n1,
        n2=n2,
        p1=p1,
        p2=p2,
        diff=diff,
        diff_lower=lower,
        diff_upper=upper,
        z=z,
        p_value=p_value,
        needed_per_arm=needed,
        remaining=remaining,
        verdict=verdict,
    )
