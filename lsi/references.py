"""Reference Shapley values of a game too large to enumerate: antithetic permutation walks already in
its store, pooled over seeds, and how far they are from converged.

A reference is what the estimators are judged against, so its own noise has to be stated, not
assumed away. Three measures, all from the walk pairs (each pair is an independent draw):
- the convergence criterion: each of the top ten values has a standard error below a fifth of the
  gap to its neighbour in rank;
- the walk pairs each of those would need for it, if the standard error keeps falling as 1/sqrt(pairs);
- split-half reliability: the Spearman correlation of the values from two random halves of the pairs,
  stepped up to the full count (Spearman-Brown), i.e. how well a second reference of the same size
  would agree with this one.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from lsi.analysis import game_cornerstones
from lsi.estimators import estimate
from lsi.estimators.agreement import agreement, spearman
from lsi.estimators.base import Ledger
from lsi.estimators.permutation import full_pair, sample_pairs, summarise
from lsi.game import Game, MissingCoalitionError
from lsi.layer_game import LayerGame
from lsi.store import ScoreStore

TOP = 10


@dataclass
class Reference:
    """Pooled walk pairs of one game and value."""

    marginals: np.ndarray  # (pairs, players): each pair's averaged marginal contributions
    values: np.ndarray
    stderr: np.ndarray

    @classmethod
    def from_marginals(cls, marginals: np.ndarray) -> Reference:
        values, stderr = summarise(marginals)
        return cls(marginals, values, stderr)

    @property
    def pairs(self) -> int:
        return len(self.marginals)

    def top(self, k: int = TOP) -> np.ndarray:
        return np.argsort(-self.values, kind="stable")[:k]

    def neighbour_gaps(self, k: int = TOP) -> np.ndarray:
        """For each of the top k, the gap to its nearest neighbour in rank."""
        order = np.argsort(-self.values, kind="stable")
        ranked = self.values[order]
        gaps = np.abs(np.diff(ranked))
        nearest = np.minimum(np.r_[np.inf, gaps], np.r_[gaps, np.inf])
        return nearest[: min(k, len(ranked))]

    def criterion_met(self, k: int = TOP) -> list[bool]:
        return (self.stderr[self.top(k)] < self.neighbour_gaps(k) / 5).tolist()

    def pairs_needed(self, k: int = TOP) -> np.ndarray:
        """Walk pairs at which each of the top k would meet the criterion, extrapolated from its
        standard error now (SE ~ 1/sqrt(pairs)) and its gaps as they stand."""
        ratio = self.stderr[self.top(k)] / (self.neighbour_gaps(k) / 5)
        return np.ceil(self.pairs * ratio**2)

    def split_half(self, splits: int = 200, seed: int = 0) -> tuple[float, float]:
        """(median Spearman between the values of two random halves of the pairs, that correlation
        stepped up to the full number of pairs by Spearman-Brown)."""
        if self.pairs < 4:
            raise ValueError(f"split-half reliability needs at least 4 walk pairs; got {self.pairs}")
        rng = np.random.default_rng(seed)
        half = self.pairs // 2
        rhos = []
        for _ in range(splits):
            order = rng.permutation(self.pairs)
            a, b = self.marginals[order[:half]], self.marginals[order[half : 2 * half]]
            rhos.append(spearman(a.mean(axis=0), b.mean(axis=0)))
        rho = float(np.median(rhos))
        return rho, 2 * rho / (1 + rho)


def stored_pairs(game: Game, runs: Sequence[tuple[int, int]]) -> tuple[np.ndarray, list[np.ndarray]]:
    """(per-pair marginals, orders) of the permutation estimates run with these (budget, seed), pooled:
    the walks regenerate exactly from their seeds, so a game whose store holds them needs no model."""
    marginals, orders = [], []
    for budget, seed in runs:
        pair_marginals, pair_orders, _ = sample_pairs(Ledger(game, budget), budget, seed, None, full_pair)
        marginals.append(pair_marginals)
        orders.extend(pair_orders)
    return np.concatenate(marginals), orders


def reference(game: Game, runs: Sequence[tuple[int, int]]) -> Reference:
    return Reference.from_marginals(stored_pairs(game, runs)[0])


def reference_game(path: Path, value: str | None = None, root: Path = Path(".")) -> tuple[dict, LayerGame]:
    """A reference file (`results/references/*.json`) and its game (its own value unless told),
    from the store alone."""
    record = json.loads(Path(path).read_text())
    return record, LayerGame(ScoreStore.open(root / record["store"]), value or record["value"])


def walk_runs(record: dict) -> list[tuple[int, int]]:
    return [(run["budget"], run["seed"]) for run in record["runs"]]


def load_reference(path: Path, root: Path = Path(".")) -> tuple[dict, LayerGame, Reference]:
    """A reference file, its game and its walk pairs."""
    record, game = reference_game(path, root=root)
    return record, game, reference(game, walk_runs(record))


def against_reference(
    game: LayerGame, ref: Reference, candidates: Sequence[tuple[str, int | None, int]]
) -> pd.DataFrame:
    """Each (estimator, budget, seed) whose coalitions are all stored, computed from the game's store
    and measured against its reference (`load_reference`; `agreement`, cornerstones by the package's
    rule on accuracy), with the coalitions and layer-forwards it used (a coalition keeping |S| players
    runs |S|).

    `spearman_corrected` divides the observed Spearman by the square root of the reference's own
    reliability: the classical correction for a noisy reference, an estimate of the agreement with a
    reference of unlimited walks (approximate for rank correlations; it can exceed 1)."""
    corner = game_cornerstones(LayerGame(game.store, "score"))
    reliability = ref.split_half()[1]
    rows = []
    for name, budget, seed in candidates:
        trial = game.restricted(list(range(game.n_players)))  # its own count of evaluations
        try:
            result = estimate(trial, name, budget, seed, bootstrap=0)
        except MissingCoalitionError:
            continue
        row = agreement(np.asarray(result.values), ref.values, corner)
        rows.append(
            {
                "players": game.n_players,
                "value": game.kind,
                "walk_pairs": ref.pairs,
                "reliability": reliability,
                "estimator": name,
                "budget": result.evaluations if budget is None else budget,
                "seed": seed,
                "evaluations": result.evaluations,
                "layer_forwards": sum(c.count("1") for c in trial.evaluated[: result.evaluations]),
            }
            | row
            | {"spearman_corrected": row["spearman"] / np.sqrt(reliability)}
        )
    return pd.DataFrame(rows)
