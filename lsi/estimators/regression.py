"""Regression estimators on leverage-sampled, complement-paired coalitions (not in shapiq 1.4.1).

`leverage`: Leverage SHAP (Musco & Witter, "Provably Accurate Shapley Value Estimation via Leverage
Score Sampling", ICLR 2025, arXiv:2410.01917). The Shapley-kernel regression of KernelSHAP, on
coalitions sampled without replacement in proportion to their leverage scores, each with its
complement; the efficiency constraint is projected out as in the paper: with P = I - 11'/n,
phi = (S A P)^+ S b_hat + (v(N) - v(empty))/n 1, the minimum-norm solution, orthogonal to 1.

`polyshap`: PolySHAP (Fumagalli, Witter, Musco et al. 2025): the same regression on polynomial
features of the coalition up to `degree` (degree 1 is KernelSHAP), then the Shapley values of the
fitted polynomial. Features are written in +-1 coding (s_i = 2 x_i - 1), where a product over T has
Shapley value 2/|T| for each member if |T| is odd and 0 if even; when there are fewer coalitions than
features the fit is the minimum-norm one in that coding. With pairing, the even (complement-symmetric)
features are orthogonal to the odd ones, so degree 2 gives exactly paired KernelSHAP (the PolySHAP
paper's identity; our tests check it to 1e-10).
"""

from __future__ import annotations

from dataclasses import dataclass
from itertools import combinations
from math import comb

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run, nan_vector
from lsi.estimators.sampling import CoalitionSample, kernel_weights, kernelshap_sample, sample_units
from lsi.game import Game

IMPLEMENTATION = "lsi (shapiq 1.4.1 has no such approximator)"
# Rows times features above which a polynomial design is refused (about 400 MB of float64).
MAX_DESIGN = 50_000_000


def kernel_regression(
    coalitions: np.ndarray, values: np.ndarray, weights: np.ndarray, v_empty: float, v_full: float
) -> np.ndarray:
    """Leverage SHAP's solve: min ||W^1/2 (Z phi - (v - v_empty))|| subject to sum(phi) = v_full -
    v_empty, by projecting the constraint out (paper, Sec. 3): minimum-norm, hence exactly efficient."""
    n = coalitions.shape[1]
    delta = v_full - v_empty
    if not len(coalitions):
        return np.full(n, delta / n)
    z = coalitions.astype(float)
    sizes = z.sum(axis=1)
    root = np.sqrt(weights)
    projected = root[:, None] * (z - sizes[:, None] / n)  # Z P
    target = root * (values - v_empty - sizes * delta / n)  # b - Z 1 delta / n
    phi = np.linalg.lstsq(projected, target, rcond=None)[0]
    return phi - phi.mean() + delta / n


def interaction_sets(n: int, degree: int) -> list[np.ndarray]:
    """Per order 1..degree, the (terms, order) index array of the players' subsets of that order."""
    return [
        np.array(list(combinations(range(n), order)), dtype=int).reshape(-1, order)
        for order in range(1, degree + 1)
    ]


@dataclass(frozen=True)
class Polynomial:
    """f(S) = constant + sum_T coefficient_T prod_{i in T} s_i(S), with s_i = +1 if kept, -1 if not."""

    terms: list[np.ndarray]  # per order 1..degree: (terms, order) player indices
    coefficients: list[np.ndarray]  # per order
    constant: float

    def predict(self, coalitions: np.ndarray) -> np.ndarray:
        features = _features(coalitions, self.terms)
        return self.constant + sum(f @ c for f, c in zip(features, self.coefficients, strict=True))

    def shapley_values(self, n: int) -> np.ndarray:
        """Each odd-order product gives 2/|T| to every member; even orders give nothing."""
        phi = np.zeros(n)
        for order, (terms, coefficients) in enumerate(
            zip(self.terms, self.coefficients, strict=True), start=1
        ):
            if order % 2:
                np.add.at(phi, terms.ravel(), np.repeat(2 * coefficients / order, order))
        return phi


def _features(coalitions: np.ndarray, terms: list[np.ndarray]) -> list[np.ndarray]:
    signs = 2.0 * coalitions - 1.0
    return [signs[:, t].prod(axis=2) for t in terms]


@dataclass(frozen=True)
class PolynomialDesign:
    """`fit_polynomial`'s constrained regression as an unconstrained one in free coefficients u, so that
    callers with their own solver (many right-hand sides, leave-one-cluster-out refits) share it.

    In +-1 coding, f(N) + f(empty) fixes the constant given the even coefficients, and f(N) - f(empty)
    = 2 sum(odd coefficients) is projected out as in Leverage SHAP: every u meets both constraints, and
    u + t (0, 1, .., 1) (the odd block shifted) gives the same polynomial."""

    terms: list[np.ndarray]  # per order 1..degree: (terms, order) player indices
    matrix: np.ndarray  # (rows, features): even features first, then the odd ones
    odd_sum: np.ndarray  # (rows,) sum of the odd features

    @property
    def n_even(self) -> int:
        return sum(len(t) for order, t in enumerate(self.terms, start=1) if not order % 2)

    def target(
        self, values: np.ndarray, v_empty: float | np.ndarray, v_full: float | np.ndarray
    ) -> np.ndarray:
        """The values less the part the constraints fix; values (rows, k) with v_empty, v_full (k,) give k
        right-hand sides at once."""
        k_odd = self.matrix.shape[1] - self.n_even
        half_sum, half_gap = (np.asarray(v_full) + v_empty) / 2, (np.asarray(v_full) - v_empty) / 2
        return values - half_sum - np.multiply.outer(self.odd_sum / k_odd, half_gap)

    def polynomial(self, u: np.ndarray, v_empty: float, v_full: float) -> Polynomial:
        n_even, k_odd = self.n_even, self.matrix.shape[1] - self.n_even
        b_even, b_odd = u[:n_even], u[n_even:]
        b_odd = b_odd - b_odd.mean() + (v_full - v_empty) / 2 / k_odd
        coefficients, at_odd, at_even = [], 0, 0
        for order, t in enumerate(self.terms, start=1):
            if order % 2:
                coefficients.append(b_odd[at_odd : at_odd + len(t)])
                at_odd += len(t)
            else:
                coefficients.append(b_even[at_even : at_even + len(t)])
                at_even += len(t)
        return Polynomial(self.terms, coefficients, float((v_full + v_empty) / 2 - b_even.sum()))


