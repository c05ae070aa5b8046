"""The leaderboard: ratings with intervals, ranks, groups and warnings, as one JSON object.

`leaderboard_compute(settings)` reads the aggregated battles of a slice from the database and
`leaderboard_from_counts(counts, settings)` does the rest, so the command, the API, the page, the
tests and the benchmark all print the very same object:

    {"models": [{"model", "rating", "lower", "upper", "rank", "battles", "wins", "losses", "ties",
                 "group", "flags", "reliable", ["online_elo"]}],
     "groups": [{"group", "models", "battles"}], "pairs": [...], "warnings": [...],
     "method": {...}, "settings": {...}, "battles": n}

Honesty rules: ratings are fitted per connected part of the comparison graph (`group`); numbers
from different groups are not comparable and a warning says so. A model that only ever won or
only ever lost (`one_sided`), a set of models that never lost a point to the rest of its group
(`separated`: its maximum-likelihood rating is infinite) and a model with fewer than
`min_battles` battles (`few_battles`) carry flags and `reliable: false`; the table prints their
rating with a question mark and the page greys them out.
"""

from __future__ import annotations

import importlib
import math
import sys
import threading
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from django.conf import settings as django_settings

from apps.evaluation import ratings as R
from apps.evaluation.selectors import (
    BattleFilter,
    battle_counts,
    battle_lengths,
    battle_sequence,
    battles_left_out,
)

DEFAULT_BOOTSTRAP = 1000
WARM_MODULES = ("scipy.optimize", "scipy.sparse.csgraph", "threadpoolctl")
DEFAULT_MIN_BATTLES = 20


def default_min_battles() -> int:
    return int(getattr(django_settings, "EVALUATION_MIN_BATTLES", DEFAULT_MIN_BATTLES))


@dataclass(frozen=True)
class LeaderboardSettings:
    filter: BattleFilter = field(default_factory=BattleFilter)
    bootstrap: int = DEFAULT_BOOTSTRAP  # rounds; 0 for no intervals
    seed: int = 0
    confidence: float = 0.95
    anchor: tuple[str, float] | None = None  # (model, rating)
    style_control: bool = False
    min_battles: int = DEFAULT_MIN_BATTLES
    online_elo_k: float | None = None  # also compute online Elo with this K
    exact: bool = False  # exact MLE point estimate instead of FastChat's L-BFGS stop

    def as_dict(self) -> dict[str, Any]:
        out = asdict(self)
        out.update(self.filter.as_dict())
        del out["filter"]
        out["anchor"] = {"model": self.anchor[0], "rating": self.anchor[1]} if self.anchor else None
        return out


def _round(value: float | None, digits: int = 2) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return round(float(value), digits)


def leaderboard_compute(settings: LeaderboardSettings) -> dict[str, Any]:
    """The leaderboard of the slice SETTINGS.filter, from the database."""
    f = settings.filter
    warming = _warm_imports()
    if settings.style_control:
        counts = style_counts(battle_lengths(f))
    else:
        counts = R.counts_from_rows(battle_counts(f))
    sequence = battle_sequence(f) if settings.online_elo_k else None
    left_out = battles_left_out(f)
    if warming is not None:
        warming.join()
    board = leaderboard_from_counts(counts, settings, sequence=sequence)
    board["left_out"] = left_out
    return board


def _warm_imports() -> threading.Thread | None:
    """Import the fit's scipy and threadpoolctl parts on a thread while the database
    aggregates (the wait for it releases the GIL): they take a third of a second to import,
    which a fresh `manage.py leaderboard` process would otherwise wait for after the query.
    None when they are already loaded (a web worker after its first leaderboard)."""
    if all(name in sys.modules for name in WARM_MODULES):
        return None

    def load() -> None:
        for name in WARM_MODULES:
            importlib.import_module(name)

    thread = threading.Thread(target=load, name="leaderboard-imports", daemon=True)
    thread.start()
    return thread


def style_counts(battles: Any) -> R.Counts:
    """Counts keyed by a length covariate, FastChat's style control reduced to length:
    x = (len_a - len_b) / (len_a + len_b), binned to 0.01 so rows still aggregate, then
    standardized (mean 0, standard deviation 1) over the battles."""
    acc: dict[tuple[str, str, str, float], int] = {}
    for model_a, model_b, outcome, len_a, len_b in battles:
        total = len_a + len_b
        x = round((len_a - len_b) / total, 2) if total else 0.0
        key = (model_a, model_b, outcome, x)
        acc[key] = acc.get(key, 0) + 1
    counts = R.counts_from_rows(((a, b, o, n, x) for (a, b, o, x), n in acc.items()), with_x=True)
    if counts.x is not None and len(counts.x):
        mean = float(np.average(counts.x, weights=counts.count))
        std = float(np.sqrt(np.average((counts.x - mean) ** 2, weights=counts.count)))
        counts.x = (counts.x - mean) / (std if std > 0 else 1.0)
    return counts


