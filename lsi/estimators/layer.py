"""`layer`: a Shapley estimator for layer games (lsi's own; docs/estimators.md has the argument).

Layer games have a few dominant early players whose removal collapses the model, and their strongest
interactions between neighbouring layers. The design evaluates, as a fixed stratum, the empty and full
models, every run of 1..L consecutive players removed (the window estimator's coalitions, single-player
ablation included) and each one's complement (only that run kept): coalitions of the largest Shapley
kernel weight, in complement pairs. The rest of the budget goes to complement pairs drawn uniformly
within size classes of the coalitions not yet known, classes getting pairs in proportion to their
leverage mass (as Leverage SHAP's do). The values are the Shapley-kernel regression over every
evaluated coalition, efficiency imposed (Leverage SHAP's solve).

Each row is weighted by the kernel times its Horvitz-Thompson share of the coalitions it stands for.
With those weights the estimate equals the regression-adjusted Monte Carlo estimate phi(f) + MSR(v - f)
of its own linear fit f (the weighted residuals are orthogonal to the players' indicators, so the MSR
term is 0), and once every coalition is evaluated each share is exact, MSR(v - f) = phi(v - f), and the
estimate is phi(v). Interactions between neighbours are not fitted: in a design made of complement
pairs, pairwise terms carry no Shapley value and are orthogonal to the main effects (PolySHAP's
identity), so they would not change the estimate. The coalitions depend only on n, the budget and the
seed: they can be planned ahead.
"""

from __future__ import annotations

from math import comb

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run, nan_vector
from lsi.estimators.regression import kernel_regression
from lsi.estimators.sampling import (
    CoalitionSample,
    class_units,
    classes,
    kernel_weights,
    unit_counts,
    with_complements,
)
from lsi.estimators.window import DEFAULT_N_LIM
from lsi.game import Game, coalition_keys
from lsi.players import window_coalitions

IMPLEMENTATION = (
    "lsi: window runs and their complements, leverage-sampled complement pairs, kernel regression"
)


def window_stratum(n: int, length: int) -> np.ndarray:
    """Empty, full, then every run of 1..`length` players removed and, after each, its complement."""
    removed = window_coalitions(n, length)[1:] if length else []
    strings = ["0" * n, "1" * n]
    for window in removed:
        strings += [window, window.translate(str.maketrans("01", "10"))]
    rows = np.frombuffer("".join(strings).encode(), dtype=np.uint8).reshape(len(strings), n) == ord("1")
    _, first = np.unique(coalition_keys(rows), return_index=True)  # small n: a kept run may be a removed one
    return rows[np.sort(first)]


def window_length(n: int, budget: int, n_lim: int) -> int:
    """The longest run L <= n_lim (and < n, so that no run is the empty model) whose stratum fits in
    the budget and, beyond the single runs, takes at most half of it: the sampled pairs are what makes
    the estimate converge, and on separate seeds of the enumerated games (1000-1029) a stratum filling
    80 coalitions ranked worse than one leaving them half."""
    fits = [
        length
        for length in range(1, min(n_lim, n - 1) + 1)
        if len(window_stratum(n, length)) <= (budget if length == 1 else budget / 2)
    ]
    return max(fits, default=0)


def layer_sample(n: int, budget: int, seed: int, n_lim: int = DEFAULT_N_LIM) -> CoalitionSample:
    """The fixed stratum (`window_stratum`, share 1/binom(n, |S|) per coalition), then complement
    pairs drawn class by class from the coalitions outside it (share capacity / (units binom(n, |S|)),
    capacity counting the class's pairs outside the stratum). At most `budget` coalitions."""
    rng = np.random.default_rng(seed)
    budget = min(budget, 2**n)
    length = window_length(n, budget, n_lim)
    fixed = window_stratum(n, length)
    known = set(coalition_keys(fixed))
    cl = classes(n, paired=True)
    fixed_sizes = np.minimum(fixed.sum(axis=1), n - fixed.sum(axis=1))
    taken = np.array([np.count_nonzero(fixed_sizes == s) for s in cl.sizes]) / 2  # known pairs per class
    capacity = cl.capacity - taken
    counts = np.zeros(len(capacity), dtype=np.int64)
    if capacity.any():  # else the stratum is every coalition (n <= 3)
        counts, _ = unit_counts(capacity, cl.mass * capacity / cl.capacity, (budget - len(fixed)) // 2, rng)
    rows, shares = [fixed], [np.array([0.0, 0.0, *(1 / comb(n, int(s)) for s in fixed.sum(axis=1)[2:])])]
    for k in np.flatnonzero(counts):
        rows.append(with_complements(class_units(rng, cl, k, int(counts[k]), distinct=True, exclude=known)))
        shares.append(np.full(2 * counts[k], capacity[k] / (counts[k] * comb(n, int(cl.sizes[k])))))
    coalitions = np.concatenate(rows)
    return CoalitionSample(
        coalitions=coalitions,
        share=np.concatenate(shares),
        fold=np.concatenate([np.full(len(fixed), -1), np.zeros(len(coalitions) - len(fixed), dtype=int)]),
        info={
            "window_length": length,
            "stratum": len(fixed),
            "units_per_class": {int(s): int(c) for s, c in zip(cl.sizes, counts, strict=True)},
        },
    )


def _solve(sample: CoalitionSample, values: np.ndarray) -> np.ndarray:
    n = sample.coalitions.shape[1]
    weights = kernel_weights(sample.sizes[2:], sample.share[2:], n)
    return kernel_regression(sample.coalitions[2:], values[2:], weights, values[0], values[1])


def layer(ledger: Ledger, budget: int, seed: int, n_lim: int = DEFAULT_N_LIM) -> Run:
    n = ledger.n_players
    if not isinstance(n_lim, int) or isinstance(n_lim, bool) or n_lim < 1:
        raise UserError(f"'layer' needs n_lim (the longest run removed) a positive integer; got {n_lim!r}")
    sample = layer_sample(n, budget, seed, n_lim)

    def solve(game: Ledger | Game) -> np.ndarray:
        return _solve(sample, game.value(sample.coalitions))

    values = solve(ledger)
    return Run(
        values=values,
        stderr=nan_vector(n),
        info={"implementation": IMPLEMENTATION, **sample.info},
        replay=solve,
    )


def layer_min_budget(n: int, options: dict) -> int:
    """Empty, full, and the n single players removed and kept (all 2^n coalitions below 3 players)."""
    return min(2**n, 2 * n + 2)


LAYER = Estimator(
    name="layer",
    run=layer,
    min_budget=layer_min_budget,
    efficient=True,
    config_options={"max_removed": "n_lim"},
)
