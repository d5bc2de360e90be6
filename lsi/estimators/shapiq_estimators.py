"""shapiq's Shapley value approximators as registry entries: their names, minimum budgets and options.

Importing shapiq takes about two seconds, so the entries only name shapiq's classes; the adapter
(`lsi.estimators.shapiq_adapter`) imports shapiq when one of them first runs.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from math import comb

from lsi.estimators.base import Estimator, Ledger, Run


def _run(ledger: Ledger, budget: int, seed: int, **options: object) -> Run:
    from lsi.estimators.shapiq_adapter import run_shapiq

    return run_shapiq(ledger, budget, seed, **options)


def _sampled(
    name: str,
    approximator: str,
    min_budget: Callable[[int, dict], int],
    efficient: bool = False,
    **defaults: object,
) -> Estimator:
    return Estimator(
        name=name,
        run=partial(_run, approximator=approximator, **defaults),
        min_budget=min_budget,
        efficient=efficient,
    )


def _unknowns(n: int, options: dict) -> int:
    """Coefficients of a k-additive regression: the intercept and all interactions up to order k."""
    return sum(comb(n, k) for k in range(options.get("max_order", 2) + 1))


# Minimum budgets: n+1 (n values and the baseline cannot be identified from fewer coalitions, even
# for an additive game), or what the method needs to give every player one marginal contribution.
SHAPIQ_ESTIMATORS = (
    _sampled("kernelshap", "KernelSHAP", lambda n, o: n + 1, efficient=True, pairing_trick=True),
    # Unpaired: with pairing, kADD-SHAP of order 2 equals paired KernelSHAP exactly (the even pairwise
    # terms drop out of the Shapley values), so the benchmark showed the two as one estimator.
    _sampled("kadd", "kADDSHAP", _unknowns, efficient=True, pairing_trick=False),
    _sampled("svarm", "SVARM", lambda n, o: n + 1),
    _sampled("unbiased_kernelshap", "UnbiasedKernelSHAP", lambda n, o: n + 1, efficient=True),
    _sampled("stratified", "StratifiedSamplingSV", lambda n, o: n + 2),  # v(empty), v(N), one {i} each
    _sampled("owen", "OwenSamplingSV", lambda n, o: 2 * n + 1),  # v(empty), one pair per player
)
