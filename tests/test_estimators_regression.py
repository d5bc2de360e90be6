"""Leverage SHAP, PolySHAP, regression-adjusted MSR and ProxySHAP against exact enumeration (synthetic
games, fast)."""

from __future__ import annotations

from itertools import combinations, product

import numpy as np
import pytest
from test_estimators import additive_game, pairwise_game, unanimity_game

from lsi.estimators import ESTIMATORS, estimate, planned_coalitions
from lsi.estimators.proxy import tree_fit
from lsi.estimators.regression import kernel_regression
from lsi.estimators.regression_msr import adjusted_estimate, polynomial_fit
from lsi.estimators.sampling import CoalitionSample, classes, draw_units, kernelshap_sample, sample_units
from lsi.game import TableGame, all_coalitions
from lsi.synthetic_games import (
    BernoulliDocumentGame,
    CornerstoneGame,
    UnanimityGame,
)

NEW = ["leverage", "polyshap", "regression_msr", "proxyshap"]
SMALL_TREES = {"trees": 10, "depth": 3}  # a cheaper proxy where a test fits hundreds


def table(game) -> TableGame:
    """The game as a full table: values that do not depend on how coalitions are batched."""
    return TableGame(game._compute(all_coalitions(game.n_players)), chance=game.chance)


def projected_rank(coalitions: np.ndarray) -> int:
    n = coalitions.shape[1]
    sizes = coalitions.sum(axis=1)
    inner = coalitions[(sizes > 0) & (sizes < n)].astype(float)
    return int(np.linalg.matrix_rank(inner - inner.sum(axis=1, keepdims=True) / n)) if len(inner) else 0


# ---------------------------------------------------------------- leverage


@pytest.mark.parametrize("pairing", [True, False])
def test_leverage_is_exact_on_additive_games_once_the_design_has_rank(pairing):
    """Exact to 1e-10 whenever the sampled coalitions identify the n-1 free directions (a coalition and
    its complement give one), and then at every budget from 30 of 128 coalitions on; below full rank it
    is the minimum-norm solution and not exact, so the rank condition is necessary as well."""
    game = additive_game()
    n = game.n_players
    exact, deficient = 0, 0
    for budget in [ESTIMATORS["leverage"].min_budget(n, {"pairing": pairing}), 16, 20, 30, 40, 64, 100, 128]:
        for seed in range(12):
            result = estimate(game, "leverage", budget, seed=seed, bootstrap=0, pairing=pairing)
            error = np.abs(result.values - game.shapley_values()).max()
            full_rank = projected_rank(sample_units(n, budget, seed, pairing).coalitions) == n - 1
            assert (error < 1e-10) == full_rank, (budget, seed, error)
            assert budget < 30 or full_rank
            exact, deficient = exact + full_rank, deficient + (not full_rank)
            assert abs(result.efficiency["gap"]) < 1e-12
    assert exact > 60 and (deficient > 0 or not pairing)


def test_leverage_solves_the_constrained_least_squares():
    """The paper's projection gives the same values as the Lagrange (KKT) system of the same problem."""
    rng = np.random.default_rng(4)
    n = 6
    rows = rng.random((25, n)) < 0.5
    rows = rows[(rows.sum(axis=1) > 0) & (rows.sum(axis=1) < n)]
    values, weights = rng.normal(size=len(rows)), rng.random(len(rows)) + 0.1
    v_empty, v_full = 0.3, 1.7
    z = rows.astype(float)
    kkt = np.block([[2 * z.T @ (weights[:, None] * z), np.ones((n, 1))], [np.ones((1, n)), np.zeros((1, 1))]])
    rhs = np.concatenate([2 * z.T @ (weights * (values - v_empty)), [v_full - v_empty]])
    expected = np.linalg.solve(kkt, rhs)[:n]
    assert np.allclose(kernel_regression(rows, values, weights, v_empty, v_full), expected, atol=1e-10)