def _side_counts(counts: R.Counts) -> dict[str, np.ndarray]:
    m = len(counts.models)
    wins, losses, ties = np.zeros(m), np.zeros(m), np.zeros(m)
    for who, score_if_win in ((counts.a, 1.0), (counts.b, 0.0)):
        np.add.at(wins, who, np.where(counts.score == score_if_win, counts.count, 0.0))
        np.add.at(losses, who, np.where(counts.score == 1.0 - score_if_win, counts.count, 0.0))
        np.add.at(ties, who, np.where(counts.score == 0.5, counts.count, 0.0))
    return {"wins": wins, "losses": losses, "ties": ties, "battles": wins + losses + ties}


def _pairs(counts: R.Counts) -> list[dict[str, Any]]:
    acc: dict[tuple[int, int], list[float]] = {}
    for a, b, s, n in zip(
        counts.a.tolist(),
        counts.b.tolist(),
        counts.score.tolist(),
        counts.count.tolist(),
        strict=True,
    ):
        lo, hi = (a, b) if a < b else (b, a)
        s_lo = s if a < b else 1.0 - s
        row = acc.setdefault((lo, hi), [0.0, 0.0, 0.0])
        row[0 if s_lo == 1.0 else 1 if s_lo == 0.0 else 2] += n
    return [
        {
            "model_a": counts.models[lo],
            "model_b": counts.models[hi],
            "battles": int(sum(row)),
            "a_wins": int(row[0]),
            "b_wins": int(row[1]),
            "ties": int(row[2]),
        }
        for (lo, hi), row in sorted(acc.items())
    ]


def leaderboard_from_counts(
    counts: R.Counts,
    settings: LeaderboardSettings,
    *,
    sequence: list[tuple[str, str, str]] | None = None,
) -> dict[str, Any]:
    warnings: list[str] = []
    for reason, n in sorted(counts.dropped.items()):
        warnings.append(f"{n} battle(s) left out: {reason}.")
    style = counts.x is not None
    method: dict[str, Any] = {
        "name": "bradley-terry",
        "estimate": "maximum likelihood (Newton, exact)"
        if settings.exact or style
        else "maximum likelihood (L-BFGS-B from zero, gtol 1e-6, as FastChat's compute_bt)",
        "scale": R.SCALE,
        "base": R.BASE,
        "initial": R.INITIAL,
        "ties": "half a win to each side; both_bad is a tie",
        "intervals": (
            f"bootstrap percentile {settings.confidence:.0%}, {settings.bootstrap} rounds, "
            "multinomial over the unique (model_a, model_b, outcome) counts, all rounds "
            "solved together by batched Newton"
            if settings.bootstrap
            else None
        ),
        "rank": "1 + number of models in the group whose lower bound is above this one's upper bound",
        "groups": "connected parts of the comparison graph, each fitted on its own (mean 1000)",
        "style_control": None,
    }
    result: dict[str, Any] = {
        "models": [],
        "groups": [],
        "pairs": _pairs(counts),
        "warnings": warnings,
        "method": method,
        "settings": settings.as_dict(),
        "battles": counts.total,
    }
    if counts.total == 0:
        warnings.append("No usable battles in this slice: nothing to rate.")
        return result
    if settings.bootstrap and settings.bootstrap < 100:
        warnings.append(f"Only {settings.bootstrap} bootstrap rounds: the intervals are rough.")

    side = _side_counts(counts)
    groups = R.components(counts)
    if len(groups) > 1:
        warnings.append(
            f"The comparison graph falls into {len(groups)} groups that never met; ratings are "
            "comparable only within one group (each group is centred on 1000 on its own)."
        )
    elo = None
    if sequence is not None:
        elo = R.online_elo(sequence, k=settings.online_elo_k or 4.0)
    if elo is not None:
        method["online_elo"] = {"k": settings.online_elo_k or 4.0, "order": "time, then event id"}
    anchor_found = False
    rows: list[dict[str, Any]] = []
    style_out: list[dict[str, Any]] = []
    for number, members in enumerate(groups, 1):
        names = [counts.models[i] for i in members]
        sub = R.subset(counts, names)
        fit = R.fit_bt(
            sub,
            bootstrap=settings.bootstrap,
            seed=settings.seed,
            confidence=settings.confidence,
            exact=settings.exact,
        )
        if fit.style_coef is not None:
            style_out.append(
                {
                    "group": number,
                    "coefficient": _round(fit.style_coef, 4),
                    "elo_per_sd": _round(fit.style_coef / math.log(R.BASE) * R.SCALE),
                    "lower": _round(
                        None
                        if fit.style_lower is None
                        else fit.style_lower / math.log(R.BASE) * R.SCALE
                    ),
                    "upper": _round(
                        None
                        if fit.style_upper is None
                        else fit.style_upper / math.log(R.BASE) * R.SCALE
                    ),
                }
            )
        flags: dict[str, list[str]] = {name: [] for name in sub.models}
        parts = R.dominance_parts(sub) if len(sub.models) > 1 else [list(range(len(sub.models)))]
        if len(parts) > 1:
            biggest = len(parts[0])
            unique_biggest = len(parts) == 1 or len(parts[1]) < biggest
            for k, part in enumerate(parts):
                if k == 0 and unique_biggest and biggest > 1:
                    continue
                for i in part:
                    name = sub.models[i]
                    g = counts.models.index(name)
                    one_sided = side["ties"][g] == 0 and (
                        side["wins"][g] == 0 or side["losses"][g] == 0
                    )
                    flags[name].append("one_sided" if one_sided else "separated")
            warnings.append(
                f"Group {number}: some models never lost (or never won) a point against the rest, "
                "so their maximum-likelihood rating is unbounded; they are flagged and their "
                "numbers are not real ratings."
            )
        bounded = [i for i, name in enumerate(sub.models) if not flags[name]]
        if bounded and len(bounded) < len(sub.models):
            R.recentre(fit, bounded)
        if settings.anchor and settings.anchor[0] in sub.models:
            R.anchor_shift(fit, settings.anchor[0], settings.anchor[1])
            anchor_found = True
        lower = fit.lower if fit.lower is not None else fit.ratings
        upper = fit.upper if fit.upper is not None else fit.ratings
        ranks = R.ranks_by_interval(lower, upper)
        for i, name in enumerate(sub.models):
            g = counts.models.index(name)
            battles = int(side["battles"][g])
            if battles < settings.min_battles:
                flags[name].append("few_battles")
            row = {
                "model": name,
                "rating": _round(fit.ratings[i]),
                "lower": _round(fit.lower[i]) if fit.lower is not None else None,
                "upper": _round(fit.upper[i]) if fit.upper is not None else None,
                "rank": int(ranks[i]),
                "battles": battles,
                "wins": int(side["wins"][g]),
                "losses": int(side["losses"][g]),
                "ties": int(side["ties"][g]),
                "win_rate": _round((side["wins"][g] + 0.5 * side["ties"][g]) / battles, 4)
                if battles
                else None,
                "group": number,
                "flags": flags[name],
                "reliable": not flags[name],
            }
            if elo is not None:
                row["online_elo"] = _round(elo.get(name))
            rows.append(row)
        result["groups"].append(
            {
                "group": number,
                "models": sorted(names, key=lambda n: -fit.ratings[sub.models.index(n)]),
                "battles": int(sub.count.sum()),
            }
        )
    few = sorted(r["model"] for r in rows if "few_battles" in r["flags"])
    if few:
        warnings.append(
            f"Fewer than {settings.min_battles} battles: {', '.join(few)}; their ratings are "
            "not reliable."
        )
    if settings.anchor and not anchor_found:
        warnings.append(f"Anchor model {settings.anchor[0]!r} has no battles here; not anchored.")
    elif settings.anchor and len(groups) > 1:
        warnings.append(
            "The anchor pins only its own group; the other groups stay centred on 1000."
        )
    if style:
        method["style_control"] = {
            "covariate": "(len_a - len_b) / (len_a + len_b) of the two replies, binned to 0.01, "
            "standardized",
            "effect": style_out,
        }
    rows.sort(key=lambda r: (r["group"], -(r["rating"] or 0.0)))
    result["models"] = rows
    return result


