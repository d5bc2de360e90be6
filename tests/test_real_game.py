"""Exact Shapley values of the committed, fully enumerated real games equal a brute-force sum over
subsets computed here from the store's rows with pandas alone (no model)."""

from __future__ import annotations

import itertools
import math
from pathlib import Path

import pandas as pd
import pytest

from lsi.estimators import estimate
from lsi.layer_game import LayerGame
from lsi.store import ScoreStore

STORE = (
    Path(__file__).resolve().parent.parent / "results/scores/smollm2-135m/arc_easy/sublayer-bfloat16-limit40"
)
GAMES = {
    "early": [f"{kind}.{block}" for block in range(5) for kind in ("attn", "mlp")],
    "middle": [f"{kind}.{block}" for block in range(12, 17) for kind in ("attn", "mlp")],
}


def brute_force(scores: dict[str, float], all_players: list[str], game: list[str]) -> list[float]:
    """phi_i = sum over S not containing i of |S|! (n-|S|-1)! / n! (v(S + i) - v(S))."""
    n = len(game)

    def value(kept: set[str]) -> float:
        bits = "".join("1" if p not in game or p in kept else "0" for p in all_players)
        return scores[bits]

    out = []
    for player in game:
        others = [p for p in game if p != player]
        total = 0.0
        for size in range(n):
            weight = math.factorial(size) * math.factorial(n - size - 1) / math.factorial(n)
            for subset in itertools.combinations(others, size):
                total += weight * (value({*subset, player}) - value(set(subset)))
        out.append(total)
    return out


@pytest.mark.parametrize("name", GAMES)
def test_exact_equals_brute_force_on_stored_game(name: str) -> None:
    store = ScoreStore.open(STORE)
    frame = pd.read_parquet(STORE / "parts").drop_duplicates("coalition")
    scores = dict(zip(frame["coalition"], frame["score"], strict=True))
    players = store.meta["players"]
    game = LayerGame(store, "score")  # no scorer: a missing coalition would raise
    restricted = game.restricted([players.index(p) for p in GAMES[name]])
    exact = estimate(restricted, "exact", bootstrap=0)
    assert exact.evaluations == 2 ** len(GAMES[name])
    assert list(exact.values) == pytest.approx(brute_force(scores, players, GAMES[name]), abs=1e-12)
    assert sum(exact.values) == pytest.approx(exact.efficiency["v_full_minus_v_empty"], abs=1e-12)
