"""Exact pairwise interactions: the pair weights of a pairwise game, efficiency on a game with
higher-order terms, and the distance profile. FSII from permutation walks: exact with all coalitions,
on order-2 games, convergent on the enumerated real game, with calibrated standard errors."""

from __future__ import annotations

from math import comb
from pathlib import Path

import numpy as np
import pytest
from test_estimators import pairwise_game, unanimity_game

from lsi.errors import UserError
from lsi.estimators import estimate
from lsi.game import all_coalitions
from lsi.interactions import (
    INDICES,
    by_distance,
    faithful_interactions,
    pairwise_interactions,
    significant,
    walk_design,
    walk_interactions,
    walk_tables,
)
from lsi.layer_game import LayerGame
from lsi.references import stored_pairs
from lsi.store import ScoreStore
from lsi.synthetic_games import PairwiseGame


@pytest.mark.parametrize("index", INDICES)
def test_a_pairwise_game_gives_back_its_weights(index):
    game = pairwise_game()
    main, matrix = pairwise_interactions(game, index)
    np.testing.assert_allclose(matrix.to_numpy(), game.interactions, atol=1e-12)
    np.testing.assert_allclose(main.to_numpy(), game.weights, atol=1e-12)


def test_k_sii_is_efficient_with_higher_order_terms():
    game = unanimity_game()
    main, matrix = pairwise_interactions(game, "k-SII")
    full, empty = game.value(all_coalitions(game.n_players)[[-1, 0]])
    assert main.sum() + np.triu(matrix.to_numpy(), 1).sum() == pytest.approx(full - empty, abs=1e-12)
    assert not np.allclose(matrix.to_numpy(), 0)


def test_distance_profile_and_bad_index():
    _, matrix = pairwise_interactions(pairwise_game(n=5))
    profile = by_distance(matrix)
    assert list(profile["distance"]) == [1, 2, 3, 4] and list(profile["pairs"]) == [4, 3, 2, 1]
    assert profile.loc[3, "mean_abs"] == pytest.approx(abs(matrix.iloc[0, 4]))
    with pytest.raises(ValueError, match="unknown interaction index 'SII3'"):
        pairwise_interactions(pairwise_game(), "SII3")


# ---------------------------------------------------------------- FSII from permutation walks

ENUMERATED = (
    Path(__file__).resolve().parent.parent / "results/scores/smollm2-135m/arc_easy/sublayer-bfloat16-limit40"
)


def kernel_design(n: int) -> tuple[np.ndarray, np.ndarray]:
    """All coalitions with their Shapley-kernel weights (0 at the ends, which are constraints)."""
    coalitions = all_coalitions(n)
    sizes = coalitions.sum(axis=1)
    inner = (sizes > 0) & (sizes < n)
    weights = np.zeros(len(sizes))
    weights[inner] = [1 / (comb(n, int(s)) * s * (n - s)) for s in sizes[inner]]
    return coalitions, weights


def walks(n: int, pairs: int, seed: int) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.permutation(n) for _ in range(pairs)]


def early_game():
    return LayerGame(ScoreStore.open(ENUMERATED), "margin").restricted(list(range(10)))


def test_all_coalitions_give_shapiq_exact_fsii():
    game = unanimity_game()
    coalitions, weights = kernel_design(game.n_players)
    fit = faithful_interactions(coalitions, game.value(coalitions), weights)
    main, matrix = pairwise_interactions(game, "FSII")
    np.testing.assert_allclose(fit.pairs, matrix.to_numpy(), atol=1e-8)  # shapiq: ~5e-10
    np.testing.assert_allclose(fit.main, main.to_numpy(), atol=1e-8)


def test_walks_recover_a_pairwise_game_exactly_and_a_banded_one_within_its_band():
    game = pairwise_game(n=12, seed=3)
    with pytest.raises(UserError, match="do not identify 78 FSII terms"):
        walk_interactions(game, walks(12, 10, 0))
    fit = walk_interactions(game, walks(12, 20, 0))
    np.testing.assert_allclose(fit.pairs, game.interactions, atol=1e-9)
    np.testing.assert_allclose(fit.main, game.weights, atol=1e-9)
    distance = np.abs(np.subtract.outer(np.arange(12), np.arange(12)))
    banded = PairwiseGame(game.weights, np.where(distance <= 2, game.interactions, 0.0))
    coalitions, weights, clusters = walk_design(walks(12, 8, 1))
    fit = faithful_interactions(coalitions, banded.value(coalitions), weights, clusters, distance <= 2)
    np.testing.assert_allclose(fit.pairs, banded.interactions, atol=1e-9)


def test_walks_on_the_enumerated_game_approach_its_exact_fsii():
    """Permutation walks drawn from the full table: the error shrinks like 1/sqrt(walks), the jackknife
    standard errors cover it."""
    game = early_game()
    main, matrix = pairwise_interactions(game, "FSII")
    exact = matrix.to_numpy()
    errors = {p: np.abs(walk_interactions(game, walks(10, p, 7)).pairs - exact).max() for p in (8, 512)}
    assert errors[512] < 0.012 and errors[512] < errors[8] / 5
    fit = walk_interactions(game, walks(10, 128, 8))
    upper = np.triu_indices(10, 1)
    z = (fit.pairs - exact)[upper] / fit.pairs_se[upper]
    assert np.mean(np.abs(z) < 2) > 0.85 and fit.info["clusters"] == 128


def test_without_importance_weights_walks_converge_elsewhere():
    game = unanimity_game()
    _, matrix = pairwise_interactions(game, "FSII")
    coalitions, weights, clusters = walk_design(walks(7, 2048, 7))
    values = game.value(coalitions)
    weighted = faithful_interactions(coalitions, values, weights, clusters)
    flat = faithful_interactions(coalitions, values, (weights > 0).astype(float), clusters)
    assert np.abs(weighted.pairs - matrix.to_numpy()).max() < 0.012
    assert np.abs(flat.pairs - matrix.to_numpy()).max() > 0.025


def test_stored_walks_are_the_permutation_estimate_s_and_tables():
    game = early_game()
    orders = stored_pairs(game, [(200, 0), (120, 1)])[1]
    assert (
        len(orders)
        == estimate(game, "permutation", 200, 0, bootstrap=0).info["pairs"]
        + estimate(game, "permutation", 120, 1, bootstrap=0).info["pairs"]
    )
    fit = walk_interactions(game, orders)
    assert fit.info["documents"] == 40 and np.isfinite(fit.pairs_doc_se[0, 1])
    tables = walk_tables(fit, list(game.names))
    assert list(tables["by-distance"]["pairs"]) == list(range(9, 0, -1))
    assert len(tables["attn.0"]) == 9 and len(tables["pairs"]) >= 1


def test_benjamini_hochberg():
    z = np.zeros((4, 4))
    z[0, 1] = z[1, 0] = 5.0
    z[2, 3] = z[3, 2] = 2.2  # p = 0.028 > 0.05 * 2 / 6
    mask = significant(z)
    assert mask[0, 1] and mask[1, 0] and mask.sum() == 2
    assert not significant(np.zeros((3, 3))).any()
