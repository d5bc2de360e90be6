"""Shapley value estimators behind one call: `estimate(game, name, budget, seed)` -> `Estimate`.

Every estimator is charged the distinct coalitions it requests (its `Ledger`); the game's memo
makes coalitions already computed free in model time, never in the reported cost. The efficiency
report needs v(N) and v(empty): estimators that did not request them (e.g. `window`, which never
needs v(empty)) get them from the game outside their budget, counted in
`efficiency["extra_evaluations"]`.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from lsi.errors import UserError
from lsi.estimators.base import Estimate, Estimator, Ledger
from lsi.estimators.bootstrap import document_intervals
from lsi.estimators.exact import EXACT
from lsi.estimators.layer import LAYER
from lsi.estimators.permutation import PERMUTATION
from lsi.estimators.proxy import PROXYSHAP
from lsi.estimators.regression import LEVERAGE, POLYSHAP
from lsi.estimators.regression_msr import REGRESSION_MSR
from lsi.estimators.shapiq_estimators import SHAPIQ_ESTIMATORS
from lsi.estimators.truncated import TRUNCATED
from lsi.estimators.window import WINDOW, WINDOW_EFFICIENT, window_cost
from lsi.game import MAX_EXACT_PLAYERS, Game, MissingCoalitionError
from lsi.synthetic_games import AdditiveGame

ESTIMATORS: dict[str, Estimator] = {
    e.name: e
    for e in (
        WINDOW,
        WINDOW_EFFICIENT,
        EXACT,
        PERMUTATION,
        TRUNCATED,
        *SHAPIQ_ESTIMATORS,
        LEVERAGE,
        POLYSHAP,
        REGRESSION_MSR,
        PROXYSHAP,
        LAYER,
    )
}

__all__ = [
    "ESTIMATORS",
    "MAX_EXACT_PLAYERS",
    "Estimate",
    "estimate",
    "estimator_options",
    "get_estimator",
    "planned_coalitions",
    "resolve_budget",
]


def get_estimator(name: str) -> Estimator:
    if name not in ESTIMATORS:
        raise UserError(f"unknown estimator '{name}'; choose one of: {', '.join(ESTIMATORS)}")
    return ESTIMATORS[name]


def estimate(
    game: Game,
    estimator: str,
    budget: int | None = None,
    seed: int = 0,
    bootstrap: int = 200,
    **options: object,
) -> Estimate:
    """Estimate the Shapley values of `game`'s players.

    `budget`: distinct coalitions this estimate may request (required by sampling estimators;
    optional for `window` and `exact`, whose cost is fixed). `bootstrap`: document resamples for
    95% intervals when the game has per-document values (0 to skip). `options` go to the estimator.
    """
    spec = get_estimator(estimator)
    _check_budget(spec, game.n_players, budget, options)
    ledger = Ledger(game, budget)
    run = spec.run(ledger, budget, seed, **options)
    recompute = run.replay or (lambda table: spec.run(Ledger(table, budget), budget, seed, **options).values)
    ci_low, ci_high = document_intervals(ledger, recompute, bootstrap, seed)
    return Estimate(
        estimator=spec.name,
        players=game.names,
        values=run.values,
        stderr=run.stderr,
        ci_low=ci_low,
        ci_high=ci_high,
        evaluations=ledger.evaluations,
        budget=budget,
        seed=None if spec.deterministic else seed,
        efficiency=_efficiency(ledger, run.values, spec.efficient),
        info={**run.info, "bootstrap": bootstrap},
    )


def estimator_options(estimator: str, config: Mapping[str, object]) -> dict:
    """The estimator's options taken from a configuration's values (`RunConfig.parameters()`, or any
    mapping of its field names), as the registry entry maps them."""
    spec = get_estimator(estimator)
    return {option: config[name] for name, option in spec.config_options.items() if name in config}


def resolve_budget(estimator: str, budget: int | None, n_players: int, max_removed: int = 3) -> int | None:
    """A sampling estimator given no budget gets the window estimator's cost, so that the two compare
    at equal cost; deterministic estimators keep theirs (None: their fixed cost)."""
    if budget is None and not get_estimator(estimator).deterministic:
        return window_cost(n_players, max_removed)
    return budget


def planned_coalitions(
    estimator: str, n_players: int, budget: int | None = None, seed: int = 0, **options: object
) -> list[str]:
    """The coalitions `estimate` will ask for, known before any is scored, so that they can be scored
    in one batch on another machine. Only for estimators whose choice does not depend on the values:
    the plan is run on a game that sits at its chance level and on one far from it with random
    weights, and must come out the same on both."""
    games = [
        AdditiveGame(np.zeros(n_players)),
        AdditiveGame(np.random.default_rng(0).normal(size=n_players), constant=1e3),
    ]
    plans = []
    for game in games:
        game.chance = 0.0
        estimate(game, estimator, budget, seed, bootstrap=0, **options)
        plans.append(game.evaluated)
    if plans[0] != plans[1]:
        raise UserError(
            f"'{estimator}' picks its coalitions from the values it has seen, so they cannot be listed "
            "ahead of scoring: run it where lm-eval runs, or export the coalitions of a planned estimator"
        )
    return plans[0]


def _check_budget(spec: Estimator, n_players: int, budget: int | None, options: dict) -> None:
    needed = spec.min_budget(n_players, options)
    where = f"'{spec.name}' on {n_players} players"
    if budget is None:
        if not spec.deterministic:
            raise UserError(f"{where} needs a budget (at least {needed} distinct evaluations)")
    elif budget < needed:
        kind = "a budget of" if spec.deterministic else "a budget of at least"
        raise UserError(f"{where} needs {kind} {needed} distinct evaluations; got budget={budget}")


def _efficiency(ledger: Ledger, values: np.ndarray, guaranteed: bool) -> dict:
    """Sum of the values against v(N) - v(empty); NaN if a table game lacks either."""
    ends = np.stack([np.ones(ledger.n_players, bool), np.zeros(ledger.n_players, bool)])
    extra = ledger.cost(ends)
    try:
        v_full, v_empty = ledger.game.value(ends)
    except MissingCoalitionError:
        v_full = v_empty = np.nan
    total = float(np.sum(values))
    return {
        "sum": total,
        "v_full_minus_v_empty": float(v_full - v_empty),
        "gap": total - float(v_full - v_empty),
        "guaranteed": guaranteed,
        "extra_evaluations": extra,
    }
