"""Exact Shapley values: every one of the 2^n coalitions, the classic formula (vectorised)."""

from __future__ import annotations

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run
from lsi.game import MAX_EXACT_PLAYERS, all_coalitions, shapley_from_table


def exact_cost(n_players: int) -> int:
    """2^n, refused above MAX_EXACT_PLAYERS, where enumeration stops being practical."""
    if n_players > MAX_EXACT_PLAYERS:
        raise UserError(
            f"exact Shapley values need all 2^{n_players} = {2**n_players:,} coalitions; 'exact' is "
            f"limited to n <= {MAX_EXACT_PLAYERS} players. Use a sampling estimator, or game.restricted()"
        )
    return 2**n_players


def exact(ledger: Ledger, budget: int | None = None, seed: int = 0) -> Run:
    """Exact values; stderr is 0 (no sampling error with respect to the game). Budget and seed are
    unused: the cost is 2^n and nothing is sampled."""
    n = ledger.n_players
    exact_cost(n)
    return Run(values=shapley_from_table(ledger.value(all_coalitions(n))), stderr=np.zeros(n))


EXACT = Estimator(
    name="exact",
    run=exact,
    min_budget=lambda n, options: exact_cost(n),
    efficient=True,
    deterministic=True,
)
