"""References from pooled walk pairs: the same values and standard errors as the permutation
estimates they pool, measures of their own noise that respond to it, and the row an estimate gets
against one."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from lsi import figures
from lsi.analysis import estimator_summary, game_cornerstones
from lsi.estimators import estimate
from lsi.estimators.agreement import agreement
from lsi.references import Reference, against_reference, load_reference, reference, stored_pairs
from lsi.synthetic_games import BernoulliDocumentGame, CornerstoneGame, PairwiseGame, UnanimityGame

ROOT = Path(__file__).resolve().parent.parent


def _noisy_game() -> UnanimityGame:
    """Order-3 and order-4 terms, which antithetic pairs do not cancel."""
    return UnanimityGame(12, [(0, 1, 2), (3, 5, 7, 9), (2, 4, 11), (6, 8, 10)], [1.0, 0.8, 0.5, 0.3])


def test_pooled_pairs_are_the_estimates_they_pool():
    game = _noisy_game()
    runs = [(600, 0), (300, 1)]
    pooled = reference(game, runs)
    estimates = [estimate(game, "permutation", b, s, bootstrap=0) for b, s in runs]
    counts = [e.info["pairs"] for e in estimates]
    assert pooled.pairs == sum(counts) == len(stored_pairs(game, runs)[1])
    mean = sum(np.asarray(e.values) * c for e, c in zip(estimates, counts, strict=True)) / sum(counts)
    np.testing.assert_allclose(pooled.values, mean, atol=1e-12)
    # the standard error over all pairs, from each run's mean, error and count (within + between)
    within = sum((c - 1) * c * np.asarray(e.stderr) ** 2 for e, c in zip(estimates, counts, strict=True))
    between = sum(c * (np.asarray(e.values) - mean) ** 2 for e, c in zip(estimates, counts, strict=True))
    total = sum(counts)
    np.testing.assert_allclose(pooled.stderr, np.sqrt((within + between) / (total - 1) / total), rtol=1e-10)
    assert np.all(pooled.stderr > 0)


def test_a_game_of_order_two_is_exact_from_one_pair_and_fully_reliable():
    rng = np.random.default_rng(3)
    interactions = np.triu(rng.normal(size=(8, 8)), 1)
    game = PairwiseGame(rng.normal(size=8), interactions + interactions.T)
    exact = reference(game, [(200, 0)])
    np.testing.assert_allclose(exact.values, game.shapley_values(), atol=1e-12)
    assert np.abs(exact.stderr).max() < 1e-12 and all(exact.criterion_met(5))
    assert exact.split_half() == pytest.approx((1.0, 1.0))


def test_criterion_gaps_and_pairs_needed():
    marginals = np.array([[5.0, 3.9, 4.0, 1.0], [5.2, 4.1, 4.0, 1.0], [4.8, 3.7, 4.0, 1.0]])
    ref = Reference.from_marginals(marginals)  # values 5, 3.9, 4, 1; standard errors 0.115, 0.115, 0, 0
    assert list(ref.top(4)) == [0, 2, 1, 3]
    np.testing.assert_allclose(ref.neighbour_gaps(4), [1.0, 0.1, 0.1, 2.9])
    assert ref.criterion_met(4) == [True, True, False, True]
    needed = ref.pairs_needed(4)
    se = ref.stderr[ref.top(4)]
    assert needed[3] == 0 and needed[0] <= ref.pairs  # already met: no more pairs than it has
    # at the pairs needed, the standard error (falling as 1/sqrt(pairs)) is just within a fifth of the gap
    assert se[2] * np.sqrt(3 / needed[2]) <= 0.1 / 5 < se[2] * np.sqrt(3 / (needed[2] - 1))


def test_split_half_reliability_rises_with_the_pairs():
    rng = np.random.default_rng(0)
    truth = np.linspace(0, 1, 30)
    noise = rng.normal(scale=2.0, size=(400, 30))
    few, many = Reference.from_marginals(truth + noise[:20]), Reference.from_marginals(truth + noise)
    raw_few, stepped_few = few.split_half()
    raw_many, stepped_many = many.split_half()
    assert stepped_few == pytest.approx(2 * raw_few / (1 + raw_few)) and stepped_few > raw_few
    assert raw_few < 0.5 < raw_many < stepped_many < 1
    with pytest.raises(ValueError, match="at least 4 walk pairs"):
        Reference.from_marginals(noise[:3]).split_half()


def test_a_benchmark_row_against_a_reference_and_the_cornerstones_of_a_game():
    names = [f"block.{i}" for i in range(8)]
    base = CornerstoneGame(8, cornerstones=(0, 3), chance=0.25, names=names)
    game = BernoulliDocumentGame(base, n_docs=400, seed=1)
    corner = game_cornerstones(game)
    assert corner == {0, 3}
    truth = np.array([0.3, 0.01, 0.02, 0.25, 0.0, 0.03, 0.01, 0.02])
    row = agreement(truth, truth, corner)
    assert row == {
        "mse": 0.0,
        "spearman": pytest.approx(1.0),
        "kendall": pytest.approx(1.0),
        "top3_precision": 1.0,
        "top5_precision": 1.0,
        "cornerstones_recovered": True,
    }
    swapped = truth[[1, 0, 2, 3, 4, 5, 6, 7]]  # the first cornerstone demoted
    worse = agreement(swapped, truth, corner)
    assert worse["mse"] == pytest.approx(2 * 0.29**2 / 8) and worse["spearman"] < 1
    assert worse["cornerstones_recovered"] is False and worse["top3_precision"] == pytest.approx(2 / 3)


def test_the_summary_says_how_many_seeds_each_median_is_over():
    """A benchmark scored in stretches has all seeds at small budgets and fewer at the largest."""
    base = {"estimator": "svarm", "mse": 0.1, "spearman": 0.5, "kendall": 0.4, "cornerstones_recovered": None}
    rows = [base | {"budget": 60, "seed": s, "spearman": 0.1 * s} for s in range(5)]
    rows += [base | {"budget": 480, "seed": s, "spearman": 0.9 - 0.1 * s} for s in range(2)]
    summary = estimator_summary(pd.DataFrame(rows)).set_index("budget")
    assert summary["seeds"].to_dict() == {60: 5, 480: 2}
    assert summary.loc[60, "spearman"] == pytest.approx(0.2) and summary.loc[
        480, "spearman"
    ] == pytest.approx(0.85)


BLOCK_REFERENCE = ROOT / "results/references/smollm2-arc_easy-block-score.json"


def test_a_committed_reference_is_what_its_store_gives_and_measures_the_window():
    record, game, ref = load_reference(BLOCK_REFERENCE, ROOT)
    np.testing.assert_allclose(ref.values, record["values"], atol=1e-12)
    np.testing.assert_allclose(ref.stderr, record["stderr"], atol=1e-12)
    assert ref.pairs == record["walk_pairs"] and ref.criterion_met() == record["criterion_met"]
    table = against_reference(game, ref, [("window", None, 0), ("kernelshap", 360, 1)])
    assert list(table["estimator"]) == ["window"]  # KernelSHAP's coalitions are not stored: left out
    window = estimate(game.restricted(list(range(game.n_players))), "window", None, 0, bootstrap=0)
    row = table.iloc[0]
    assert row["spearman"] == pytest.approx(spearmanr(window.values, ref.values).statistic)
    assert row["evaluations"] == window.evaluations == 1 + 30 + 29 + 28
    assert 0 < row["reliability"] < 1 and row["spearman_corrected"] > row["spearman"]


def test_the_estimator_figure_keeps_every_budget_short_of_enumeration():
    """Against a reference every budget is drawn (the largest, 8n, is far from 2^n); against exact
    values the enumerating budget, where every estimator is exact to rounding, is left out."""
    rows = [
        {"estimator": "kernelshap", "budget": b, "seed": s, "evaluations": b, "mse": 1 / b, "spearman": 0.5}
        | {"top3_precision": 1.0}
        for b in (8, 24, 64)
        for s in (0, 1)
    ]
    window = {"estimator": "window", "budget": 22, "seed": 0, "evaluations": 22, "mse": 0.1, "spearman": 0.9}
    efficient = window | {"estimator": "window_efficient", "budget": 23, "evaluations": 23, "mse": 0.01}
    large = pd.DataFrame([*rows, window | {"top3_precision": 1.0}, efficient | {"top3_precision": 1.0}])
    fig = figures.estimator_error(large.assign(walk_pairs=100), "large")
    line = fig.axes[0].lines[0]
    assert list(line.get_xdata()) == [8, 24, 64] and fig.axes[0].get_title() == "MSE vs reference"
    points = {ln.get_label(): (ln.get_xdata()[0], ln.get_ydata()[0]) for ln in fig.axes[0].lines[1:]}
    assert points == {"window (paper)": (22, 0.1), "window_efficient": (23, 0.01)}  # fixed costs: points
    exact = {"estimator": "exact", "budget": 64, "seed": 0, "evaluations": 64, "mse": 0.0, "spearman": 1.0}
    small = pd.DataFrame([*rows, window | {"top3_precision": 1.0}, exact | {"top3_precision": 1.0}])
    provenance = "store results/scores/m/t/sublayer-bfloat16-limit200 | made with " + ", ".join(
        ["pkg 1.0"] * 30
    )
    fig = figures.estimator_error(small, f"enumerated\n{provenance}")
    assert list(fig.axes[0].lines[0].get_xdata()) == [8, 24] and fig.axes[0].get_title() == "MSE vs exact"
    lines = fig.get_suptitle().splitlines()  # long provenance lines wrap, their words all kept
    assert lines[0] == "enumerated" and len(lines) > 2 and max(map(len, lines)) <= figures.TITLE_WIDTH
    assert " ".join(lines[1:]) == provenance
