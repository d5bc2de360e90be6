"""The paper's efficient estimator (Zhang, Dong, Kawaguchi 2024): contiguous windows removed.

Evaluate the full model and every coalition that removes one window of 1..n_lim consecutive players
(in the game's player order). Player i's value is the UNWEIGHTED mean of the marginal contributions
v(F minus (W minus {i})) - v(F minus W) over every window W with i as its first or last element;
the singleton window counts once. Deterministic, biased (no Shapley weights, no far coalitions):
it is meant to keep the ranking, not the values.
"""

from __future__ import annotations

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run, nan_vector

DEFAULT_N_LIM = 3


def window_cost(n_players: int, n_lim: int = DEFAULT_N_LIM) -> int:
    """1 + n + (n-1) + ... + (n-n_lim+1): the full model and every window (190 for n=64, n_lim=3)."""
    if not 1 <= n_lim <= n_players:
        raise UserError(f"n_lim must lie in 1..{n_players} (the number of players); got {n_lim}")
    return 1 + sum(n_players - length + 1 for length in range(1, n_lim + 1))


def window(ledger: Ledger, budget: int | None = None, seed: int = 0, n_lim: int = DEFAULT_N_LIM) -> Run:
    """The window estimate; budget and seed are unused (the cost is fixed, nothing is sampled)."""
    n = ledger.n_players
    window_cost(n, n_lim)
    windows = [(start, length) for length in range(1, n_lim + 1) for start in range(n - length + 1)]
    rows = np.ones((1 + len(windows), n), dtype=bool)
    for row, (start, length) in enumerate(windows, start=1):
        rows[row, start : start + length] = False
    values = ledger.value(rows)
    without = {(start, 0): values[0] for start in range(n + 1)}  # removing nothing: v(F)
    without.update({w: values[row] for row, w in enumerate(windows, start=1)})

    marginals: list[list[float]] = [[] for _ in range(n)]
    for start, length in windows:
        last = start + length - 1
        # i = first element: W minus {i} is the window starting one later.
        marginals[start].append(without[start + 1, length - 1] - without[start, length])
        if length > 1:  # i = last element: W minus {i} is the window one shorter.
            marginals[last].append(without[start, length - 1] - without[start, length])
    return Run(
        values=np.array([np.mean(m) for m in marginals]),
        stderr=nan_vector(n),
        info={"n_lim": n_lim, "windows": len(windows), "marginals_per_player": [len(m) for m in marginals]},
    )


WINDOW = Estimator(
    name="window",
    run=window,
    min_budget=lambda n, options: window_cost(n, options.get("n_lim", DEFAULT_N_LIM)),
    efficient=False,
    deterministic=True,
    config_options={"max_removed": "n_lim"},
)
