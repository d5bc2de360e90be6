"""Estimators and games on synthetic games with known Shapley values (no models, fast)."""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import numpy as np
import pytest
import shapiq
import shapiq.approximator

from lsi.estimators import (
    ESTIMATORS,
    Estimate,
    estimate,
    estimator_options,
    planned_coalitions,
    resolve_budget,
)
from lsi.estimators.base import Ledger
from lsi.estimators.shapiq_adapter import MISSING as NOT_IN_SHAPIQ
from lsi.estimators.shapiq_adapter import LedgerGame
from lsi.estimators.window import window_cost
from lsi.game import Game, MissingCoalitionError, TableGame, all_coalitions
from lsi.players import window_coalitions
from lsi.synthetic_games import (
    AdditiveGame,
    BernoulliDocumentGame,
    CornerstoneGame,
    PairwiseGame,
    UnanimityGame,
)

SAMPLING = [name for name, spec in ESTIMATORS.items() if not spec.deterministic and name != "truncated"]
# shapiq's sampler enumerates every coalition at budget 2^n, so these become exact there.
EXACT_AT_FULL_BUDGET = ["kernelshap", "kadd", "svarm", "unbiased_kernelshap"]
EFFICIENT = ["exact", "permutation", "kernelshap", "kadd", "unbiased_kernelshap"]


def additive_game() -> AdditiveGame:
    return AdditiveGame([0.5, -1.0, 2.0, 0.0, 0.3, 1.1, -0.4], constant=0.2)


def pairwise_game(n: int = 7, seed: int = 0) -> PairwiseGame:
    rng = np.random.default_rng(seed)
    upper = np.triu(rng.normal(size=(n, n)), 1)
    return PairwiseGame(rng.normal(size=n), upper + upper.T, constant=0.3)


def unanimity_game() -> UnanimityGame:
    return UnanimityGame(7, [(0, 1, 2), (2, 3, 4, 5), (1, 6), (3,)], [1.0, -2.0, 0.7, 0.4], constant=0.1)


GAMES = {"additive": additive_game, "pairwise": pairwise_game, "unanimity": unanimity_game}


def mean_error(name: str, make_game, budget: int, seeds=range(4)) -> float:
    errors = []
    for seed in seeds:
        game = make_game()
        errors.append(np.abs(estimate(game, name, budget, seed=seed).values - game.shapley_values()).max())
    return float(np.mean(errors))


# ---------------------------------------------------------------- games


def test_closed_forms_by_hand():
    assert np.allclose(additive_game().shapley_values(), [0.5, -1.0, 2.0, 0.0, 0.3, 1.1, -0.4])
    assert np.allclose(
        unanimity_game().shapley_values(), [1 / 3, 1 / 3 + 0.35, 1 / 3 - 0.5, -0.1, -0.5, -0.5, 0.35]
    )
    pair = PairwiseGame([1.0, 0.0, 0.0], np.array([[0, 2.0, 0], [2.0, 0, 0], [0, 0, 0]]))
    assert np.allclose(pair.shapley_values(), [2.0, 1.0, 0.0])
    assert pair.value(np.array([[1, 1, 0], [1, 0, 1]])).tolist() == [3.0, 1.0]


def test_memo_computes_each_distinct_coalition_once():
    class Counting(Game):
        def __init__(self):
            super().__init__(3)
            self.batches: list[int] = []

        def _compute(self, coalitions):
            self.batches.append(len(coalitions))
            return coalitions.sum(axis=1).astype(float)

    game = Counting()
    rows = np.array([[1, 0, 1], [1, 0, 1], [0, 0, 0]], dtype=bool)
    assert game.value(rows).tolist() == [2.0, 2.0, 0.0]
    assert game.value(rows[::-1]).tolist() == [0.0, 2.0, 2.0]
    assert game.batches == [2] and game.evaluations == 2


def test_table_game_keys_agree_and_missing_coalitions_raise():
    values = np.arange(8, dtype=float)  # value of row k = k, bit i = player i
    by_array = TableGame(values)
    by_sets = TableGame(
        {frozenset(np.flatnonzero(row)): k for k, row in enumerate(all_coalitions(3))}, n_players=3
    )
    by_bits = TableGame(
        {"".join("1" if b else "0" for b in row): k for k, row in enumerate(all_coalitions(3))}
    )
    rows = all_coalitions(3)
    for table in (by_array, by_sets, by_bits):
        assert table.value(rows).tolist() == values.tolist()
    assert TableGame({"110": 1.0}).value(np.array([[1, 1, 0]])).tolist() == [1.0]
    with pytest.raises(MissingCoalitionError, match="011"):
        TableGame({"110": 1.0}).value(np.array([[0, 1, 1]]))