LEFT_OUT_REASONS = {
    "waiting": "waiting for a verdict (no worker has judged them yet)",
    "rejected": "rejected by the quality filters",
    "quarantined": "held for review (--include-quarantined counts them)",
    "low_trust": "under --min-trust",
    "forgotten": "of forgotten raters",
    "revised": "revised by a later vote (only the latest revision counts)",
    "meta": "outside --meta",
}


def format_table(board: dict[str, Any]) -> str:
    """The leaderboard as a plain text table (the command's default output)."""
    lines = []
    with_elo = any("online_elo" in m for m in board["models"])
    header = f"{'rank':>4}  {'model':<32} {'rating':>9} {'95% interval':>19} {'battles':>8}"
    if with_elo:
        header += f" {'elo':>8}"
    header += "  group  flags"
    lines.append(header)
    for m in board["models"]:
        rating = f"{m['rating']:.1f}" + ("" if m["reliable"] else " ?")
        interval = f"{m['lower']:.1f} – {m['upper']:.1f}" if m["lower"] is not None else "—"
        line = f"{m['rank']:>4}  {m['model'][:32]:<32} {rating:>9} {interval:>19} {m['battles']:>8}"
        if with_elo:
            line += f" {m['online_elo'] or 0:>8.1f}"
        line += f"  {m['group']:>5}  {','.join(m['flags'])}"
        lines.append(line)
    lines.append(f"{board['battles']} battles, {len(board['groups'])} group(s).")
    left_out = board.get("left_out") or {}
    if left_out:
        parts = [f"{n} {LEFT_OUT_REASONS.get(reason, reason)}" for reason, n in left_out.items()]
        lines.append(f"left out: {sum(left_out.values())} battles ({'; '.join(parts)})")
    for warning in board["warnings"]:
        lines.append(f"warning: {warning}")
    return "\n".join(lines)
