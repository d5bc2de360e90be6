"""Regression-adjusted MSR (Witter, Liu & Musco 2025, "Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values"; shapiq >= 1.5 has it as `RegressionMSR`, 1.4.1 does not).

Fit a surrogate f to the game (here PolySHAP's constrained polynomial regression, `degree` 1 by
default; `lsi.estimators.proxy` passes a tree ensemble), take f's exact Shapley values, and add an
unbiased Monte Carlo estimate of the residual's: phi(v) = phi(f) + phi(v - f), where the "maximum
sample reuse" (MSR) form
phi_i(g) = sum_S g(S) (1[i in S] / (|S| binom(n, |S|)) - 1[i not in S] / ((n - |S|) binom(n, |S|)))
lets every sampled coalition inform every player.

Unbiased exactly, not only in the limit: the surrogate must not see the coalitions that estimate its
residual, so the draws are independent (with replacement, paired, leverage-weighted) and split in two
halves; f fitted on one half (and the enumerated coalitions, known exactly) is corrected with the
other half, and the two cross-fitted estimates are averaged. shapiq's RegressionMSR fits and corrects
on the same coalitions, which is cheaper in variance but biased. The values sum to v(N) - v(empty):
phi(f) sums to f(N) - f(empty), the exact terms of the full and empty rows add the rest, and the MSR
terms of any other coalition sum to 0 over the players.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Protocol

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run
from lsi.estimators.regression import _check, fit_polynomial
from lsi.estimators.sampling import CoalitionSample, draw_units, kernel_weights
from lsi.game import Game

MIN_DRAWS = 2  # one draw per half
IMPLEMENTATION = (
    "lsi, cross-fitted (shapiq 1.4.1 has no RegressionMSR; 1.5's fits and corrects on the same draws)"
)


def msr_terms(coalitions: np.ndarray, residuals: np.ndarray) -> np.ndarray:
    """(m, n): each row's MSR contribution to each player before its share, binom(n, |S|) times
    phi_i's coefficient of g(S): +g/|S| for members, -g/(n - |S|) for the others."""
    n = coalitions.shape[1]
    sizes = coalitions.sum(axis=1)
    return np.where(coalitions, 1.0 / sizes[:, None], -1.0 / (n - sizes)[:, None]) * residuals[:, None]


class Surrogate(Protocol):
    """A model of the game whose Shapley values are known exactly."""

    def predict(self, coalitions: np.ndarray) -> np.ndarray: ...

    def shapley_values(self, n: int) -> np.ndarray: ...


# (coalitions, their values, their Shapley-kernel weights, v(empty), v(N)) -> a fitted surrogate
Fit = Callable[[np.ndarray, np.ndarray, np.ndarray, float, float], Surrogate]


