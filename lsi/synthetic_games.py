"""Synthetic games with known Shapley values: the ground truth that estimators are tested and
benchmarked against, and the value-free games that plan an estimator's coalitions ahead of scoring.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsi.game import MAX_EXACT_PLAYERS, DocumentGame, Game, all_coalitions, shapley_from_table


class BernoulliDocumentGame(DocumentGame):
    """Accuracy over simulated documents: document j is right iff u_j < base value (u_j ~ U(0, 1)).

    The thresholds u_j are shared by all coalitions (common random numbers, as on a real benchmark),
    so the mean over documents tracks the base game, whose values must lie in [0, 1].
    """

    def __init__(self, base: Game, n_docs: int, seed: int = 0):
        super().__init__(base.n_players, base.names, base.chance)
        self.base = base
        self.thresholds = np.random.default_rng(seed).random(n_docs)

    def _compute_documents(self, coalitions: np.ndarray) -> np.ndarray:
        return (self.thresholds[None, :] < self.base.value(coalitions)[:, None]).astype(float)


class PairwiseGame(Game):
    """v(S) = constant + sum_{i in S} w_i + sum_{i<j in S} W_ij: interactions of order <= 2.

    Shapley value: w_i + (1/2) sum_j W_ij. `interactions` is symmetric with a zero diagonal.
    """

    def __init__(
        self,
        weights: Sequence[float],
        interactions: np.ndarray,
        constant: float = 0.0,
        names: Sequence[str] | None = None,
    ):
        weights = np.asarray(weights, dtype=float)
        interactions = np.asarray(interactions, dtype=float)
        n = weights.size
        if interactions.shape != (n, n):
            raise ValueError(f"interactions must be ({n}, {n}); got {interactions.shape}")
        if not np.allclose(interactions, interactions.T) or np.any(np.diag(interactions)):
            raise ValueError("interactions must be symmetric with a zero diagonal")
        super().__init__(n, names)
        self.weights, self.interactions, self.constant = weights, interactions, float(constant)

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        x = coalitions.astype(float)
        return self.constant + x @ self.weights + 0.5 * np.einsum("mi,ij,mj->m", x, self.interactions, x)

    def shapley_values(self) -> np.ndarray:
        return self.weights + 0.5 * self.interactions.sum(axis=1)


class AdditiveGame(PairwiseGame):
    """v(S) = constant + sum_{i in S} w_i; Shapley value w_i."""

    def __init__(self, weights: Sequence[float], constant: float = 0.0, names: Sequence[str] | None = None):
        n = len(weights)
        super().__init__(weights, np.zeros((n, n)), constant, names)


class UnanimityGame(Game):
    """v(S) = constant + sum_k a_k [T_k subset of S]; Shapley value: a_k split equally among T_k."""

    def __init__(
        self,
        n_players: int,
        subsets: Sequence[Sequence[int]],
        coefficients: Sequence[float],
        constant: float = 0.0,
        names: Sequence[str] | None = None,
    ):
        super().__init__(n_players, names)
        if len(subsets) != len(coefficients):
            raise ValueError("need one coefficient per subset")
        members = np.zeros((len(subsets), n_players), dtype=bool)
        for k, subset in enumerate(subsets):
            if not subset or any(not 0 <= i < n_players for i in subset):
                raise ValueError(f"subset {subset!r} must be non-empty with indices in 0..{n_players - 1}")
            members[k, list(subset)] = True
        self.members = members
        self.coefficients = np.asarray(coefficients, dtype=float)
        self.constant = float(constant)

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        contains = coalitions.astype(int) @ self.members.T.astype(int) == self.members.sum(axis=1)
        return self.constant + contains @ self.coefficients

    def shapley_values(self) -> np.ndarray:
        return (self.coefficients / self.members.sum(axis=1)) @ self.members


class CornerstoneGame(Game):
    """A synthetic layer game: at chance unless every cornerstone player is kept (and at least
    `min_kept` players in all, as a model collapses when too many layers go); above that,
    chance + base + small additive contributions + interactions of adjacent players.

    The collapse threshold makes interactions of every order, so exact values come from
    enumeration (n <= MAX_EXACT_PLAYERS).
    """

    def __init__(
        self,
        n_players: int = 10,
        cornerstones: Sequence[int] = (0, 1),
        chance: float = 0.25,
        base: float = 0.3,
        min_kept: int | None = None,
        seed: int = 0,
        names: Sequence[str] | None = None,
    ):
        super().__init__(n_players, names, chance)
        rng = np.random.default_rng(seed)
        self.cornerstones = np.asarray(cornerstones, dtype=int)
        self.base = base
        self.min_kept = n_players // 2 if min_kept is None else min_kept
        self.weights = rng.uniform(0.0, 0.03, n_players)
        self.adjacent = rng.uniform(0.0, 0.03, n_players - 1)

    def _compute(self, coalitions: np.ndarray) -> np.ndarray:
        alive = coalitions[:, self.cornerstones].all(axis=1) & (coalitions.sum(axis=1) >= self.min_kept)
        x = coalitions.astype(float)
        gain = self.base + x @ self.weights + (x[:, :-1] * x[:, 1:]) @ self.adjacent
        return self.chance + alive * gain

    def shapley_values(self) -> np.ndarray:
        """Exact values by enumerating all 2^n coalitions (not charged to `evaluations`)."""
        if self.n_players > MAX_EXACT_PLAYERS:
            raise ValueError(f"enumeration needs n <= {MAX_EXACT_PLAYERS} players; n = {self.n_players}")
        return shapley_from_table(self._compute(all_coalitions(self.n_players)))
