"""Exact pairwise interactions: the pair weights of a pairwise game, efficiency on a game with
higher-order terms, and the distance profile."""

from __future__ import annotations

import numpy as np
import pytest
from test_estimators import pairwise_game, unanimity_game

from lsi.game import all_coalitions
from lsi.interactions import INDICES, by_distance, pairwise_interactions


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