def adjusted_estimate(
    sample: CoalitionSample, values: np.ndarray, fit: Fit, adjust: bool = True
) -> tuple[np.ndarray, np.ndarray]:
    """phi(f) + phi(v - f) for a surrogate f fitted by `fit`: the residual's terms are exact for the rows
    known exactly (empty, full, enumerated classes) and, with `adjust`, a cross-fitted MSR estimate for
    the drawn ones. Returns the values and their standard error (the two halves' sampling errors,
    averaged; the dependence of each half's surrogate on the other half's draws is not counted; NaN
    without `adjust`, zero where nothing was drawn)."""
    n = sample.coalitions.shape[1]
    inner = slice(2, None)
    rows, sizes, share, fold = (
        sample.coalitions[inner],
        sample.sizes[inner],
        sample.share[inner],
        sample.fold[inner],
    )
    ends, v_empty, v_full = sample.coalitions[:2], float(values[0]), float(values[1])
    known = fold == -1
    halves = [h for h in (0, 1) if np.any(fold == h)] if adjust else []

    def corrected(train: np.ndarray) -> tuple[Surrogate, np.ndarray]:
        """The surrogate fitted on `train` and its Shapley values plus the exact terms of the known rows
        (the full and empty rows' MSR terms are +-g/n for every player)."""
        folds = np.unique(fold[train & ~known]).size  # each fold's shares alone cover the drawn mass
        weights = kernel_weights(sizes[train], np.where(known, share, share / max(folds, 1))[train], n)
        surrogate = fit(rows[train], values[inner][train], weights, v_empty, v_full)
        g_empty, g_full = values[:2] - surrogate.predict(ends)
        exact = msr_terms(rows[known], values[inner][known] - surrogate.predict(rows[known]))
        return surrogate, surrogate.shapley_values(n) + share[known] @ exact + (g_full - g_empty) / n

    if not halves:  # nothing drawn, or no adjustment: one fit on every row
        phi = corrected(np.ones(len(rows), dtype=bool))[1]
        return phi, np.zeros(n) if np.all(known) else np.full(n, np.nan)
    estimates, variances = [], []
    for fitted, test in ((0, 1), (1, 0)):
        surrogate, phi = corrected(known | (fold == fitted))
        held = np.flatnonzero(fold == test)
        terms = msr_terms(rows[held], values[inner][held] - surrogate.predict(rows[held])) * share[held, None]
        # a unit's rows are adjacent and share one draw: sum them into per-draw contributions
        per_draw = terms.reshape(-1, 2 if sample.info["pairing"] else 1, n).sum(axis=1)
        draws = len(per_draw)
        estimates.append(phi + per_draw.sum(axis=0))
        # share holds 1/draws, so per_draw sums to the mean over draws, whose variance is draws * var
        variances.append(draws * per_draw.var(axis=0, ddof=1) if draws > 1 else np.full(n, np.nan))
    return np.mean(estimates, axis=0), np.sqrt(np.sum(variances, axis=0)) / 2


def adjusted_run(ledger: Ledger, sample: CoalitionSample, fit: Fit, info: dict, adjust: bool = True) -> Run:
    """`adjusted_estimate` on the ledger, with a replay on any other game (the bootstrap's) over the same
    coalitions and the sample's description in `info`."""

    def solve(game: Ledger | Game) -> np.ndarray:
        return adjusted_estimate(sample, game.value(sample.coalitions), fit, adjust)[0]

    values, stderr = adjusted_estimate(sample, ledger.value(sample.coalitions), fit, adjust)
    return Run(values=values, stderr=stderr, info=info | sample.info, replay=solve)


def msr_draws(estimator: str, n: int, budget: int, seed: int, pairing: bool) -> CoalitionSample:
    """`draw_units` with at least one draw per half, or none at all (every class enumerated)."""
    sample = draw_units(n, budget, seed, paired=pairing, min_draws=MIN_DRAWS)
    if 0 < sample.info["draws"] < MIN_DRAWS:
        raise UserError(f"'{estimator}' needs at least {MIN_DRAWS} draws; raise the budget")
    return sample


def polynomial_fit(degree: int) -> Fit:
    """PolySHAP's constrained polynomial regression of `degree` as a surrogate."""
    return lambda rows, values, weights, v_empty, v_full: fit_polynomial(
        rows, values, weights, v_empty, v_full, degree
    )


def regression_msr(ledger: Ledger, budget: int, seed: int, degree: int = 1, pairing: bool = True) -> Run:
    n = ledger.n_players
    _check(n, degree)
    sample = msr_draws("regression_msr", n, budget, seed, pairing)
    return adjusted_run(
        ledger, sample, polynomial_fit(degree), {"implementation": IMPLEMENTATION, "degree": degree}
    )


def msr_min_budget(n: int, options: dict) -> int:
    """v(empty), v(N), n-1 more coalitions, and two draws at least (one per half)."""
    per_draw = 2 if options.get("pairing", True) else 1
    return min(2**n, max(n + 1, 2 + MIN_DRAWS * per_draw))


REGRESSION_MSR = Estimator(
    name="regression_msr", run=regression_msr, min_budget=msr_min_budget, efficient=True
)
