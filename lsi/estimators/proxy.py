"""ProxySHAP (shapiq >= 1.5 has it as `ProxySHAP`; 1.4.1, the version that installs on Python 3.11, does
not): fit a tree ensemble to the sampled coalitions, read its Shapley values off the trees exactly, and
adjust them by a Monte Carlo estimate of the residual's.

The proxy f is a gradient-boosted ensemble over the coalition's membership bits (scikit-learn's, with
XGBoost's default shape: 100 trees of depth 6, learning rate 0.3; no L2 leaf penalty). The game it
stands for is S -> f(1_S), so its Shapley values are interventional TreeSHAP's with the single
reference "every player removed": along a root-to-leaf path each split on a membership bit asks that
player to be in (A) or out (B) of S, so a leaf contributes value * 1[A in S, B out of S], a game whose
Shapley values are closed-form (`_leaf_shapley`). The adjustment (`adjustment="msr"`, the default, as in
shapiq) is regression_msr's: independent draws split in two halves, the proxy fitted on one half and
corrected on the other, so the estimate is unbiased; `adjustment="none"` keeps the proxy's values
(plus the exact residual of the coalitions known exactly), biased where the trees miss. Both sum to
v(N) - v(empty).
"""

from __future__ import annotations

from dataclasses import dataclass
from math import factorial

import numpy as np
from sklearn.ensemble import GradientBoostingRegressor

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run
from lsi.estimators.regression_msr import Fit, adjusted_run, msr_draws, msr_min_budget

ADJUSTMENTS = ("msr", "none")
IMPLEMENTATION = (
    "lsi, scikit-learn gradient boosting, cross-fitted MSR adjustment (shapiq 1.4.1 has no ProxySHAP)"
)


def _leaf_shapley(inside: tuple[int, ...], outside: tuple[int, ...], value: float, phi: np.ndarray) -> None:
    """Add the Shapley values of S -> value * 1[inside in S, outside out of S]: a member of `inside`
    gains when it comes after the rest of `inside` and before all of `outside` in a random order,
    (a-1)! b! / (a+b)! of the orders; a member of `outside` loses when it comes after all of `inside`
    and before the rest of `outside`, a! (b-1)! / (a+b)!."""
    a, b = len(inside), len(outside)
    if a:
        phi[list(inside)] += value * factorial(a - 1) * factorial(b) / factorial(a + b)
    if b:
        phi[list(outside)] -= value * factorial(a) * factorial(b - 1) / factorial(a + b)


def tree_shapley(tree, n: int, scale: float = 1.0) -> np.ndarray:
    """Exact Shapley values of S -> scale * tree(1_S) for a fitted scikit-learn regression tree over
    membership bits (each split sends members right: 0 <= threshold < 1)."""
    t = tree.tree_
    phi = np.zeros(n)
    stack = [(0, (), ())]
    while stack:
        node, inside, outside = stack.pop()
        left, right = t.children_left[node], t.children_right[node]
        if left == -1:
            _leaf_shapley(inside, outside, scale * float(t.value[node].item()), phi)
            continue
        player = int(t.feature[node])
        if not 0 <= t.threshold[node] < 1:
            raise ValueError(f"split at {t.threshold[node]} is not between a player's 0 and 1")
        if player not in outside:  # a path that needs the player both in and out is never taken
            stack.append((right, inside if player in inside else (*inside, player), outside))
        if player not in inside:
            stack.append((left, inside, outside if player in outside else (*outside, player)))
    return phi


@dataclass
class TreeProxy:
    """A fitted gradient-boosted ensemble as a surrogate game (`regression_msr.Surrogate`)."""

    model: GradientBoostingRegressor

    def predict(self, coalitions: np.ndarray) -> np.ndarray:
        rows = np.asarray(coalitions, dtype=float)
        return self.model.predict(rows) if len(rows) else np.zeros(0)  # scikit-learn refuses no rows

    def shapley_values(self, n: int) -> np.ndarray:
        rate = self.model.learning_rate
        return sum((tree_shapley(tree, n, rate) for tree in self.model.estimators_[:, 0]), np.zeros(n))


def tree_fit(trees: int, depth: int, learning_rate: float, seed: int) -> Fit:
    """Fit the ensemble, unweighted, on the rows given and on the empty and full coalitions."""

    def fit(
        rows: np.ndarray, values: np.ndarray, weights: np.ndarray, v_empty: float, v_full: float
    ) -> TreeProxy:
        n = rows.shape[1]
        x = np.vstack([np.zeros((1, n)), np.ones((1, n)), rows]).astype(float)
        y = np.concatenate([[v_empty, v_full], values])
        model = GradientBoostingRegressor(
            n_estimators=trees, max_depth=depth, learning_rate=learning_rate, random_state=seed
        )
        return TreeProxy(model.fit(x, y))

    return fit


def proxyshap(
    ledger: Ledger,
    budget: int,
    seed: int,
    adjustment: str = "msr",
    trees: int = 100,
    depth: int = 6,
    learning_rate: float = 0.3,
    pairing: bool = True,
) -> Run:
    if adjustment not in ADJUSTMENTS:
        raise UserError(f"adjustment must be one of {', '.join(ADJUSTMENTS)}; got {adjustment!r}")
    if not (isinstance(trees, int) and trees >= 1 and isinstance(depth, int) and depth >= 1):
        raise UserError(f"trees and depth must be positive integers; got {trees!r} and {depth!r}")
    sample = msr_draws("proxyshap", ledger.n_players, budget, seed, pairing)
    info = {"implementation": IMPLEMENTATION, "adjustment": adjustment, "trees": trees, "depth": depth}
    fit = tree_fit(trees, depth, learning_rate, seed)
    return adjusted_run(ledger, sample, fit, info | {"learning_rate": learning_rate}, adjustment == "msr")


PROXYSHAP = Estimator(name="proxyshap", run=proxyshap, min_budget=msr_min_budget, efficient=True)