def test_restricted_game_keeps_the_others_and_counts_on_the_parent():
    parent = pairwise_game(6)
    sub = parent.restricted([4, 1])
    assert sub.names == ("4", "1") and sub.n_players == 2
    rows = np.array([[0, 0], [1, 0], [0, 1], [1, 1]], dtype=bool)
    expanded = np.ones((4, 6), dtype=bool)
    expanded[:, [4, 1]] = rows
    assert np.allclose(sub.value(rows), parent._compute(expanded))
    assert parent.evaluations == 4


def test_cornerstone_enumeration_matches_its_unanimity_decomposition():
    """Without the collapse threshold the cornerstone game is a sum of unanimity games."""
    game = CornerstoneGame(6, cornerstones=(0, 2), min_kept=0, seed=3)
    core = [0, 2]
    subsets = [core] + [sorted({*core, i}) for i in range(6)] + [sorted({*core, i, i + 1}) for i in range(5)]
    coefficients = [game.base, *game.weights, *game.adjacent]
    twin = UnanimityGame(6, subsets, coefficients, constant=game.chance)
    rows = all_coalitions(6)
    assert np.allclose(game.value(rows), twin.value(rows))
    assert np.allclose(game.shapley_values(), twin.shapley_values())


def test_cornerstone_game_is_at_chance_without_a_cornerstone():
    game = CornerstoneGame(8, cornerstones=(0, 1), chance=0.25)
    rows = np.ones((3, 8), dtype=bool)
    rows[0, 1] = False
    rows[2, 2:] = False  # too few players kept
    assert game.value(rows)[[0, 2]].tolist() == [0.25, 0.25] and game.value(rows)[1] > 0.5


# ---------------------------------------------------------------- exact


@pytest.mark.parametrize("kind", GAMES)
def test_exact_equals_closed_form(kind):
    game = GAMES[kind]()
    result = estimate(game, "exact")
    assert np.allclose(result.values, game.shapley_values(), atol=1e-12)
    assert (
        result.evaluations == 2**game.n_players == game.evaluations - result.efficiency["extra_evaluations"]
    )
    assert np.all(result.stderr == 0)


def test_exact_matches_shapiq_exact_computer():
    game = CornerstoneGame(8)
    truth = shapiq.ExactComputer(lambda rows: game._compute(rows.astype(bool)), n_players=8)("SV")
    result = estimate(game, "exact")
    assert np.allclose(result.values, truth.get_n_order_values(1), atol=1e-12)
    assert np.allclose(result.values, game.shapley_values(), atol=1e-12)


# ---------------------------------------------------------------- sampling estimators


@pytest.mark.parametrize("name", SAMPLING)
def test_sampling_error_shrinks_with_budget(name):
    small = max(ESTIMATORS[name].min_budget(7, {}), 30)
    assert mean_error(name, unanimity_game, 128) < mean_error(name, unanimity_game, small)


@pytest.mark.parametrize("name", EXACT_AT_FULL_BUDGET)
@pytest.mark.parametrize("kind", GAMES)
def test_exact_at_full_budget(name, kind):
    game = GAMES[kind]()
    result = estimate(game, name, budget=2**game.n_players, seed=1)
    assert np.allclose(result.values, game.shapley_values(), atol=1e-6)
    assert result.evaluations == 2**game.n_players


@pytest.mark.parametrize("kind", ["additive", "pairwise"])
def test_one_antithetic_pair_is_exact_for_interactions_of_order_two(kind):
    game = GAMES[kind]()
    result = estimate(game, "permutation", budget=2 * game.n_players, seed=5)
    assert result.info["pairs"] == 1 and result.evaluations == 2 * game.n_players
    assert np.allclose(result.values, game.shapley_values(), atol=1e-12)


def test_one_antithetic_pair_is_not_exact_for_higher_order():
    """The previous test can fail: a three-player unanimity game defeats a single pair."""
    game = unanimity_game()
    result = estimate(game, "permutation", budget=2 * game.n_players)
    assert not np.allclose(result.values, game.shapley_values(), atol=1e-3)


