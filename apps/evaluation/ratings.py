"""Ratings from pairwise battles: Bradley-Terry by Newton, bootstrap intervals, online Elo.

Plain numpy, no Django: the leaderboard (apps.evaluation.leaderboard) feeds it aggregated outcome
counts straight from the database, and the benchmark and the tests feed it in-memory battles.

Conventions are FastChat's (Chatbot Arena): scale 400, base 10, initial rating 1000, so that
P(a beats b) = 1 / (1 + 10 ** ((R_b - R_a) / 400)); a tie counts half a win to each side (the
likelihood treats outcome 0.5 as half a win and half a loss), and `both_bad` is a tie.

Speed comes from two facts. (1) The likelihood depends on the battles only through the count of
each (model_a, model_b, outcome) triple, so the data is aggregated once (GROUP BY in SQL) and
further reduced to one (n, wins) per unordered pair. (2) A bootstrap round only changes those
counts (a multinomial draw over the unique triples, as FastChat does), so all rounds are drawn
at once (`multinomial_rounds`: Poisson counts corrected to the exact multinomial) and solved
together, warm-started from the full-data fit: one Newton step for every round at once is a
batch of small symmetric solves (`numpy.linalg.solve` over a [rounds, models, models] stack of
graph Laplacians), and three steps converge. Rounds go in chunks that stay in cache, on one
BLAS thread (many small solves gain nothing from more, and lose much on a busy machine).

A tiny ridge (`RIDGE`, 1e-6 per model) keeps every solve well posed: it pins the free shift of
each fit at mean 0 (what FastChat's L-BFGS started from zero also does, since the gradient sums
to zero) and keeps a model that only ever wins (whose maximum-likelihood rating is infinite) at a
large finite number, which the leaderboard then flags rather than prints as a real rating.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

SCALE = 400.0
BASE = 10.0
INITIAL = 1000.0
RIDGE = 1e-6
# Bootstrap rounds go in chunks of CHUNK_CELLS / models**2, so that a chunk's Hessians (4 MB)
# and per-pair arrays stay in cache: twice as fast as all 1,000 rounds at once.
CHUNK_CELLS = 500_000
OUTCOME_SCORE = {"a": 1.0, "b": 0.0, "tie": 0.5, "both_bad": 0.5}
# FastChat's names for the same outcomes
OUTCOME_SCORE.update({"model_a": 1.0, "model_b": 0.0, "tie (bothbad)": 0.5})


@dataclass
class Counts:
    """Aggregated battles: unique (a, b, score) rows with how often each happened.

    `a`/`b` index `models` (sorted names); `score` is 1 (a won), 0.5 (tie) or 0 (b won); `x` is
    the style covariate of the row when style control is on (else None)."""

    models: list[str]
    a: np.ndarray
    b: np.ndarray
    score: np.ndarray
    count: np.ndarray
    x: np.ndarray | None = None
    dropped: dict[str, int] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return int(self.count.sum())


def counts_from_rows(rows: Iterable[Sequence], *, with_x: bool = False) -> Counts:
    """Aggregate rows of (model_a, model_b, outcome, count[, x]) — the shape a SQL GROUP BY
    gives. Outcomes are 'a', 'b', 'tie', 'both_bad' (or FastChat's 'model_a', …). A battle of a
    model with itself, or with an unnamed model, says nothing about ratings: it is dropped and
    counted in `dropped`."""
    acc: dict[tuple, float] = {}
    dropped: dict[str, int] = {}
    for row in rows:
        model_a, model_b, outcome, n = row[0], row[1], row[2], row[3]
        if not model_a or not model_b:
            dropped["unnamed model"] = dropped.get("unnamed model", 0) + int(n)
            continue
        if model_a == model_b:
            dropped["model against itself"] = dropped.get("model against itself", 0) + int(n)
            continue
        score = OUTCOME_SCORE.get(outcome)
        if score is None:
            dropped[f"outcome {outcome!r}"] = dropped.get(f"outcome {outcome!r}", 0) + int(n)
            continue
        key = (model_a, model_b, score, float(row[4]) if with_x else 0.0)
        acc[key] = acc.get(key, 0.0) + float(n)
    models = sorted({k[0] for k in acc} | {k[1] for k in acc})
    index = {m: i for i, m in enumerate(models)}
    keys = sorted(acc)  # a canonical order: the bootstrap draws must not depend on row order
    return Counts(
        models=models,
        a=np.array([index[k[0]] for k in keys], dtype=np.int64),
        b=np.array([index[k[1]] for k in keys], dtype=np.int64),
        score=np.array([k[2] for k in keys], dtype=np.float64),
        count=np.array([acc[k] for k in keys], dtype=np.float64),
        x=np.array([k[3] for k in keys], dtype=np.float64) if with_x else None,
        dropped=dropped,
    )


def counts_from_battles(
    model_a: Sequence[str], model_b: Sequence[str], outcome: Sequence[str]
) -> Counts:
    """Aggregate individual battles (three parallel sequences) in memory."""
    acc: dict[tuple[str, str, str], int] = {}
    for key in zip(model_a, model_b, outcome, strict=True):
        acc[key] = acc.get(key, 0) + 1
    return counts_from_rows((*k, n) for k, n in acc.items())


def subset(counts: Counts, models: Sequence[str]) -> Counts:
    """The rows among MODELS only, re-indexed (one connected group of the comparison graph)."""
    keep_names = sorted(models)
    old = np.array([counts.models.index(m) for m in keep_names], dtype=np.int64)
    remap = np.full(len(counts.models), -1, dtype=np.int64)
    remap[old] = np.arange(len(old))
    mask = (remap[counts.a] >= 0) & (remap[counts.b] >= 0)
    return Counts(
        models=keep_names,
        a=remap[counts.a[mask]],
        b=remap[counts.b[mask]],
        score=counts.score[mask],
        count=counts.count[mask],
        x=None if counts.x is None else counts.x[mask],
    )


# --- the comparison graph ------------------------------------------------------------------


def components(counts: Counts) -> list[list[int]]:
    """Connected parts of the comparison graph (model indices), largest first."""
    parent = list(range(len(counts.models)))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(counts.a.tolist(), counts.b.tolist(), strict=True):
        ri, rj = find(i), find(j)
        if ri != rj:
            parent[ri] = rj
    groups: dict[int, list[int]] = {}
    for i in range(len(counts.models)):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values(), key=lambda g: (-len(g), g))


def dominance_parts(counts: Counts) -> list[list[int]]:
    """Strongly connected parts of the "took at least half a point from" graph.

    The maximum-likelihood ratings of a connected group are finite only when this graph is
    strongly connected: if some set of models never lost a point to the rest, its ratings run
    off to infinity. Each part (largest first) can be rated only against the others in it."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components

    m = len(counts.models)
    a_scored = counts.score > 0  # a took points from b
    b_scored = counts.score < 1
    rows = np.concatenate([counts.a[a_scored], counts.b[b_scored]])
    cols = np.concatenate([counts.b[a_scored], counts.a[b_scored]])
    graph = coo_matrix((np.ones(len(rows)), (rows, cols)), shape=(m, m)).tocsr()
    n, labels = connected_components(graph, directed=True, connection="strong")
    parts: dict[int, list[int]] = {}
    for i, label in enumerate(labels.tolist()):
        parts.setdefault(label, []).append(i)
    return sorted(parts.values(), key=lambda g: (-len(g), g))


# --- Bradley-Terry ----------------------------------------------------------------------


@dataclass
class _Design:
    """The rows of a fit grouped by unordered pair (lo < hi), for the batched solver."""

    m: int
    lo: np.ndarray  # [P]
    hi: np.ndarray  # [P]
    order: np.ndarray  # rows sorted by pair
    starts: np.ndarray  # first sorted row of each pair
    pair_of_row: np.ndarray  # [U] pair index of each sorted row
    score_lo: np.ndarray  # [U] the lower-index model's score in each sorted row
    x_lo: np.ndarray | None  # [U] style covariate from the lower-index model's side
    incidence: np.ndarray  # [P, M]: +1 at lo, -1 at hi


def _design(counts: Counts) -> _Design:
    m = len(counts.models)
    lo = np.minimum(counts.a, counts.b)
    hi = np.maximum(counts.a, counts.b)
    flipped = counts.a > counts.b
    key = lo * m + hi
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    starts = np.flatnonzero(np.r_[True, sorted_key[1:] != sorted_key[:-1]])
    pair_of_row = np.cumsum(np.r_[False, sorted_key[1:] != sorted_key[:-1]])
    p_lo, p_hi = lo[order][starts], hi[order][starts]
    incidence = np.zeros((len(starts), m))
    incidence[np.arange(len(starts)), p_lo] = 1.0
    incidence[np.arange(len(starts)), p_hi] = -1.0
    score_lo = np.where(flipped, 1.0 - counts.score, counts.score)[order]
    x_lo = None
    if counts.x is not None:
        x_lo = np.where(flipped, -counts.x, counts.x)[order]
    return _Design(m, p_lo, p_hi, order, starts, pair_of_row, score_lo, x_lo, incidence)


def _solve_batch(
    design: _Design,
    weights: np.ndarray,
    *,
    alpha: float,
    ridge: float = RIDGE,
    max_iter: int = 100,
    tol: float = 1e-7,
) -> tuple[np.ndarray, np.ndarray | None]:
    """Newton's method on the (ridged) Bradley-Terry log-likelihood for every row of WEIGHTS
    ([R, U] counts of the sorted rows) at once, from zero: the full-data fit, and the bootstrap
    rounds with style control (without it, `_newton_rounds` is faster). Returns ratings [R, M]
    on the natural scale (logit = alpha * (r_a - r_b) + gamma * x) and, with style control,
    gamma [R].

    Stops when the largest step is below TOL (1e-7, i.e. 4e-5 rating points) or has reached
    the floating-point noise floor (a million counts leave steps of ~1e-9 that never vanish)."""
    d = design
    style = d.x_lo is not None
    if not style:  # rows collapse to one (n, wins) per pair
        n_pair = np.add.reduceat(weights, d.starts, axis=1)
        s_pair = np.add.reduceat(weights * d.score_lo, d.starts, axis=1)
    else:
        wins = weights * d.score_lo  # [R, U]
    rounds, m = (n_pair if not style else weights).shape[0], d.m
    k = m + 1 if style else m
    previous = math.inf
    theta = np.zeros((rounds, m))
    gamma = np.zeros(rounds)
    idx = np.arange(m)
    abs_inc = np.abs(d.incidence)
    for _ in range(max_iter):
        diff = np.take(theta, d.lo, axis=1) - np.take(theta, d.hi, axis=1)  # [R, P]
        if style:
            z = alpha * diff[:, d.pair_of_row] + gamma[:, None] * d.x_lo
            p = 1.0 / (1.0 + np.exp(-z))
            resid_rows = wins - weights * p
            w_rows = weights * p * (1.0 - p)
            resid = np.add.reduceat(resid_rows, d.starts, axis=1)
            w = np.add.reduceat(w_rows, d.starts, axis=1)
        else:
            p = 1.0 / (1.0 + np.exp(-alpha * diff))
            resid = s_pair - n_pair * p
            w = n_pair * p * (1.0 - p)
        hess = np.zeros((rounds, k, k))
        grad = np.zeros((rounds, k))
        grad[:, :m] = alpha * (resid @ d.incidence) - ridge * theta
        wa = (alpha * alpha) * w
        hess[:, d.lo, d.hi] = -wa
        hess[:, d.hi, d.lo] = -wa
        hess[:, idx, idx] = wa @ abs_inc + ridge
        if style:
            grad[:, m] = (resid_rows * d.x_lo).sum(axis=1) - ridge * gamma
            cross = alpha * (np.add.reduceat(w_rows * d.x_lo, d.starts, axis=1) @ d.incidence)
            hess[:, :m, m] = cross
            hess[:, m, :m] = cross
            hess[:, m, m] = (w_rows * d.x_lo * d.x_lo).sum(axis=1) + ridge
        step = np.linalg.solve(hess, grad[:, :, None])[:, :, 0]
        # A cap keeps a near-separated round from overshooting; it binds only far from the optimum.
        biggest = np.abs(step).max(axis=1, keepdims=True)
        step *= np.minimum(1.0, 1.0 / np.maximum(biggest, 1e-300))
        theta += step[:, :m]
        if style:
            gamma += step[:, m]
        largest = float(biggest.max())
        if largest < tol or (largest < 1e-5 and largest > 0.5 * previous):
            break
        previous = largest
    return theta, (gamma if style else None)


def _newton_rounds(
    d: _Design,
    n_pair: np.ndarray,
    s_pair: np.ndarray,
    *,
    alpha: float,
    start: np.ndarray,
    ridge: float = RIDGE,
    tol: float = 1e-7,
    max_iter: int = 100,
) -> np.ndarray:
    """Newton's method for every bootstrap round at once, straight from each round's
    (n, wins of the lower-index model) per pair, N_PAIR and S_PAIR [R, P], from START [M] (the
    full-data fit, a step or two from each round's optimum). Ratings [R, M], natural scale.

    The first step uses one Hessian for all rounds, START's with the rounds' mean counts: each
    round's own differs from it only by sampling noise (a few per cent with many battles), so
    the step lands close to where a Newton step would, at the cost of one small solve. Then
    every round takes Newton steps with its own Hessian (a ridged graph Laplacian, gathered
    from the per-pair weights through one index) and stops on its own, when what is left after
    its last step is below TOL (1e-7, i.e. 4e-5 rating points) or the step has reached the
    floating-point noise floor; later steps solve only the rounds still moving."""
    rounds, m, pairs = n_pair.shape[0], d.m, len(d.lo)
    where = np.full((m, m), pairs)  # the zero slot appended after the pairs
    where[d.lo, d.hi] = where[d.hi, d.lo] = np.arange(pairs)
    where = where.ravel()
    diagonal = np.arange(m) * (m + 1)
    abs_inc = np.abs(d.incidence)

    def gradient_and_weights(th: np.ndarray, n: np.ndarray, s: np.ndarray) -> tuple:
        # np.take along an axis is several times faster than fancy indexing th[:, d.lo].
        diff = np.take(th, d.lo, axis=1) - np.take(th, d.hi, axis=1)
        p = 1.0 / (1.0 + np.exp(-alpha * diff))
        grad = alpha * ((s - n * p) @ d.incidence) - ridge * th
        return grad, (alpha * alpha) * n * p * (1.0 - p)

    def hessians(w: np.ndarray) -> np.ndarray:
        hess = np.take(np.concatenate([-w, np.zeros((len(w), 1))], axis=1), where, axis=1)
        hess[:, diagonal] = w @ abs_inc + ridge
        return hess.reshape(-1, m, m)

    def capped(step: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        # A cap keeps a near-separated round from overshooting; it binds only far from the optimum.
        biggest = np.abs(step).max(axis=1)
        return step * np.minimum(1.0, 1.0 / np.maximum(biggest, 1e-300))[:, None], biggest

    theta = np.repeat(start[None, :], rounds, axis=0)
    grad, _ = gradient_and_weights(theta, n_pair, s_pair)
    _, w_mean = gradient_and_weights(
        start[None, :], n_pair.mean(axis=0, keepdims=True), s_pair.mean(axis=0, keepdims=True)
    )
    step, _ = capped(np.linalg.solve(hessians(w_mean)[0], grad.T).T)
    theta += step
    previous = np.full(rounds, math.inf)
    active = np.arange(rounds)
    for _ in range(max_iter):
        th = theta[active]
        grad, w = gradient_and_weights(th, n_pair[active], s_pair[active])
        step, biggest = capped(np.linalg.solve(hessians(w), grad[:, :, None])[:, :, 0])
        theta[active] = th + step
        # Newton converges quadratically: along a step of size b every pair's weight
        # n p (1 - p) changes by a factor within 1 +- 2 alpha b, which leaves the round about
        # alpha b^2 from its optimum. So it is done once that is below TOL, without the step
        # more that would only confirm it.
        done = (alpha * biggest * biggest < tol) | (
            (biggest < 1e-5) & (biggest > 0.5 * previous[active])
        )
        previous[active] = biggest
        active = active[~done]
        if not len(active):
            break
    return theta


def multinomial_rounds(rng: np.random.Generator, n: int, p: np.ndarray, rounds: int) -> np.ndarray:
    """ROUNDS independent draws [rounds, K] from Multinomial(N, P), exactly, faster than
    `rng.multinomial` (which draws K binomials one after another per round).

    Independent Poisson(N p_k) counts, given their sum S, are Multinomial(S, P). Topping a
    round up with N - S more categorical draws, or taking S - N of its S items away uniformly
    without replacement, leaves Multinomial(N, P) whatever S was: a multinomial sample is a
    set of independent categorical items, and adding independent ones or dropping a random
    subset keeps it so. |S - N| is about sqrt(N), a small share of the work."""
    p = np.asarray(p, dtype=np.float64)
    p = p / p.sum()
    k = len(p)
    x = rng.poisson(n * p, size=(rounds, k))
    gap = n - x.sum(axis=1)  # > 0: short of N, < 0: over
    flat = x.reshape(-1)
    short = np.maximum(gap, 0)
    if short.any():
        cumulative = np.cumsum(p)
        cumulative[-1] = 1.0
        cats = _categorical(rng, cumulative, int(short.sum()))
        np.add.at(flat, np.repeat(np.arange(rounds) * k, short) + cats, 1)
    over = np.maximum(-gap, 0)
    if over.any():
        # Lay the items of the over-full rounds end to end, category by category, pick OVER
        # distinct positions in each (redrawing the rare collisions) and take those items away.
        # The short rounds were topped up above, but no round is both.
        ends = np.cumsum(flat)
        size = n - gap
        first = ends[np.arange(rounds) * k] - x[:, 0]
        picked = np.empty(0, dtype=np.int64)
        need = over
        while need.any():
            todo = np.repeat(np.arange(rounds), need)
            fresh = first[todo] + (rng.random(len(todo)) * size[todo]).astype(np.int64)
            picked = np.sort(np.concatenate([picked, fresh]))
            picked = picked[np.r_[True, picked[1:] != picked[:-1]]]
            owner = np.searchsorted(first, picked, side="right") - 1
            need = over - np.bincount(owner, minlength=rounds)
        np.subtract.at(flat, np.searchsorted(ends, picked, side="right"), 1)
    return x


def _categorical(rng: np.random.Generator, cumulative: np.ndarray, size: int) -> np.ndarray:
    """SIZE independent draws of a category, P(i) = cumulative[i] - cumulative[i - 1] (the last
    entry is 1). A guide table (8 entries per category) says where each uniform's category
    starts; a step or two forward finds it. `searchsorted` on unsorted uniforms is slower."""
    entries = 8 * len(cumulative)
    guide = np.searchsorted(cumulative, np.arange(entries) / entries, side="right")
    u = rng.random(size)
    cats = guide[(u * entries).astype(np.int64)]
    behind = np.flatnonzero(cumulative[cats] <= u)
    while len(behind):
        cats[behind] += 1
        behind = behind[cumulative[cats[behind]] <= u[behind]]
    return cats


def _sorted_weights(design: _Design, count: np.ndarray) -> np.ndarray:
    return np.atleast_2d(count[design.order]).astype(np.float64)


def to_elo(theta: np.ndarray, *, scale: float = SCALE, initial: float = INITIAL) -> np.ndarray:
    return theta * scale + initial


@dataclass
class Fit:
    models: list[str]
    ratings: np.ndarray  # [M], Elo scale
    lower: np.ndarray | None = None
    upper: np.ndarray | None = None
    replicates: np.ndarray | None = None  # [R, M]
    style_coef: float | None = None
    style_lower: float | None = None
    style_upper: float | None = None
    confidence: float = 0.95


def fit_bt(
    counts: Counts,
    *,
    base: float = BASE,
    scale: float = SCALE,
    initial: float = INITIAL,
    bootstrap: int = 0,
    seed: int = 0,
    confidence: float = 0.95,
    exact: bool = False,
) -> Fit:
    """Bradley-Terry maximum likelihood (mean rating INITIAL), with bootstrap percentile
    intervals when BOOTSTRAP > 0: each round redraws the counts of the unique rows from a
    multinomial (n = all battles, p = the observed shares), as FastChat does, and all rounds
    are fitted together.

    Runs on one BLAS thread: its solves are many small ones, which several BLAS threads only
    make wait on each other (badly so on a busy machine)."""
    import scipy.optimize  # noqa: F401  (scipy has a BLAS of its own: load it before the limit)
    from threadpoolctl import threadpool_limits

    with threadpool_limits(limits=1, user_api="blas"):
        return _fit_bt(
            counts,
            alpha=math.log(base),
            scale=scale,
            initial=initial,
            bootstrap=bootstrap,
            seed=seed,
            confidence=confidence,
            exact=exact,
        )


def _fit_bt(
    counts: Counts,
    *,
    alpha: float,
    scale: float,
    initial: float,
    bootstrap: int,
    seed: int,
    confidence: float,
    exact: bool,
) -> Fit:
    design = _design(counts)
    weights = _sorted_weights(design, counts.count)
    theta, gamma = _solve_batch(design, weights, alpha=alpha)
    exact_theta = theta[0]
    if gamma is None and not exact and len(counts.models) > 1:
        # FastChat-compatible point estimate (see fit_bt_lbfgs); the bootstrap rounds stay exact.
        n_pair = np.add.reduceat(weights[0], design.starts)
        s_pair = np.add.reduceat(weights[0] * design.score_lo, design.starts)
        theta = _lbfgs_pairs(design, n_pair, s_pair, alpha=alpha)[None, :]
    fit = Fit(
        models=counts.models,
        ratings=to_elo(theta[0], scale=scale, initial=initial),
        confidence=confidence,
    )
    if gamma is not None:
        fit.style_coef = float(gamma[0])
    if bootstrap > 0:
        thetas, gammas = _bootstrap_rounds(
            counts, design, weights[0], exact_theta, alpha=alpha, rounds=bootstrap, seed=seed
        )
        reps = to_elo(np.concatenate(thetas), scale=scale, initial=initial)
        q = (1.0 - confidence) / 2.0
        fit.replicates = reps
        fit.lower = np.quantile(reps, q, axis=0)
        fit.upper = np.quantile(reps, 1.0 - q, axis=0)
        if gammas:
            g = np.concatenate(gammas)
            fit.style_lower, fit.style_upper = (float(v) for v in np.quantile(g, [q, 1.0 - q]))
    return fit


def _bootstrap_rounds(
    counts: Counts,
    design: _Design,
    weights: np.ndarray,
    start: np.ndarray,
    *,
    alpha: float,
    rounds: int,
    seed: int,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """ROUNDS bootstrap fits, in chunks of rounds small enough to stay in cache: ratings
    [chunk, M] per chunk and, with style control, gamma [chunk] per chunk."""
    rng = np.random.default_rng(seed)
    total = int(round(counts.count.sum()))
    chunk = max(1, int(CHUNK_CELLS // max(1, len(counts.models) ** 2)))
    thetas, gammas = [], []
    if design.x_lo is None:
        # Only (n, wins) per pair enter the likelihood, so rows that differ only in which side
        # each model was on are one category: merging categories of a multinomial gives the
        # multinomial of the merged ones, and half the categories to draw.
        category = design.pair_of_row * 3 + np.rint(design.score_lo * 2).astype(np.int64)
        cats, inverse = np.unique(category, return_inverse=True)
        observed = np.bincount(inverse, weights=weights, minlength=len(cats))
        shares = observed / observed.sum()
        cat_starts = np.flatnonzero(np.r_[True, np.diff(cats // 3) != 0])
        cat_score = (cats % 3) / 2.0
        for first in range(0, rounds, chunk):
            draws = multinomial_rounds(rng, total, shares, min(chunk, rounds - first))
            n_pair = np.add.reduceat(draws, cat_starts, axis=1).astype(np.float64)
            s_pair = np.add.reduceat(draws * cat_score, cat_starts, axis=1)
            thetas.append(_newton_rounds(design, n_pair, s_pair, alpha=alpha, start=start))
    else:
        shares = counts.count / counts.count.sum()
        for first in range(0, rounds, chunk):
            size = min(chunk, rounds - first)
            draws = rng.multinomial(total, shares, size=size).astype(np.float64)
            t, g = _solve_batch(design, draws[:, design.order], alpha=alpha)
            thetas.append(t)
            gammas.append(g)
    return thetas, gammas


def anchor_shift(fit: Fit, model: str, rating: float) -> None:
    """Shift FIT so that MODEL sits at RATING (differences, and so odds, are unchanged). Every
    bootstrap round is anchored too, as FastChat does, so the anchor's own interval is a point
    and the others' intervals measure the distance to it."""
    i = fit.models.index(model)
    fit.ratings = fit.ratings + (rating - fit.ratings[i])
    if fit.replicates is not None:
        fit.replicates = fit.replicates + (rating - fit.replicates[:, [i]])
        q = (1.0 - fit.confidence) / 2.0
        fit.lower = np.quantile(fit.replicates, q, axis=0)
        fit.upper = np.quantile(fit.replicates, 1.0 - q, axis=0)


def recentre(fit: Fit, indices: Sequence[int], value: float = INITIAL) -> None:
    """Shift FIT (and each bootstrap round) so the mean of the models at INDICES is VALUE: used
    when some models of a group have unbounded ratings, so that they do not drag the bounded
    ones (and their intervals) around."""
    idx = list(indices)
    fit.ratings = fit.ratings + (value - fit.ratings[idx].mean())
    if fit.replicates is not None:
        fit.replicates = fit.replicates + (
            value - fit.replicates[:, idx].mean(axis=1, keepdims=True)
        )
        q = (1.0 - fit.confidence) / 2.0
        fit.lower = np.quantile(fit.replicates, q, axis=0)
        fit.upper = np.quantile(fit.replicates, 1.0 - q, axis=0)


def ranks_by_interval(lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Rank = 1 + the number of models whose lower bound is above this one's upper bound."""
    return 1 + (lower[None, :] > upper[:, None]).sum(axis=1)


# --- online Elo --------------------------------------------------------------------------


def online_elo(
    battles: Iterable[tuple[str, str, str]],
    *,
    k: float = 4.0,
    base: float = BASE,
    scale: float = SCALE,
    initial: float = INITIAL,
) -> dict[str, float]:
    """Sequential Elo over BATTLES (model_a, model_b, outcome) in the order given: each battle
    moves both ratings by K * (score - expected). Depends on the order; FastChat's reference
    uses K=4 in time order."""
    alpha = math.log(base) / scale
    ratings: dict[str, float] = {}
    for model_a, model_b, outcome in battles:
        score = OUTCOME_SCORE.get(outcome)
        if score is None or not model_a or not model_b or model_a == model_b:
            continue
        ra = ratings.setdefault(model_a, initial)
        rb = ratings.setdefault(model_b, initial)
        expected = 1.0 / (1.0 + math.exp(alpha * (rb - ra)))
        update = k * (score - expected)
        ratings[model_a] = ra + update
        ratings[model_b] = rb - update
    return ratings


# --- the reference method, for the benchmark and the tests -------------------------------


def fit_bt_lbfgs(counts: Counts, *, base: float = BASE) -> np.ndarray:
    """One Bradley-Terry fit by scipy's L-BFGS-B from all-zero ratings (FastChat's
    `compute_bt`, written from its description: gtol 1e-6, at most 100 iterations), on the
    rows reduced to one (n, wins) per pair, which gives the same loss and gradient. Natural-scale
    ratings [M].

    This is the default point estimate because it is what FastChat prints: its optimizer stops
    a little before the exact optimum (on the PRD vicuna80 battles its gradient is still 0.09 and
    ratings sit up to 0.02 points from the exact maximum-likelihood ones); `exact=True` in
    `fit_bt` polishes the fit to the exact optimum by Newton."""

    d = _design(counts)
    weights = _sorted_weights(d, counts.count)[0]
    n_pair = np.add.reduceat(weights, d.starts)
    s_pair = np.add.reduceat(weights * d.score_lo, d.starts)
    return _lbfgs_pairs(d, n_pair, s_pair, alpha=math.log(base))


def _lbfgs_pairs(d: _Design, n_pair: np.ndarray, s_pair: np.ndarray, *, alpha: float) -> np.ndarray:
    from scipy.optimize import minimize

    lo, hi, inc = d.lo, d.hi, d.incidence
    f_pair = n_pair - s_pair

    def loss_and_grad(r: np.ndarray) -> tuple[float, np.ndarray]:
        z = alpha * (r[lo] - r[hi])
        p = 1.0 / (1.0 + np.exp(-z))
        loss = -float((s_pair * np.log(p) + f_pair * np.log1p(-p)).sum())
        return loss, -alpha * ((s_pair - n_pair * p) @ inc)

    result = minimize(
        loss_and_grad,
        np.zeros(d.m),
        jac=True,
        method="L-BFGS-B",
        options={"maxiter": 100, "gtol": 1e-6},
    )
    return result.x
