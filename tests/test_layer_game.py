"""The layer game and the ablation analysis run from a score store alone (no model)."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import store_meta

from lsi.analysis import (
    CornerstoneRule,
    ablation_table,
    cornerstones,
    paired_drop_pvalue,
    removal_orders,
    summary_statistics,
)
from lsi.estimators import estimate
from lsi.game import MissingCoalitionError, all_coalitions, bit_strings, shapley_from_table
from lsi.layer_game import LayerGame, margins
from lsi.removal import cumulative_removal
from lsi.scoring import Scorer
from lsi.store import ScoreStore

N_PLAYERS, N_DOCS = 4, 60


def _fake_loglik(rng, correct: np.ndarray, golds) -> np.ndarray:
    """Two-choice log-likelihoods (choice lengths 10 and 20 characters) whose acc_norm is `correct`."""
    out = []
    for ok, gold in zip(correct, golds, strict=True):
        winner = gold if ok else 1 - gold
        per_char = np.empty(2)
        per_char[winner] = -1.0 - rng.random()
        per_char[1 - winner] = per_char[winner] - 0.1 - rng.random()
        out.extend(per_char * np.array([10, 20]))
    return np.asarray(out, dtype=np.float32)


@pytest.fixture
def store(tmp_path):
    """A store of all 16 coalitions: player 0 is a cornerstone (without it every answer is wrong half
    the time at random), the others each cost a few documents."""
    rng = np.random.default_rng(0)
    golds = rng.integers(0, 2, N_DOCS)
    documents = [{"gold": int(g), "n_choices": 2, "choice_chars": [10, 20]} for g in golds]
    meta = store_meta(N_PLAYERS, documents)
    s = ScoreStore.open(tmp_path / "store", meta)
    base = rng.random(N_DOCS) < 0.9
    rows = []
    for bits in bit_strings(all_coalitions(N_PLAYERS)):
        correct = base.copy()
        if bits[0] == "0":
            correct = rng.random(N_DOCS) < 0.45
        for i in range(1, N_PLAYERS):
            if bits[i] == "0":
                correct[rng.choice(N_DOCS, 3, replace=False)] = False
        rows.append(
            {
                "coalition": bits,
                "score": correct.mean(),
                "doc_acc_norm": correct.astype(np.int8),
                "loglik": _fake_loglik(rng, correct, golds),
            }
        )
    s.append(pd.DataFrame(rows))
    return s


def test_values_are_document_means_and_margins_agree_with_correctness(store):
    game = LayerGame(store)
    frame = store.frame()
    coalitions = np.array([[c == "1" for c in bits] for bits in frame.coalition])
    assert np.allclose(game.value(coalitions), frame.score)
    for row in frame.to_dict("records"):
        assert np.array_equal(margins(store.meta, row["loglik"]) > 0, row["doc_acc_norm"] == 1)
    assert LayerGame(store, "margin").chance is None and game.chance == 0.5


def test_exact_from_the_store_equals_brute_force(store):
    game = LayerGame(store)
    table = game.value(all_coalitions(N_PLAYERS))
    brute = np.zeros(N_PLAYERS)
    for i in range(N_PLAYERS):
        others = [j for j in range(N_PLAYERS) if j != i]
        for size in range(N_PLAYERS):
            for subset in itertools.combinations(others, size):
                with_i = np.zeros(N_PLAYERS, bool)
                with_i[list(subset)] = True
                without = with_i.copy()
                with_i[i] = True
                weight = 1 / (N_PLAYERS * math.comb(N_PLAYERS - 1, size))
                brute[i] += weight * (game.value(with_i[None])[0] - game.value(without[None])[0])
    result = estimate(game, "exact", bootstrap=50)
    assert np.allclose(result.values, brute) and np.allclose(shapley_from_table(table), brute)
    assert result.evaluations == 2**N_PLAYERS and np.all(result.ci_low <= result.ci_high)
    assert np.argmax(result.values) == 0


def test_missing_coalition_without_a_model_is_a_clear_error(tmp_path, store):
    meta = store.meta | {"players": [f"block.{i}" for i in range(5)]}
    empty = LayerGame(ScoreStore.open(tmp_path / "other", meta))
    with pytest.raises(MissingCoalitionError, match="not in the store .* run with a model"):
        empty.value(np.ones((1, 5), bool))


def test_cornerstone_detection_and_statistics(store):
    table = ablation_table(store, resamples=200)
    assert table.attrs["above_chance"] and table.attrs["chance"] == 0.5
    flagged = cornerstones(table, CornerstoneRule())
    assert flagged["cornerstone"].tolist() == [True, False, False, False]
    assert (flagged["drop_low"] <= flagged["drop"]).all() and (flagged["drop"] <= flagged["drop_high"]).all()
    stats = summary_statistics(flagged, shapley=[0.4, 0.05, 0.05, -0.01])
    assert stats["cornerstones"] == ["block.0"]
    assert stats["positive_mass_share_cornerstone"] == pytest.approx(0.8)
    assert stats["mean_drop_cornerstone"] > stats["mean_drop_other"] > 0


def test_paired_test():
    full = np.array([1] * 30 + [0] * 10)
    assert paired_drop_pvalue(full, np.zeros(40)) < 1e-6
    assert paired_drop_pvalue(full, full) == 1.0
    swapped = full.copy()
    swapped[:3], swapped[30:33] = 0, 1  # as many gained as lost
    assert paired_drop_pvalue(full, swapped) > 0.5


def test_paired_test_of_continuous_values():
    """Log-likelihoods have no right/wrong: a consistent drop is significant, a rise or noise is not."""
    rng = np.random.default_rng(0)
    full = rng.normal(-3.0, 1.0, size=200)
    assert paired_drop_pvalue(full, full - 0.5 + rng.normal(0, 0.2, size=200)) < 1e-6
    assert paired_drop_pvalue(full, full + 0.5 + rng.normal(0, 0.2, size=200)) > 0.99
    assert 0.01 < paired_drop_pvalue(full, full + rng.normal(0, 0.2, size=200)) < 0.99
    assert paired_drop_pvalue(full, full) == 1.0
    assert paired_drop_pvalue(full, full - 1.0) == 0.0


def test_removal_orders():
    orders = removal_orders([0.3, -0.1, 0.2], ["a", "b", "c"], seed=1)
    assert orders["ascending"] == ["b", "c", "a"] and orders["descending"] == ["a", "c", "b"]
    assert sorted(orders["random"]) == ["a", "b", "c"]


@pytest.mark.slow
def test_cumulative_removal_scores_the_nested_coalitions(smollm, tmp_path):
    scorer = Scorer(smollm, "arc_easy", 4, "block", tmp_path)
    curve = cumulative_removal(scorer, ["block.29", "block.28", "block.0"], progress=False)
    assert curve["removed"].tolist() == [0, 1, 2, 3]
    assert pd.isna(curve["last_removed"].iloc[0])
    assert curve["last_removed"].iloc[1:].tolist() == ["block.29", "block.28", "block.0"]
    last = "0" + "1" * 27 + "00"
    assert curve["score"].iloc[-1] == scorer.scores([last], progress=False)["score"].iloc[0]
    with pytest.raises(ValueError, match="unknown players in the removal order: attn.0"):
        cumulative_removal(scorer, ["attn.0"])


@pytest.fixture
def nonfinite_store(store, tmp_path):
    """The same coalitions, one single removal (1011) with two non-finite requests."""
    frame = store.frame()
    frame["nonfinite"] = (frame["coalition"] == "1011") * 2
    other = ScoreStore.open(tmp_path / "nonfinite", store.meta)
    other.append(frame)
    return other


def test_non_finite_coalitions_are_left_out_with_the_reason_unless_allowed(nonfinite_store):
    from lsi.errors import UserError
    from lsi.store import NonFiniteWarning

    with pytest.warns(NonFiniteWarning, match="1011: 2 requests.*--allow-nonfinite"):
        assert "1011" not in set(nonfinite_store.usable()["coalition"])
    assert len(nonfinite_store.usable(allow_nonfinite=True)) == 2**N_PLAYERS
    with pytest.warns(NonFiniteWarning), pytest.raises(UserError, match="1011 of the ablation.*non-finite"):
        ablation_table(nonfinite_store)
    assert len(ablation_table(nonfinite_store, allow_nonfinite=True)) == N_PLAYERS
    with pytest.warns(NonFiniteWarning):
        game = LayerGame(nonfinite_store)
    with pytest.raises(UserError, match="coalition 1011 has 2 request.*--allow-nonfinite"):
        game.value(np.array([[True, False, True, True]]))
    assert game.value(np.array([[True, True, True, True]]))[0] == pytest.approx(
        nonfinite_store.frame().set_index("coalition").at["1111", "score"]
    )
    allowed = LayerGame(nonfinite_store, allow_nonfinite=True)
    assert np.isfinite(allowed.value(np.array([[True, False, True, True]]))).all()
