"""Regression-adjusted MSR (Witter, Liu & Musco 2025, "Regression-adjusted Monte Carlo estimators for
Shapley values and probabilistic values"; shapiq >= 1.5 has it as `RegressionMSR`, 1.4.1 does not).

Fit a surrogate f to the game (here PolySHAP's constrained polynomial regression, `degree` 1 by
default), take f's exact Shapley values, and add an unbiased Monte Carlo estimate of the residual's:
phi(v) = phi(f) + phi(v - f), where the "maximum sample reuse" (MSR) form
phi_i(g) = sum_S g(S) (1[i in S] / (|S| binom(n, |S|)) - 1[i not in S] / ((n - |S|) binom(n, |S|)))
lets every sampled coalition inform every player.

Unbiased exactly, not only in the limit: the surrogate must not see the coalitions that estimate its
residual, so the draws are independent (with replacement, paired, leverage-weighted) and split in two
halves; f fitted on one half (and the enumerated coalitions, known exactly) is corrected with the
other half, and the two cross-fitted estimates are averaged. shapiq's RegressionMSR fits and corrects
on the same coalitions, which is cheaper in variance but biased. The values sum to v(N) - v(empty):
the fit is constrained, and the MSR terms of a coalition sum to 0 over the players.
"""

from __future__ import annotations

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


def _estimate(sample: CoalitionSample, values: np.ndarray, degree: int) -> tuple[np.ndarray, np.ndarray]:
    """Cross-fitted estimate and its standard error (the two halves' sampling errors, averaged; the
    dependence of each half's surrogate on the other half's draws is not counted)."""
    n = sample.coalitions.shape[1]
    inner = slice(2, None)
    rows, sizes, share, fold = (
        sample.coalitions[inner],
        sample.sizes[inner],
        sample.share[inner],
        sample.fold[inner],
    )
    v_empty, v_full = float(values[0]), float(values[1])
    known = fold == -1
    halves = [h for h in (0, 1) if np.any(fold == h)]
    if not halves:  # every coalition enumerated: one fit, corrected exactly
        surrogate = fit_polynomial(
            rows, values[inner], kernel_weights(sizes, share, n), v_empty, v_full, degree
        )
        terms = msr_terms(rows, values[inner] - surrogate.predict(rows))
        return surrogate.shapley_values(n) + share @ terms, np.zeros(n)
    estimates, variances = [], []
    for fit, test in ((0, 1), (1, 0)):
        train = known | (fold == fit)
        surrogate = fit_polynomial(
            rows[train],
            values[inner][train],
            kernel_weights(sizes[train], share[train], n),
            v_empty,
            v_full,
            degree,
        )
        terms = msr_terms(rows, values[inner] - surrogate.predict(rows)) * share[:, None]
        held = np.flatnonzero(fold == test)
        # a unit's rows are adjacent and share one draw: sum them into per-draw contributions
        per_draw = terms[held].reshape(-1, 2 if sample.info["pairing"] else 1, n).sum(axis=1)
        draws = len(per_draw)
        estimates.append(surrogate.shapley_values(n) + terms[known].sum(axis=0) + per_draw.sum(axis=0))
        # share holds 1/draws, so per_draw sums to the mean over draws, whose variance is draws * var
        variances.append(draws * per_draw.var(axis=0, ddof=1) if draws > 1 else np.full(n, np.nan))
    return np.mean(estimates, axis=0), np.sqrt(np.sum(variances, axis=0)) / 2


def regression_msr(ledger: Ledger, budget: int, seed: int, degree: int = 1, pairing: bool = True) -> Run:
    n = ledger.n_players
    _check(n, degree)
    sample = draw_units(n, budget, seed, paired=pairing, min_draws=MIN_DRAWS)
    if 0 < sample.info["draws"] < MIN_DRAWS:
        raise UserError(f"'regression_msr' needs at least {MIN_DRAWS} draws; raise the budget")

    def solve(game: Ledger | Game) -> np.ndarray:
        return _estimate(sample, game.value(sample.coalitions), degree)[0]

    values, stderr = _estimate(sample, ledger.value(sample.coalitions), degree)
    return Run(
        values=values,
        stderr=stderr,
        info={"implementation": IMPLEMENTATION, "degree": degree, **sample.info},
        replay=solve,
    )


def msr_min_budget(n: int, options: dict) -> int:
    """v(empty), v(N), n-1 more coalitions, and two draws at least (one per half)."""
    per_draw = 2 if options.get("pairing", True) else 1
    return min(2**n, max(n + 1, 2 + MIN_DRAWS * per_draw))


REGRESSION_MSR = Estimator(
    name="regression_msr", run=regression_msr, min_budget=msr_min_budget, efficient=True
)
