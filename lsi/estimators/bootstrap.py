"""Percentile intervals from resampling documents, without evaluating the game again.

Each replicate draws the game's documents with replacement, builds a `TableGame` whose values are
the resampled per-document means of exactly the coalitions the estimate used, and recomputes the
estimate on it with the same seed (or the run's `replay`, which also holds value-dependent choices
fixed). Deterministic and value-independent samplers request the same coalitions again, so the
table always has them; any evaluation of the real game during the bootstrap is an error.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from lsi.estimators.base import Ledger, nan_vector
from lsi.game import Game, TableGame, from_bit_strings

LEVEL = 0.95


def document_intervals(
    ledger: Ledger, recompute: Callable[[Game], np.ndarray], replicates: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(ci_low, ci_high) at LEVEL; NaN when the game has no per-document values or replicates == 0."""
    game = ledger.game
    keys = ledger.keys
    documents = game.doc_values(from_bit_strings(keys)) if replicates > 0 else None
    if documents is None:
        return nan_vector(game.n_players), nan_vector(game.n_players)
    before = game.evaluations
    rng = np.random.default_rng(seed)
    samples = []
    for _ in range(replicates):
        resampled = documents[:, rng.integers(0, documents.shape[1], documents.shape[1])].mean(axis=1)
        table = TableGame(dict(zip(keys, resampled, strict=True)), names=game.names, chance=game.chance)
        samples.append(recompute(table))
    if game.evaluations != before:
        raise RuntimeError("the bootstrap evaluated the real game; it must only read the resampled table")
    tail = 100 * (1 - LEVEL) / 2
    low, high = np.percentile(np.array(samples), [tail, 100 - tail], axis=0)
    return low, high
