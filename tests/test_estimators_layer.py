"""The `layer` estimator: exact at 2^n, exact on games of order two, its regression-adjusted identity,
its bias shrinking with the budget, and its plan (synthetic games and the committed enumerated games)."""

from __future__ import annotations

from math import comb

import numpy as np
import pytest
from test_estimators import additive_game, unanimity_game
from test_real_game import GAMES as REAL_GAMES
from test_real_game import STORE

from lsi.errors import UserError
from lsi.estimators import ESTIMATORS, estimate, planned_coalitions, resolve_budget
from lsi.estimators.layer import layer_sample, window_stratum
from lsi.estimators.regression_msr import msr_terms
from lsi.estimators.window import window_cost
from lsi.game import TableGame, all_coalitions, shapley_from_table
from lsi.layer_game import LayerGame
from lsi.players import window_coalitions
from lsi.store import ScoreStore
from lsi.synthetic_games import CornerstoneGame, PairwiseGame

MIN = ESTIMATORS["layer"].min_budget


def random_table(n: int, seed: int) -> np.ndarray:
    return np.random.default_rng(seed).normal(size=2**n)


def banded_game(n: int = 10, width: int = 2, seed: int = 0) -> PairwiseGame:
    """Main effects plus interactions of players at most `width` apart, as layer games have them."""
    rng = np.random.default_rng(seed)
    distance = np.abs(np.subtract.outer(np.arange(n), np.arange(n)))
    upper = np.triu(rng.normal(size=(n, n)) * (distance <= width), 1)
    return PairwiseGame(rng.normal(size=n), upper + upper.T, constant=0.4)


@pytest.mark.parametrize("n", range(1, 9))
def test_exact_at_full_budget_on_random_games(n: int) -> None:
    values = random_table(n, seed=n)
    for seed in range(3):
        result = estimate(TableGame(values), "layer", 2**n, seed=seed, bootstrap=0)
        assert result.evaluations == 2**n
        assert np.abs(result.values - shapley_from_table(values)).max() < 1e-10


@pytest.mark.parametrize("name", REAL_GAMES)
@pytest.mark.parametrize("value", ["margin", "score"])
def test_exact_at_full_budget_on_the_enumerated_games(name: str, value: str) -> None:
    store = ScoreStore.open(STORE)
    parent = LayerGame(store, value)
    game = parent.restricted([parent.names.index(p) for p in REAL_GAMES[name]])
    table = game.value(all_coalitions(game.n_players))
    result = estimate(TableGame(table), "layer", 2**game.n_players, seed=7, bootstrap=0)
    assert np.abs(result.values - shapley_from_table(table)).max() < 1e-10


def test_exact_at_full_budget_on_a_cornerstone_game() -> None:
    game = CornerstoneGame(10, seed=2)
    result = estimate(game, "layer", 2**10, seed=0, bootstrap=0)
    assert np.abs(result.values - game.shapley_values()).max() < 1e-10


def test_exact_on_additive_games_at_every_budget_from_its_minimum() -> None:
    game = additive_game()
    n = game.n_players
    for budget in [MIN(n, {}), MIN(n, {}) + 1, 21, 30, 50, 77, 100, 128]:
        for seed in range(5):
            result = estimate(game, "layer", budget, seed=seed, bootstrap=0)
            assert np.abs(result.values - game.shapley_values()).max() < 1e-10, (budget, seed)
            assert abs(result.efficiency["gap"]) < 1e-12


@pytest.mark.parametrize("width", [1, 2, 9])
def test_exact_on_games_of_order_two_from_its_minimum_budget(width: int) -> None:
    """Neighbour interactions (width 1, 2) and any pairwise ones (9): every coalition comes with its
    complement, under which a pairwise term is symmetric, so it cannot bias the fit."""
    game = banded_game(width=width)
    for budget in [MIN(10, {}), 28, 40, 64]:
        result = estimate(game, "layer", budget, seed=budget, bootstrap=0)
        assert np.abs(result.values - game.shapley_values()).max() < 1e-10


def test_not_exact_on_higher_order_games_below_full_budget() -> None:
    """The previous tests can fail: a unanimity game of order four defeats a small design."""
    game = unanimity_game()
    result = estimate(game, "layer", 30, seed=0, bootstrap=0)
    assert np.abs(result.values - game.shapley_values()).max() > 1e-3