def test_permutation_stderr_shrinks_and_covers():
    game = unanimity_game()
    result = estimate(game, "permutation", budget=128, max_pairs=400)
    assert result.info["pairs"] == 400 and result.evaluations == 128
    assert np.all(np.abs(result.values - game.shapley_values()) < 4 * result.stderr + 1e-12)


@pytest.mark.parametrize("name", EFFICIENT)
def test_efficient_estimators_sum_to_the_grand_coalition(name):
    game = unanimity_game()
    result = estimate(game, name, budget=None if name == "exact" else 40, seed=2)
    assert result.efficiency["guaranteed"]
    assert abs(result.efficiency["gap"]) < 1e-6
    assert np.isclose(result.efficiency["sum"], result.values.sum())
    assert np.isclose(result.efficiency["v_full_minus_v_empty"], 1.0 - 2.0 + 0.7 + 0.4)


def test_shapiq_sees_raw_values():
    """No normalisation: shapiq gets v(empty) as it is, not shifted to 0."""
    game = AdditiveGame([1.0, 2.0], constant=0.5)
    rows = np.array([[0, 0], [1, 1]], dtype=bool)
    assert LedgerGame(Ledger(game))(rows).tolist() == [0.5, 3.5]


def _pinned(package: str) -> str:
    """The version pyproject.toml pins for a package (the one the project is tested with)."""
    import tomllib

    pyproject = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    (pin,) = [d for d in pyproject["project"]["dependencies"] if d.startswith(f"{package}==")]
    return pin.partition("==")[2]


def test_shapiq_adapter_reports_its_version_and_what_shapiq_lacks():
    result = estimate(pairwise_game(), "kernelshap", budget=30)
    assert result.info["shapiq"] == importlib.metadata.version("shapiq") == _pinned("shapiq")
    assert result.info["not_in_shapiq"] == list(NOT_IN_SHAPIQ)
    # What the adapter reports missing is what the installed shapiq lacks, and nothing it has.
    assert NOT_IN_SHAPIQ and not any(hasattr(shapiq.approximator, name) for name in NOT_IN_SHAPIQ)
    assert result.info["options"] == {"pairing_trick": True}


# ---------------------------------------------------------------- window


def test_window_matches_hand_enumeration_for_four_players():
    rng = np.random.default_rng(7)
    game = TableGame(rng.random(16))

    def v(removed: set[int]) -> float:
        row = np.ones((1, 4), dtype=bool)
        row[0, list(removed)] = False
        return float(game.value(row)[0])

    # Windows of 1..3 players: {0} {1} {2} {3} {0,1} {1,2} {2,3} {0,1,2} {1,2,3}.
    by_hand = [
        np.mean([v(set()) - v({0}), v({1}) - v({0, 1}), v({1, 2}) - v({0, 1, 2})]),
        np.mean([v(set()) - v({1}), v({0}) - v({0, 1}), v({2}) - v({1, 2}), v({2, 3}) - v({1, 2, 3})]),
        np.mean([v(set()) - v({2}), v({1}) - v({1, 2}), v({3}) - v({2, 3}), v({0, 1}) - v({0, 1, 2})]),
        np.mean([v(set()) - v({3}), v({2}) - v({2, 3}), v({1, 2}) - v({1, 2, 3})]),
    ]
    result = estimate(TableGame(game.table, n_players=4), "window", n_lim=3)
    assert np.allclose(result.values, by_hand, atol=1e-12)
    assert result.evaluations == 10 and result.info["marginals_per_player"] == [3, 4, 4, 3]


def test_window_cost_formula_and_determinism():
    assert window_cost(64) == 190 and window_cost(12, 1) == 13 and window_cost(12) == 34
    game = CornerstoneGame(12)
    first, second = estimate(game, "window"), estimate(game, "window")
    assert first.evaluations == second.evaluations == 34
    assert np.array_equal(first.values, second.values) and first.seed is None


def test_window_needs_no_empty_coalition():
    """Its efficiency report spends v(empty) outside the budget, and a table without it gives NaN."""
    game = CornerstoneGame(9)
    result = estimate(game, "window", budget=window_cost(9))
    assert not result.efficiency["guaranteed"] and result.efficiency["extra_evaluations"] == 1
    assert game.evaluations == result.evaluations + 1
    windows_only = TableGame({key: 0.5 for key in game._memo if key != b"0" * 9})
    assert np.isnan(estimate(windows_only, "window").efficiency["gap"])


