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

import numpy as np
import shapiq
import shapiq.approximator

from lsi.errors import UserError
from lsi.estimators.base import Ledger, Run, nan_vector

# Estimators the literature recommends that this shapiq lacks (RegressionMSR and ProxySHAP arrived in
# 1.5.0); lsi implements them itself as `regression_msr`, `proxyshap`, `leverage` and `polyshap`
# (lsi.estimators.regression*, lsi.estimators.proxy).
MISSING = tuple(
    name
    for name in ("RegressionMSR", "ProxySHAP", "LeverageSHAP", "PolySHAP")
    if not hasattr(shapiq.approximator, name)
)


# Their budget counts calls, repeats included; the others' counts distinct coalitions.
CALL_BUDGETED = ("StratifiedSamplingSV", "OwenSamplingSV")

# Set by the adapter, not by the caller: index="SV" is fixed so that every estimator means Shapley.
FIXED_ARGUMENTS = {"self", "n", "index", "random_state", "kwargs"}


class LedgerGame(shapiq.Game):
    """Routes shapiq's coalition batches (or single rows) to the ledger, raw (no normalisation)."""

    def __init__(self, ledger: Ledger):
        self.ledger = ledger
        super().__init__(n_players=ledger.n_players, normalize=False)

    def value_function(self, coalitions: np.ndarray) -> np.ndarray:
        return self.ledger.value(coalitions.astype(bool))


def run_shapiq(ledger: Ledger, budget: int, seed: int, *, approximator: str, **options: object) -> Run:
    """Run the shapiq approximator of that class name on the ledger, with the estimator's options."""
    approximator = getattr(shapiq.approximator, approximator)
    # shapiq approximators swallow unknown keyword arguments: refuse them here instead.
    accepted = set(inspect.signature(approximator.__init__).parameters) - FIXED_ARGUMENTS
    unknown = set(options) - accepted
    if unknown:
        name = approximator.__name__
        raise UserError(f"{name} has no option(s) {sorted(unknown)}; it takes {sorted(accepted)}")
    n = ledger.n_players
    by_calls = approximator.__name__ in CALL_BUDGETED
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
