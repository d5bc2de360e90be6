"""Antithetic permutation sampling: each random order is walked together with its reverse.

A walk starts from the full coalition and removes players one at a time in the order; a player's
marginal contribution is the value lost when it goes. (Removing in order pi visits the same
coalitions as adding in reversed pi, so this is ordinary permutation sampling.) A forward+reverse
pair sees every pair of players once in each relative order, which makes one pair EXACT on games
whose interactions have order <= 2. Pairs continue while the next pair's new distinct coalitions
fit in the budget; a pair whose coalitions were all requested before costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimator, Ledger, Run
from lsi.game import Game

# (ledger, walks) -> (values along both walks (2, n+1), NaN past a stop; stops (2,): steps evaluated)
PairWalker = Callable[[Ledger, np.ndarray], tuple[np.ndarray, np.ndarray]]


def removal_walks(order: np.ndarray) -> np.ndarray:
    """(2, n+1, n) coalitions along the removal walks of `order` and of its reverse (row k: k removed)."""
    n = order.size
    position = np.empty((2, n), dtype=int)
    position[0, order] = np.arange(n)
    position[1, order[::-1]] = np.arange(n)
    return position[:, None, :] >= np.arange(n + 1)[None, :, None]


def pair_marginals(order: np.ndarray, walk_values: np.ndarray, stops: np.ndarray) -> np.ndarray:
    """Per-player marginal contributions averaged over the two walks; 0 past a walk's stop."""
    marginals = np.zeros((2, order.size))
    for walk, walk_order in enumerate((order, order[::-1])):
        stop = stops[walk]
        marginals[walk, walk_order[:stop]] = walk_values[walk, :stop] - walk_values[walk, 1 : stop + 1]
    return marginals.mean(axis=0)


def full_pair(ledger: Ledger | Game, walks: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Evaluate both walks completely, in one batch."""
    n = walks.shape[2]
    return ledger.value(walks.reshape(-1, n)).reshape(2, n + 1), np.array([n, n])


def sample_pairs(
    ledger: Ledger, budget: int, seed: int, max_pairs: int | None, walk_pair: PairWalker
) -> tuple[np.ndarray, list[np.ndarray], list[np.ndarray]]:
    """Walk antithetic pairs until the next full pair might not fit the budget, or `max_pairs`
    (default: `budget`, so that a game whose coalitions are all requested still stops).

    Returns the per-pair averaged marginals (pairs, n), the orders and the stops, for replay.
    """
    limit = budget if max_pairs is None else max_pairs
    if limit < 1:
        raise UserError(f"max_pairs must be >= 1; got {max_pairs}")
    rng = np.random.default_rng(seed)
    n = ledger.n_players
    marginals, orders, stops = [], [], []
    while len(marginals) < limit:
        order = rng.permutation(n)
        walks = removal_walks(order)
        if ledger.evaluations + ledger.cost(walks.reshape(-1, n)) > budget:
            break
        walk_values, walk_stops = walk_pair(ledger, walks)
        marginals.append(pair_marginals(order, walk_values, walk_stops))
        orders.append(order)
        stops.append(walk_stops)
    return np.array(marginals).reshape(-1, n), orders, stops


def replay(game: Game, orders: list[np.ndarray], stops: list[np.ndarray]) -> np.ndarray:
    """The same walks, cut at the same stops, valued on another game (a bootstrap table)."""
    marginals = []
    for order, walk_stops in zip(orders, stops, strict=True):
        walks = removal_walks(order)
        walk_values = np.full((2, order.size + 1), np.nan)
        for walk, stop in enumerate(walk_stops):
            walk_values[walk, : stop + 1] = game.value(walks[walk, : stop + 1])
        marginals.append(pair_marginals(order, walk_values, walk_stops))
    return np.mean(marginals, axis=0)


def summarise(marginals: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean over pairs and its standard error (NaN with fewer than two pairs)."""
    pairs = len(marginals)
    if pairs < 2:
        return marginals.mean(axis=0), np.full(marginals.shape[1], np.nan)
    return marginals.mean(axis=0), marginals.std(axis=0, ddof=1) / np.sqrt(pairs)


def permutation(ledger: Ledger, budget: int, seed: int, max_pairs: int | None = None) -> Run:
    marginals, orders, stops = sample_pairs(ledger, budget, seed, max_pairs, full_pair)
    values, stderr = summarise(marginals)
    return Run(
        values=values,
        stderr=stderr,
        info={"pairs": len(orders), "max_pairs": budget if max_pairs is None else max_pairs},
        replay=lambda game: replay(game, orders, stops),
    )


def pair_cost(n_players: int) -> int:
    """Distinct coalitions of one forward+reverse pair: full, empty and 2(n-1) in between."""
    return 2 * n_players


PERMUTATION = Estimator(
    name="permutation",
    run=permutation,
    min_budget=lambda n, options: pair_cost(n),
    efficient=True,
)
