"""Pairwise Shapley interactions between players of a game small enough to enumerate (2^n coalitions),
computed exactly by shapiq's `ExactComputer`.

k-SII of order 2 (Bord et al. 2023) splits the game's value into the players' main effects and pairs'
interactions that sum to v(N) - v(empty); a negative pair is redundant (each does part of the
other's work), a positive pair complementary. They answer why an estimator that only removes
neighbours (the paper's window) ranks a player where it does.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from shapiq import ExactComputer

from lsi.game import Game

INDICES = ("k-SII", "FSII", "STII")


def pairwise_interactions(game: Game, index: str = "k-SII") -> tuple[pd.Series, pd.DataFrame]:
    """(main effects, symmetric matrix of pair interactions) of an order-2 index, exactly."""
    if index not in INDICES:
        raise ValueError(f"unknown interaction index {index!r}; choose one of {', '.join(INDICES)}")
    computer = ExactComputer(
        lambda coalitions: game.value(np.asarray(coalitions, dtype=bool)), game.n_players
    )
    values = computer(index=index, order=2)
    names = list(game.names)
    main = pd.Series([values[(i,)] for i in range(game.n_players)], index=names, name=index)
    matrix = pd.DataFrame(np.zeros((game.n_players, game.n_players)), index=names, columns=names)
    for i in range(game.n_players):
        for j in range(i + 1, game.n_players):
            matrix.iloc[i, j] = matrix.iloc[j, i] = values[(i, j)]
    return main, matrix


def by_distance(matrix: pd.DataFrame) -> pd.DataFrame:
    """Mean |interaction| of the pairs at each distance in player order: are neighbours the ones that
    interact?"""
    n = len(matrix)
    rows = [
        {"distance": d, "pairs": n - d, "mean_abs": float(np.mean(np.abs(np.diag(matrix.to_numpy(), d))))}
        for d in range(1, n)
    ]
    return pd.DataFrame(rows)