def test_window_efficient_keeps_the_window_ranking_and_sums_to_the_gap():
    game = CornerstoneGame(10, cornerstones=(0, 3))
    window, calibrated = estimate(game, "window"), estimate(game, "window_efficient")
    full, empty = game.value(np.stack([np.ones(10, bool), np.zeros(10, bool)]))
    assert calibrated.evaluations == window.evaluations + 1 == window_cost(10) + 1  # v(empty) is in its cost
    assert calibrated.values.sum() == pytest.approx(full - empty, abs=1e-12)
    assert calibrated.efficiency["guaranteed"] and calibrated.efficiency["extra_evaluations"] == 0
    np.testing.assert_allclose(calibrated.values, window.values * calibrated.info["scaled_by"], atol=1e-15)
    # Removing either cornerstone collapses the game, so the window counts the whole gap about twice.
    assert window.values.sum() > 2 * (full - empty)
    truth = estimate(game, "exact").values
    assert np.mean((calibrated.values - truth) ** 2) < np.mean((window.values - truth) ** 2) / 10


def test_window_efficient_shifts_where_scaling_would_reverse_the_ranking():
    """Every removal helps (v = 2 inside, 1 for the full model): the window values sum below zero while
    the gap is 1, so a scale would flip their order; a shift keeps it."""
    table = {format(i, "04b").encode(): 2.0 for i in range(16)} | {b"1111": 1.0, b"0000": 0.0}
    window = estimate(TableGame(table), "window", n_lim=2, bootstrap=0)
    calibrated = estimate(TableGame(table), "window_efficient", n_lim=2, bootstrap=0)
    assert window.values.sum() < 0 and "scaled_by" not in calibrated.info
    assert calibrated.values.sum() == pytest.approx(1.0)
    np.testing.assert_allclose(np.diff(calibrated.values), np.diff(window.values), atol=1e-15)


# ---------------------------------------------------------------- budgets and the memo


@pytest.mark.parametrize("name", [*SAMPLING, "truncated"])
@pytest.mark.parametrize("above_minimum", [0, 7, 95])
def test_evaluations_never_exceed_the_budget(name, above_minimum):
    game = CornerstoneGame(10)
    budget = ESTIMATORS[name].min_budget(10, {}) + above_minimum
    result = estimate(game, name, budget=budget, seed=3)
    assert 0 < result.evaluations <= budget
    assert game.evaluations <= budget + result.efficiency["extra_evaluations"]


def test_second_estimate_reuses_the_memo():
    game = CornerstoneGame(9)
    first = estimate(game, "permutation", budget=80, seed=4)
    spent = game.evaluations
    second = estimate(game, "permutation", budget=80, seed=4)
    assert game.evaluations == spent and second.evaluations == first.evaluations
    assert np.array_equal(first.values, second.values)
    estimate(game, "exact")
    estimate(game, "kernelshap", budget=100)
    assert game.evaluations == 2**9


# ---------------------------------------------------------------- errors


def test_unknown_estimator_lists_the_names():
    with pytest.raises(ValueError, match="unknown estimator 'nonesuch'.*window.*exact.*kernelshap"):
        estimate(pairwise_game(), "nonesuch", budget=50)


def test_budget_errors_name_the_needed_budget():
    game = CornerstoneGame(10)
    with pytest.raises(ValueError, match="at least 20 "):
        estimate(game, "permutation", budget=19)
    with pytest.raises(ValueError, match="needs a budget"):
        estimate(game, "svarm")
    with pytest.raises(ValueError, match="a budget of 28 "):
        estimate(game, "window", budget=27)
    with pytest.raises(ValueError, match="a budget of 1024 "):
        estimate(game, "exact", budget=1000)
    with pytest.raises(ValueError, match="at least 56 "):
        estimate(game, "kadd", budget=55)
    assert game.evaluations == 0


def test_exact_refuses_too_many_players():
    game = AdditiveGame(np.ones(17))
    with pytest.raises(ValueError, match=r"2\^17 = 131,072.*n <= 16"):
        estimate(game, "exact")
    assert game.evaluations == 0


def test_bad_options_are_refused():
    with pytest.raises(ValueError, match="no option"):
        estimate(pairwise_game(), "svarm", budget=50, pairing=True)
    with pytest.raises(ValueError, match="n_lim must lie in 1..7"):
        estimate(pairwise_game(), "window", n_lim=8)
    with pytest.raises(ValueError, match="chance level"):
        estimate(pairwise_game(), "truncated", budget=50)


