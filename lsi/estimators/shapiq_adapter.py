"""shapiq's Shapley value approximators, called as they are through a thin adapter.

shapiq sees our ledger as a `shapiq.Game` built with normalize=False, so it gets raw values:
v(empty) is not subtracted (each approximator handles the empty coalition itself, e.g. the
regressions centre on it) and nothing is shifted back afterwards. We read the order-1 values.

Budget semantics differ: the sampler-based approximators (kernelshap, kadd, svarm,
unbiased_kernelshap) spend their budget on DISTINCT coalitions (we cap it at 2^n, where shapiq would
warn and cap itself); stratified and owen count CALLS, repeats included, so their distinct
evaluations (what we report and charge) are usually below the budget.
"""

from __future__ import annotations

import importlib.metadata
import inspect
from collections.abc import Callable
from functools import partial
from math import comb

import numpy as np
import shapiq
from shapiq.approximator import (
    SVARM,
    KernelSHAP,
    OwenSamplingSV,
    StratifiedSamplingSV,
    UnbiasedKernelSHAP,
    kADDSHAP,
)

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run, nan_vector

# Estimators the literature recommends that this shapiq lacks (RegressionMSR arrived in 1.5.0).
MISSING = tuple(name for name in ("RegressionMSR", "LeverageSHAP") if not hasattr(shapiq.approximator, name))


# Their budget counts calls, repeats included; the others' counts distinct coalitions.
CALL_BUDGETED = (StratifiedSamplingSV, OwenSamplingSV)

# Set by the adapter, not by the caller: index="SV" is fixed so that every estimator means Shapley.
FIXED_ARGUMENTS = {"self", "n", "index", "random_state", "kwargs"}


class LedgerGame(shapiq.Game):
    """Routes shapiq's coalition batches (or single rows) to the ledger, raw (no normalisation)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        super().__init__(n_players=ledger.n_players, normalize=False)

    def value_function(self, coalitions: np.ndarray) -> np.ndarray:
        return self.ledger.value(coalitions.astype(bool))


def run_shapiq(ledger: Ledger, budget: int, seed: int, *, approximator: type, **options: object) -> Run:
    # shapiq approximators swallow unknown keyword arguments: refuse them here instead.
    accepted = set(inspect.signature(approximator.__init__).parameters) - FIXED_ARGUMENTS
    unknown = set(options) - accepted
    if unknown:
        name = approximator.__name__
        raise UserError(f"{name} has no option(s) {sorted(unknown)}; it takes {sorted(accepted)}")
    n = ledger.n_players
    by_calls = approximator in CALL_BUDGETED
    shapiq_budget = budget if by_calls else min(budget, 2**n)
    result = approximator(n=n, random_state=seed, **options).approximate(shapiq_budget, LedgerGame(ledger))
    return Run(
        values=result.get_n_order_values(1),
        stderr=nan_vector(n),
        info={
            "shapiq": importlib.metadata.version("shapiq"),  # shapiq.__version__ is None in 1.4.1
            "approximator": approximator.__name__,
            "options": options,
            "shapiq_budget": shapiq_budget,
            "shapiq_budget_counts": "calls, repeats included" if by_calls else "distinct coalitions",
            "calls": ledger.calls,
            "not_in_shapiq": list(MISSING),
        },
    )


def _sampled(
    name: str,
    approximator: type,
    min_budget: Callable[[int, dict], int],
    efficient: bool = False,
    **defaults: object,
) -> Estimator:
    return Estimator(
        name=name,
        run=partial(run_shapiq, approximator=approximator, **defaults),
        min_budget=min_budget,
        efficient=efficient,
    )


def _unknowns(n: int, options: dict) -> int:
    """Coefficients of a k-additive regression: the intercept and all interactions up to order k."""
    return sum(comb(n, k) for k in range(options.get("max_order", 2) + 1))


# Minimum budgets: n+1 (n values and the baseline cannot be identified from fewer coalitions, even
# for an additive game), or what the method needs to give every player one marginal contribution.
SHAPIQ_ESTIMATORS = (
    _sampled("kernelshap", KernelSHAP, lambda n, o: n + 1, efficient=True, pairing_trick=True),
    _sampled("kadd", kADDSHAP, _unknowns, efficient=True, pairing_trick=True),
    _sampled("svarm", SVARM, lambda n, o: n + 1),
    _sampled("unbiased_kernelshap", UnbiasedKernelSHAP, lambda n, o: n + 1, efficient=True),
    _sampled("stratified", StratifiedSamplingSV, lambda n, o: n + 2),  # v(empty), v(N), one {i} each
    _sampled("owen", OwenSamplingSV, lambda n, o: 2 * n + 1),  # v(empty), one pair per player
)