def polynomial_design(coalitions: np.ndarray, degree: int) -> PolynomialDesign:
    """The design of `fit_polynomial` for these coalitions (refused when too large)."""
    n = coalitions.shape[1]
    terms = interaction_sets(n, degree)
    if len(coalitions) * sum(len(t) for t in terms) > MAX_DESIGN:
        raise UserError(
            f"degree {degree} on {n} players needs {sum(len(t) for t in terms):,} features for "
            f"{len(coalitions):,} coalitions: too large; lower the degree or the budget"
        )
    features = _features(coalitions, terms)
    odd = np.concatenate([f for order, f in enumerate(features, start=1) if order % 2], axis=1)
    even = [f for order, f in enumerate(features, start=1) if not order % 2]
    even = np.concatenate(even, axis=1) if even else np.zeros((len(coalitions), 0))
    odd_sum = odd.sum(axis=1)
    return PolynomialDesign(
        terms, np.concatenate([even - 1.0, odd - odd_sum[:, None] / odd.shape[1]], axis=1), odd_sum
    )


def fit_polynomial(
    coalitions: np.ndarray,
    values: np.ndarray,
    weights: np.ndarray,
    v_empty: float,
    v_full: float,
    degree: int,
) -> Polynomial:
    """Weighted least squares over polynomials of `degree` with f(empty) = v_empty and f(N) = v_full
    (`PolynomialDesign`); minimum-norm in the free coefficients."""
    design = polynomial_design(coalitions, degree)
    root = np.sqrt(weights)
    if len(coalitions):
        target = design.target(values, v_empty, v_full)
        u = np.linalg.lstsq(root[:, None] * design.matrix, root * target, rcond=None)[0]
    else:
        u = np.zeros(design.matrix.shape[1])
    return design.polynomial(u, v_empty, v_full)


def _check(n: int, degree: int) -> None:
    if not isinstance(degree, int) or not 1 <= degree <= min(3, n):
        raise UserError(f"degree must be an integer in 1..{min(3, n)}; got {degree!r}")


def _evaluate(game: Ledger | Game, sample: CoalitionSample) -> tuple[np.ndarray, float, float]:
    values = game.value(sample.coalitions)
    return values[2:], float(values[0]), float(values[1])


def _regress(sample: CoalitionSample, values: np.ndarray, v_empty: float, v_full: float, degree: int | None):
    rows = sample.coalitions[2:]
    weights = kernel_weights(sample.sizes[2:], sample.share[2:], sample.coalitions.shape[1])
    if degree is None:
        return kernel_regression(rows, values, weights, v_empty, v_full)
    n = rows.shape[1]
    return fit_polynomial(rows, values, weights, v_empty, v_full, degree).shapley_values(n)


SAMPLERS = {"leverage": sample_units, "kernelshap": kernelshap_sample}


def _run(ledger: Ledger, budget: int, seed: int, degree: int | None, pairing: bool, sampler: str) -> Run:
    if sampler not in SAMPLERS:
        raise UserError(f"sampler must be one of {', '.join(SAMPLERS)}; got {sampler!r}")
    sample = SAMPLERS[sampler](ledger.n_players, budget, seed, paired=pairing)

    def solve(game: Ledger | Game) -> np.ndarray:
        return _regress(sample, *_evaluate(game, sample), degree)

    values = solve(ledger)
    info = {"implementation": IMPLEMENTATION, "sampler": sampler, **sample.info}
    if degree is not None:
        info["degree"] = degree
        info["features"] = sum(comb(ledger.n_players, order) for order in range(1, degree + 1))
    return Run(values=values, stderr=nan_vector(ledger.n_players), info=info, replay=solve)


def leverage(ledger: Ledger, budget: int, seed: int, pairing: bool = True) -> Run:
    return _run(ledger, budget, seed, None, pairing, "leverage")


def polyshap(
    ledger: Ledger, budget: int, seed: int, degree: int = 2, pairing: bool = True, sampler: str = "leverage"
) -> Run:
    """`sampler="kernelshap"` fits on the very coalitions `kernelshap` asks for with this budget and seed
    (a store scored for one serves the other), `"leverage"` on Leverage SHAP's."""
    _check(ledger.n_players, degree)
    return _run(ledger, budget, seed, degree, pairing, sampler)


def regression_min_budget(n: int, options: dict) -> int:
    """v(empty), v(N) and n-1 units: with pairing a coalition and its complement give the projected
    regression one direction between them, so n-1 pairs are needed to identify the values."""
    return min(2**n, 2 * n if options.get("pairing", True) else n + 1)


LEVERAGE = Estimator(name="leverage", run=leverage, min_budget=regression_min_budget, efficient=True)
POLYSHAP = Estimator(name="polyshap", run=polyshap, min_budget=regression_min_budget, efficient=True)