# ---------------------------------------------------------------- truncated walks


def test_truncation_saves_evaluations_per_walk():
    plain = estimate(CornerstoneGame(10), "permutation", budget=500, max_pairs=6, seed=1)
    cut = estimate(CornerstoneGame(10), "truncated", budget=500, max_pairs=6, seed=1)
    assert plain.info["pairs"] == cut.info["pairs"] == 6
    assert cut.evaluations < plain.evaluations
    assert 0 < cut.info["truncated_fraction"] < 1 and "consecutive" in cut.info["rule"]


def test_patience_counts_consecutive_near_chance_steps():
    # v depends on |S| only; walking down from 4 kept players: 0.7, 0.25, 0.6, 0.25, 0.25.
    by_size = np.array([0.25, 0.25, 0.6, 0.25, 0.7])
    game = TableGame(by_size[all_coalitions(4).sum(axis=1)], chance=0.25)
    eager = estimate(game, "truncated", budget=16, max_pairs=3, patience=1)
    patient = estimate(game, "truncated", budget=16, max_pairs=3, patience=2)
    assert eager.info["truncated_fraction"] == 0.75  # stops after the first removal
    assert patient.info["truncated_fraction"] == 0.0  # the 0.6 step resets the count


def test_truncation_off_equals_permutation_sampling():
    # A table, so that values do not depend on how coalitions are batched (BLAS rounding).
    values = CornerstoneGame(10)._compute(all_coalitions(10))
    plain = estimate(TableGame(values, chance=0.25), "permutation", budget=300, seed=8)
    untruncated = estimate(TableGame(values, chance=0.25), "truncated", budget=300, seed=8, tolerance=-np.inf)
    assert np.array_equal(plain.values, untruncated.values)
    assert np.array_equal(plain.stderr, untruncated.stderr)
    assert plain.evaluations == untruncated.evaluations and untruncated.info["truncated_fraction"] == 0


# ---------------------------------------------------------------- bootstrap over documents


@pytest.mark.parametrize(
    ("name", "budget"),
    [("window", None), ("exact", None), ("permutation", 64), ("truncated", 64), ("svarm", 64)],
)
def test_bootstrap_brackets_the_estimate_without_evaluating_the_game(name, budget):
    game = BernoulliDocumentGame(CornerstoneGame(8), n_docs=400)
    result = estimate(game, name, budget=budget, bootstrap=40)
    assert game.evaluations == result.evaluations + result.efficiency["extra_evaluations"]
    assert np.all(result.ci_low <= result.values + 1e-12) and np.all(result.values <= result.ci_high + 1e-12)
    assert np.any(result.ci_high - result.ci_low > 0)


def test_no_intervals_without_documents():
    result = estimate(pairwise_game(), "window")
    assert np.isnan(result.ci_low).all() and np.isnan(result.ci_high).all()


def test_estimate_table_and_dict():
    result = estimate(BernoulliDocumentGame(CornerstoneGame(6), 100), "permutation", budget=40, bootstrap=20)
    table = result.table()
    assert list(table.columns) == ["player", "value", "stderr", "ci_low", "ci_high", "rank"]
    assert table.loc[table["value"].idxmax(), "rank"] == 1
    as_dict = json.loads(json.dumps(result.to_dict(), allow_nan=False))
    assert as_dict["evaluations"] == result.evaluations and len(as_dict["values"]) == 6


@pytest.mark.parametrize("n_lim", [1, 3])
def test_window_coalitions_are_what_the_window_estimator_requests(n_lim: int) -> None:
    """`window_coalitions` (used to export or benchmark the paper's coalitions) is the estimator's set."""
    from lsi.players import window_coalitions

    game = AdditiveGame(np.arange(7.0))
    ledger = Ledger(game)
    ESTIMATORS["window"].run(ledger, None, 0, n_lim=n_lim)
    assert sorted(key.decode() for key in ledger.keys) == sorted(window_coalitions(7, n_lim))