def test_leverage_samples_without_replacement_in_complement_pairs_uniformly_over_sizes():
    n, budget = 12, 402
    sample = sample_units(n, budget, seed=3)
    rows = sample.coalitions
    keys = {row.tobytes() for row in rows}
    assert len(keys) == len(rows) == budget  # distinct, and the whole budget spent
    assert all((~row).tobytes() in keys for row in rows)  # every complement is there
    assert rows[0].sum() == 0 and rows[1].all()
    per_size = np.bincount(rows.sum(axis=1), minlength=n + 1)
    # 200 pairs: the 12 singletons (and their complements) are enumerated, the other sizes share the
    # remaining mass equally (the middle size counts once), up to rounding
    assert per_size[1] == per_size[11] == 12 and sample.info["enumerated_sizes"] == [0, 1, 11, 12]
    assert per_size[2:11].max() - per_size[2:11].min() <= 2
    # Shares: each sampled size stands for all of it, so the shares of a size sum to one
    for size in range(1, n):
        assert np.isclose(sample.share[rows.sum(axis=1) == size].sum(), 1.0)


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("make_game", [unanimity_game, pairwise_game, lambda: CornerstoneGame(7)])
def test_exact_at_full_budget(name, make_game):
    game = make_game()
    result = estimate(game, name, budget=2**game.n_players, seed=1, bootstrap=0)
    assert result.evaluations == 2**game.n_players
    assert np.allclose(result.values, game.shapley_values(), atol=1e-10)


# ---------------------------------------------------------------- polyshap


@pytest.mark.parametrize("make_game", [unanimity_game, lambda: CornerstoneGame(10)])
def test_paired_polyshap_of_degree_two_is_paired_kernelshap(make_game):
    """The PolySHAP identity, on Leverage SHAP's coalitions: degree 2 with pairing = degree 1 (KernelSHAP)
    = leverage, to 1e-10, even on games of higher order; without pairing degree 2 is another estimator."""
    game = table(make_game())
    n = game.n_players
    for budget in [2 * n, 3 * n, 44, 100]:
        for seed in range(4):
            kernel = estimate(game, "leverage", budget, seed, bootstrap=0).values
            for degree in (1, 2):
                poly = estimate(game, "polyshap", budget, seed, bootstrap=0, degree=degree).values
                assert np.abs(poly - kernel).max() < 1e-10, (budget, seed, degree)
            unpaired = [
                estimate(game, "polyshap", budget, seed, bootstrap=0, degree=d, pairing=False).values
                for d in (1, 2)
            ]
            assert np.abs(unpaired[0] - unpaired[1]).max() > 1e-3


@pytest.mark.parametrize("budget", [30, 40, 80, 200])
def test_polyshap_on_kernelshap_coalitions_equals_kernelshap(budget):
    """On the very coalitions and weights of the repository's `kernelshap` (shapiq's paired KernelSHAP,
    same seed), degree-2 PolySHAP equals lsi's constrained KernelSHAP solve to 1e-10, and both equal
    shapiq's KernelSHAP up to its big-M efficiency weight (about 1e-8). Even budgets: shapiq leaves the
    last coalition of an odd one unpaired, which breaks the identity (checked at budget + 1)."""
    game = table(CornerstoneGame(10))
    for seed in range(3):
        first, second = table(CornerstoneGame(10)), table(CornerstoneGame(10))
        shapiq_values = estimate(first, "kernelshap", budget, seed, bootstrap=0).values
        poly = {
            d: estimate(second, "polyshap", budget, seed, bootstrap=0, degree=d, sampler="kernelshap").values
            for d in (1, 2)
        }
        assert set(first.evaluated) == set(second.evaluated)  # the same coalitions
        assert np.abs(poly[2] - poly[1]).max() < 1e-10
        assert np.abs(poly[1] - shapiq_values).max() < 1e-6
        odd = estimate(game, "polyshap", budget + 1, seed, bootstrap=0, sampler="kernelshap")
        kernel = estimate(game, "polyshap", budget + 1, seed, bootstrap=0, degree=1, sampler="kernelshap")
        assert np.abs(odd.values - kernel.values).max() > 1e-6
    sample = kernelshap_sample(10, 40, 0)
    assert len(sample.coalitions) == 40


