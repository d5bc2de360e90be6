"""What every estimator shares: the budget ledger, a run's raw result, the registry entry, `Estimate`."""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

from lsi.game import Game, as_coalitions, coalition_keys


class Ledger:
    """One estimate's view of a game: it counts the distinct coalitions this estimate requested.

    That count is what the estimate is charged, whether or not the game had them memoised, so an
    estimator's cost does not depend on what ran before it. Requests that would take it past its
    budget are refused before anything is evaluated.
    """

    def __init__(self, game: Game, budget: int | None = None):
        self.game = game
        self.budget = budget
        self.n_players = game.n_players
        self.chance = game.chance
        self.calls = 0  # coalition rows requested, repeats included
        self._requested: dict[bytes, None] = {}

    @property
    def evaluations(self) -> int:
        """Distinct coalitions requested so far."""
        return len(self._requested)

    @property
    def keys(self) -> list[bytes]:
        """Keys of the requested coalitions, in first-request order."""
        return list(self._requested)

    def cost(self, coalitions: np.ndarray) -> int:
        """How many distinct coalitions of a batch this estimate has not requested yet."""
        keys = coalition_keys(as_coalitions(coalitions, self.n_players))
        return len({key for key in keys if key not in self._requested})

    def value(self, coalitions: np.ndarray) -> np.ndarray:
        coalitions = as_coalitions(coalitions, self.n_players)
        new = [key for key in coalition_keys(coalitions) if key not in self._requested]
        total = self.evaluations + len(set(new))
        if self.budget is not None and total > self.budget:
            raise RuntimeError(f"{total} distinct coalitions would exceed the budget of {self.budget}")
        self._requested.update(dict.fromkeys(new))
        self.calls += len(coalitions)
        return self.game.value(coalitions)


@dataclass
class Run:
    """An estimator's raw result; `replay` recomputes the values on another game (a bootstrap
    table) with every random and value-dependent choice held fixed, where plain re-running would not."""

    values: np.ndarray
    stderr: np.ndarray
    info: dict = field(default_factory=dict)
    replay: Callable[[Game], np.ndarray] | None = None


@dataclass(frozen=True)
class Estimator:
    """A registry entry, called one way by every estimator: `run(ledger, budget, seed, **options)`.

    Deterministic enumerations (`deterministic`) have a fixed cost, `min_budget`, and ignore the
    seed; their budget may be None. Sampling estimators need a budget. `efficient`: the values sum
    to v(N) - v(empty) by construction. `config_options` maps the fields of `lsi.config.RunConfig`
    that the estimator reads to its option names (the window's `max_removed` is its `n_lim`).
    """

    name: str
    run: Callable[..., Run]
    min_budget: Callable[[int, dict], int]
    efficient: bool
    deterministic: bool = False
    config_options: Mapping[str, str] = field(default_factory=dict)


@dataclass
class Estimate:
    """Shapley value estimates of one game by one estimator, with their cost and uncertainty."""

    estimator: str
    players: tuple[str, ...]
    values: np.ndarray
    stderr: np.ndarray  # NaN where the estimator defines none
    ci_low: np.ndarray  # 95% bootstrap over documents; NaN when the game has no doc_values
    ci_high: np.ndarray
    evaluations: int  # distinct coalitions this estimate requested
    budget: int | None
    seed: int | None
    efficiency: dict
    info: dict

    def table(self) -> pd.DataFrame:
        """One row per player; rank 1 = largest value (ties share the best rank)."""
        frame = pd.DataFrame(
            {
                "player": list(self.players),
                "value": self.values,
                "stderr": self.stderr,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
            }
        )
        frame["rank"] = frame["value"].rank(ascending=False, method="min").astype(int)
        return frame

    @classmethod
    def from_dict(cls, record: Mapping[str, object]) -> Estimate:
        """An estimate back from `to_dict`'s record (extra keys, e.g. a saved file's configuration and
        provenance, are ignored): None becomes NaN again in the value vectors."""
        vectors = {
            key: np.array([np.nan if v is None else v for v in record[key]], dtype=float)
            for key in ("values", "stderr", "ci_low", "ci_high")
        }
        return cls(
            estimator=str(record["estimator"]),
            players=tuple(record["players"]),
            evaluations=int(record["evaluations"]),
            budget=record["budget"],
            seed=record["seed"],
            efficiency=dict(record["efficiency"]),
            info=dict(record["info"]),
            **vectors,
        )

    @classmethod
    def load(cls, path: Path) -> Estimate:
        """An estimate from a JSON file written by `lsi.results.save_estimate` (or `lsi shapley`)."""
        return cls.from_dict(json.loads(Path(path).read_text()))

    def to_dict(self) -> dict:
        """JSON-ready: arrays become lists and NaN becomes None."""
        return _jsonable(
            {
                "estimator": self.estimator,
                "players": list(self.players),
                "values": self.values,
                "stderr": self.stderr,
                "ci_low": self.ci_low,
                "ci_high": self.ci_high,
                "evaluations": self.evaluations,
                "budget": self.budget,
                "seed": self.seed,
                "efficiency": self.efficiency,
                "info": self.info,
            }
        )


def _jsonable(obj: object) -> object:
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, list | tuple | np.ndarray):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        obj = obj.item()
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def nan_vector(n: int) -> np.ndarray:
    return np.full(n, np.nan)