@pytest.mark.parametrize(
    "name", ["window", "window_efficient", "exact", "kernelshap", "permutation", "svarm"]
)
def test_planned_coalitions_are_what_estimate_asks_a_real_game_for(name: str) -> None:
    """A plan made on synthetic games must list exactly the coalitions (in order) that the estimator
    then asks an unrelated game for: export-job ships the plan and the cells run from its scores."""
    game = pairwise_game(7, seed=3)
    budget = {"window": None, "window_efficient": None, "exact": 2**7}.get(name, 40)
    plan = planned_coalitions(name, 7, budget, seed=5)
    estimate(game, name, budget, seed=5, bootstrap=0)
    assert plan == game.evaluated
    assert len(set(plan)) == len(plan)


def test_planned_window_is_every_window_the_full_model_and_the_empty_one() -> None:
    plan = planned_coalitions("window", 9, n_lim=2)
    assert set(plan) == {*window_coalitions(9, 2), "0" * 9}


def test_an_estimator_that_follows_the_values_cannot_be_planned() -> None:
    with pytest.raises(ValueError, match="'truncated' picks its coalitions from the values"):
        planned_coalitions("truncated", 8, 60)


def test_resolve_budget_gives_sampling_estimators_the_window_cost() -> None:
    assert resolve_budget("kernelshap", None, 60, 3) == window_cost(60, 3) == 178
    assert resolve_budget("kernelshap", 90, 60, 3) == 90
    assert resolve_budget("window", None, 60, 3) is None


# ---------------------------------------------------------------- one interface, saved estimates


@pytest.mark.parametrize("name", list(ESTIMATORS))
def test_every_estimator_runs_through_one_call(name):
    """`run(ledger, budget, seed, **options)` for all, window and exact included; a deterministic
    estimator's budget may be None, a sampling one's is required."""
    spec = ESTIMATORS[name]
    game = CornerstoneGame(n_players=6, chance=0.25)
    budget = None if spec.deterministic else max(spec.min_budget(6, {}), 40)
    run = spec.run(Ledger(game, budget), budget, 0)
    assert run.values.shape == (6,)


def test_estimator_options_come_from_the_configuration():
    from lsi.config import DEFAULTS

    assert estimator_options("window", DEFAULTS.replace(max_removed=2).parameters()) == {"n_lim": 2}
    assert estimator_options("kernelshap", DEFAULTS.parameters()) == {}


def test_committed_estimates_load_back_unchanged():
    files = sorted(
        (Path(__file__).resolve().parent.parent / "results" / "scores").glob("*/*/*/estimates/*.json")
    )
    assert files
    for path in files:
        record = json.loads(path.read_text())
        loaded = Estimate.load(path)
        assert loaded.to_dict() == {key: record[key] for key in loaded.to_dict()}


def test_a_saved_estimate_loads_back(tmp_path):
    from lsi.results import save_estimate
    from lsi.store import ScoreStore

    result = estimate(pairwise_game(), "kernelshap", budget=30, bootstrap=0)
    store = ScoreStore(tmp_path, {})
    path, _ = save_estimate(store, result, {"value": "score", "restricted_to": None})
    loaded = Estimate.load(path)
    np.testing.assert_array_equal(loaded.values, result.values)
    assert np.isnan(loaded.ci_low).all() and loaded.players == result.players and loaded.info == result.info
    # Saving the same estimate again leaves the file as it was (a rerun changes no committed file).
    written = path.read_bytes()
    path.write_bytes(written.replace(b'"created": "', b'"created": "1999'))
    assert save_estimate(store, result, {"value": "score", "restricted_to": None})[1]["created"].startswith(
        "1999"
    )
    other = estimate(pairwise_game(), "kernelshap", budget=30, seed=1, bootstrap=0)
    other.seed = 0  # same file name, other values: replaced
    assert save_estimate(store, other, {"value": "score", "restricted_to": None})[1]["values"] == list(
        other.values
    )


def test_agreement_is_defined_once():
    from lsi.estimators.agreement import cornerstones_recovered, top_k, top_k_precision

    assert top_k([0.1, 0.3, 0.3, 0.2], 2) == {1, 2}  # ties broken by player order
    assert top_k_precision([0.0, 0.9, 0.8, 0.1], [0.5, 0.5, 0.5, 0.0], 2) == 1.0  # reference ties count
    assert top_k_precision([0.9, 0.0, 0.0, 0.8], [1.0, 0.9, 0.8, 0.0], 2) == 0.5
    assert cornerstones_recovered([0.9, 0.1, 0.8], {0, 2}) is True
    assert cornerstones_recovered([0.9, 0.1, 0.8], set()) is None