@pytest.mark.parametrize("budget", [22, 28, 57, 200, 1024])
def test_it_is_its_own_regression_adjusted_monte_carlo_estimate(budget: int) -> None:
    """The consistency argument: with f the fitted additive game (f(S) = v(empty) + sum of the values
    in S), the Horvitz-Thompson MSR estimate of phi(v - f) over the design is 0, so the estimate is
    phi(f) + MSR(v - f); at 2^n coalitions every share is 1/binom(n, |S|) and MSR is exact."""
    values = random_table(10, seed=budget)
    game = TableGame(values)
    sample = layer_sample(10, budget, seed=3)
    phi = estimate(game, "layer", budget, seed=3, bootstrap=0).values
    v = game.value(sample.coalitions)
    rows, share = sample.coalitions[2:], sample.share[2:]
    residual = v[2:] - (v[0] + rows @ phi)
    assert np.abs(share @ msr_terms(rows, residual)).max() < 1e-12
    if budget == 2**10:
        assert np.allclose(share, [1 / comb(10, int(s)) for s in rows.sum(axis=1)], rtol=1e-12)


def test_the_shares_are_horvitz_thompson_weights() -> None:
    """Over a size, the shares sum to the count of that size's coalitions over binom(n, size) = 1: the
    fixed runs stand for themselves, the sampled pairs for the rest of their class."""
    for budget in [22, 40, 77, 300]:
        sample = layer_sample(10, budget, seed=1)
        sizes = sample.coalitions.sum(axis=1)
        for size in range(1, 10):
            at = sizes == size
            units = sample.info["units_per_class"][min(size, 10 - size)]
            known = np.count_nonzero(at & (sample.fold == -1))
            assert sample.share[at].sum() == pytest.approx(1.0 if units else known / comb(10, size))


def test_the_fixed_stratum_is_the_window_coalitions_and_their_complements() -> None:
    sample = layer_sample(10, 80, seed=0)
    assert sample.info["window_length"] == 2 and sample.info["stratum"] == 40
    keys = {"".join("1" if b else "0" for b in row) for row in sample.coalitions[:40]}
    flip = str.maketrans("01", "10")
    assert keys == {*window_coalitions(10, 2), *(w.translate(flip) for w in window_coalitions(10, 2))}
    assert layer_sample(10, 79, seed=0).info["window_length"] == 1  # runs of 2 would take over half
    # The window's own cost holds only the single runs and their complements (L = 1), plus pairs.
    small = layer_sample(10, window_cost(10), seed=0)
    assert small.info["window_length"] == 1 and len(window_stratum(10, 1)) == 22
    assert len(small.coalitions) == window_cost(10)


def test_bias_shrinks_with_the_budget() -> None:
    """A regression is biased at small budgets (a ratio of estimates); the bias vanishes as strata are
    filled. On a 10-player cornerstone game, over 300 seeds: at 28 coalitions the mean is many standard
    errors off, at 300 every player's mean lies within 3 standard errors of the exact value."""
    game = CornerstoneGame(10, seed=1)
    table = game._compute(all_coalitions(10))
    truth = shapley_from_table(table)

    def z_scores(budget: int) -> np.ndarray:
        runs = np.array(
            [estimate(TableGame(table), "layer", budget, seed=s, bootstrap=0).values for s in range(300)]
        )
        return (runs.mean(axis=0) - truth) / (runs.std(axis=0, ddof=1) / np.sqrt(len(runs)))

    assert np.abs(z_scores(28)).max() > 5
    assert np.abs(z_scores(300)).max() < 3


def test_its_coalitions_are_planned_ahead() -> None:
    game = CornerstoneGame(9, seed=4)
    plan = planned_coalitions("layer", 9, 60, seed=5)
    estimate(game, "layer", 60, seed=5, bootstrap=0)
    assert plan == game.evaluated and len(set(plan)) == len(plan) == 60
    assert plan == planned_coalitions("layer", 9, 60, seed=5)
    assert plan != planned_coalitions("layer", 9, 60, seed=6)


def test_large_games_are_sampled_without_listing_their_classes() -> None:
    sample = layer_sample(60, window_cost(60), seed=0)
    keys = {row.tobytes() for row in sample.coalitions}
    assert len(keys) == len(sample.coalitions) == window_cost(60) == 178
    assert sample.info["stratum"] == 122


def test_default_budget_is_the_window_cost() -> None:
    assert resolve_budget("layer", None, 60, 3) == window_cost(60, 3)
    assert ESTIMATORS["layer"].config_options == {"max_removed": "n_lim"}


@pytest.mark.parametrize("n_lim", [0, -1, 2.0, "3", True])
def test_bad_options_are_refused(n_lim: object) -> None:
    with pytest.raises(UserError, match="n_lim"):
        estimate(additive_game(), "layer", 40, n_lim=n_lim)


def test_too_small_a_budget_is_refused() -> None:
    with pytest.raises(UserError, match="'layer' on 7 players needs a budget of at least 16"):
        estimate(additive_game(), "layer", 15)