@pytest.mark.parametrize("pairing", [True, False])
def test_polyshap_recovers_games_of_its_degree(pairing):
    """A game of order 2 is fitted exactly by degree 2 (so, paired, by KernelSHAP too); degree 1 unpaired
    is not exact on it, and a game of order 3 needs degree 3."""
    game = pairwise_game()
    result = estimate(game, "polyshap", 100, seed=2, degree=2, pairing=pairing, bootstrap=0)
    assert np.allclose(result.values, game.shapley_values(), atol=1e-10)
    linear = estimate(game, "polyshap", 100, seed=2, degree=1, pairing=False, bootstrap=0)
    assert not np.allclose(linear.values, game.shapley_values(), atol=1e-3)
    third = UnanimityGame(7, [(0, 1, 2), (2, 3), (4, 5, 6), (1,)], [1.0, -2.0, 0.7, 0.4], constant=0.1)
    cubic = estimate(third, "polyshap", 110, seed=2, degree=3, pairing=pairing, bootstrap=0)
    assert np.allclose(cubic.values, third.shapley_values(), atol=1e-10)
    quadratic = estimate(third, "polyshap", 110, seed=2, degree=2, pairing=pairing, bootstrap=0)
    assert not np.allclose(quadratic.values, third.shapley_values(), atol=1e-3)


def test_polyshap_refuses_bad_options():
    with pytest.raises(ValueError, match="degree must be an integer in 1..3"):
        estimate(pairwise_game(), "polyshap", 40, degree=4)
    with pytest.raises(ValueError, match="sampler must be one of leverage, kernelshap"):
        estimate(pairwise_game(), "polyshap", 40, sampler="uniform")


# ---------------------------------------------------------------- regression-adjusted MSR


@pytest.mark.parametrize(("name", "options"), [("regression_msr", {}), ("proxyshap", SMALL_TREES)])
def test_adjusted_estimators_are_unbiased_and_their_stderr_is_honest(name, options):
    """Mean over 500 seeds within 3 standard errors of the exact values, for every player of a 10-player
    cornerstone game (interactions of every order). The same check catches the bias of a plain
    regression (leverage) and of an unadjusted proxy on a game of higher order, so it can fail."""
    seeds = range(500)

    def check(game, name, budget, **options):
        runs = [estimate(game, name, budget, seed=s, bootstrap=0, **options) for s in seeds]
        values = np.array([r.values for r in runs])
        z = (values.mean(axis=0) - game_truth[id(game)]) / (values.std(axis=0, ddof=1) / np.sqrt(len(seeds)))
        return runs, values, np.abs(z)

    cornerstone, unanimity = CornerstoneGame(10), unanimity_game()
    game_truth = {}
    games = {}
    for original in (cornerstone, unanimity):
        games[original] = table(original)
        game_truth[id(games[original])] = original.shapley_values()
    runs, values, z = check(games[cornerstone], name, 40, **options)
    assert z.max() < 3, z
    reported = np.mean([r.stderr for r in runs], axis=0)
    ratio = reported / values.std(axis=0)  # the cross-half dependence is not counted: a little low
    assert np.all((ratio > 0.6) & (ratio < 1.25)), ratio
    assert max(abs(r.efficiency["gap"]) for r in runs) < 1e-12
    assert all(r.evaluations <= 40 for r in runs)
    assert check(games[unanimity], name, 40, **options)[2].max() < 3
    biased = (
        ("leverage", {}) if name == "regression_msr" else ("proxyshap", SMALL_TREES | {"adjustment": "none"})
    )
    assert check(games[unanimity], biased[0], 40, **biased[1])[2].max() > 3


@pytest.mark.parametrize(
    ("fit", "outcomes"),
    [(polynomial_fit(1), (2, 3)), (tree_fit(5, 2, 0.3, seed=0), (2,))],
    ids=["polynomial", "trees"],
)
def test_adjusted_expectation_over_every_outcome_is_the_shapley_value(fit, outcomes):
    """Unbiased exactly: on 5 players, averaging the estimator over every possible sequence of draws
    (weighted by its probability under the sampler) gives the exact values to 1e-12. Fitting the
    surrogate on the draws it corrects (shapiq's RegressionMSR and ProxySHAP) would not. For
    regression_msr's polynomial and for proxyshap's trees."""
    n = 5
    game = UnanimityGame(n, [(0, 1, 2), (2, 3), (1, 4), (3,)], [1.0, -2.0, 0.7, 0.4], constant=0.1)
    values = game._compute(all_coalitions(n))
    cl = classes(n, paired=True)
    q = cl.mass / cl.mass.sum()
    units = []  # (class, first coalition, probability of drawing that unit)
    for k, size in enumerate(cl.sizes):
        for members in combinations(range(n), int(size)):
            row = np.isin(np.arange(n), members)
            units.append((k, row, q[k] / cl.capacity[k]))
    assert np.isclose(sum(u[2] for u in units), 1.0)
    for draws in outcomes:
        per_fold = np.array([draws // 2, draws - draws // 2])
        expectation = np.zeros(n)
        for outcome in product(units, repeat=draws):
            rows, share, fold, probability = [np.zeros(n, bool), np.ones(n, bool)], [0.0, 0.0], [-1, -1], 1.0
            for d, (k, row, p) in enumerate(outcome):
                half = int(d >= draws // 2)
                rows += [row, ~row]
                share += [cl.share(k, q[k] * per_fold[half])] * 2
                fold += [half, half]
                probability *= p
            coalitions = np.array(rows)
            sample = CoalitionSample(coalitions, np.array(share), np.array(fold), {"pairing": True})
            index = coalitions @ (1 << np.arange(n))
            expectation += probability * adjusted_estimate(sample, values[index], fit)[0]
        assert np.allclose(expectation, game.shapley_values(), atol=1e-12)


def test_draws_follow_the_modelled_probabilities():
    """The sampler draws each unit with probability q_class / capacity, as the shares assume."""
    n, seeds = 5, 3000
    cl = classes(n, paired=True)
    counts: dict[bytes, int] = {}
    for seed in range(seeds):
        sample = draw_units(n, 12, seed)  # 5 draws, nothing enumerated
        assert sample.info["draws"] == 5 and sample.info["enumerated_sizes"] == [0, n]
        for row in sample.coalitions[2::2]:
            counts[row.tobytes()] = counts.get(row.tobytes(), 0) + 1
    total = 5 * seeds
    q = cl.mass / cl.mass.sum()
    assert len(counts) == 15
    for key, count in counts.items():
        size = int(np.frombuffer(key, dtype=bool).sum())
        p = q[size - 1] / cl.capacity[size - 1]
        assert abs(count - total * p) < 4 * np.sqrt(total * p * (1 - p))


def test_regression_msr_is_exact_where_its_surrogate_fits():
    """An additive game is fitted exactly by the degree-1 surrogate: every residual is zero."""
    game = additive_game()
    for seed in range(5):
        result = estimate(game, "regression_msr", 60, seed=seed, bootstrap=0)
        assert np.allclose(result.values, game.shapley_values(), atol=1e-10)
        assert result.info["draws"] >= 2 and result.info["pairing"]


# ---------------------------------------------------------------- through the registry


@pytest.mark.parametrize(
    ("name", "options"), [(n, {}) for n in NEW] + [("polyshap", {"sampler": "kernelshap"})]
)
def test_planned_coalitions_are_what_estimate_asks_a_real_game_for(name, options):
    game = pairwise_game(7, seed=3)
    plan = planned_coalitions(name, 7, 40, seed=5, **options)
    result = estimate(game, name, 40, seed=5, bootstrap=0, **options)
    assert plan == game.evaluated and len(set(plan)) == len(plan) == result.evaluations <= 40


@pytest.mark.parametrize("name", NEW)
def test_bootstrap_replays_on_the_table_only(name):
    game = BernoulliDocumentGame(CornerstoneGame(8), n_docs=300)
    result = estimate(game, name, budget=64, bootstrap=30)
    assert game.evaluations == result.evaluations + result.efficiency["extra_evaluations"]
    assert np.all(result.ci_low <= result.values + 1e-12) and np.all(result.values <= result.ci_high + 1e-12)
    assert np.any(result.ci_high - result.ci_low > 0)


@pytest.mark.parametrize("name", NEW)
def test_budgets_are_kept_and_minimums_named(name):
    game = CornerstoneGame(10)
    needed = ESTIMATORS[name].min_budget(10, {})
    for budget in (needed, needed + 7, 500):
        result = estimate(game, name, budget, seed=3, bootstrap=0)
        assert 0 < result.evaluations <= budget
        assert result.efficiency["guaranteed"] and abs(result.efficiency["gap"]) < 1e-10
    assert estimate(game, "leverage", 500, bootstrap=0).evaluations == 500
    with pytest.raises(ValueError, match=f"at least {needed} "):
        estimate(game, name, needed - 1)


def test_kadd_is_no_longer_paired_kernelshap():
    """kADD-SHAP of order 2 with pairing equals paired KernelSHAP; the registry runs it unpaired."""
    game = CornerstoneGame(10)
    kadd = estimate(game, "kadd", 80, seed=1, bootstrap=0)
    kernel = estimate(game, "kernelshap", 80, seed=1, bootstrap=0)
    assert kadd.info["options"] == {"pairing_trick": False}
    assert np.abs(kadd.values - kernel.values).max() > 1e-3
    paired = estimate(game, "kadd", 80, seed=1, bootstrap=0, pairing_trick=True)
    assert np.abs(paired.values - kernel.values).max() < 1e-6


# ---------------------------------------------------------------- proxyshap


@pytest.mark.parametrize("depth", [1, 3, 8])
def test_tree_shapley_values_are_those_of_the_enumerated_proxy(depth):
    """The trees' values read off their leaves equal the exact Shapley values of S -> f(1_S) enumerated
    over all 2^8 coalitions, for stumps, shallow trees and trees deep enough to split on a player twice
    along one path."""
    n, rng = 8, np.random.default_rng(depth)
    rows = rng.random((80, n)) < 0.5
    values = rng.normal(size=80) + 2 * (rows[:, 0] & rows[:, 3]) - rows[:, 5]
    proxy = tree_fit(20, depth, 0.3, seed=0)(rows, values, np.ones(80), -1.0, 2.0)
    enumerated = TableGame(proxy.predict(all_coalitions(n)))
    expected = estimate(enumerated, "exact", None, bootstrap=0).values
    assert np.allclose(proxy.shapley_values(n), expected, atol=1e-12)


def test_proxyshap_refuses_bad_options():
    with pytest.raises(ValueError, match="adjustment must be one of msr, none"):
        estimate(pairwise_game(), "proxyshap", 40, adjustment="kernel")
    with pytest.raises(ValueError, match="trees and depth must be positive integers"):
        estimate(pairwise_game(), "proxyshap", 40, depth=0)


def test_proxyshap_asks_for_regression_msrs_coalitions():
    """The same draws for the same budget and seed, so a benchmark that scored one has scored both."""
    for n, budget, seed in [(10, 28, 0), (30, 88, 101), (60, 480, 104)]:
        assert planned_coalitions("proxyshap", n, budget, seed) == planned_coalitions(
            "regression_msr", n, budget, seed
        )
