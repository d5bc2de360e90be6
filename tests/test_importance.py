"""The measures side by side and the pruning curves on the embedded model (4 ARC-Easy documents,
whole blocks, float32): every column is the quantity it names, computed again another way; the
curves' steps follow each measure's order and their scores are the store's."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest

from lsi.config import RunConfig
from lsi.errors import UserError
from lsi.importance import importance, measures_path, parse_measures
from lsi.measures import lm_eval_inputs, one_pass_measures
from lsi.players import coalition_without, player_parameters
from lsi.pruning_curves import (
    best_at,
    best_within_parameters,
    greedy_ablation_steps,
    one_shot_steps,
    recomputed_steps,
    scored_curves,
    with_parameters,
)
from lsi.scoring import Scorer


@pytest.fixture(scope="module")
def setting(smollm, tmp_path_factory):
    results = tmp_path_factory.mktemp("results")
    config = RunConfig(
        task="arc_easy", limit=4, granularity="block", dtype="float32", results_dir=str(results)
    )
    scorer = Scorer(smollm, "arc_easy", 4, "block", results)
    imp = importance(config, scorer.store, lambda: scorer, progress=False)
    return config, scorer, imp


def test_every_column_is_what_it_names(setting):
    _, scorer, imp = setting
    table = imp.table.set_index("player")
    rows = scorer.store.frame().set_index("coalition")
    full = rows.at["1" * 30, "score"]
    for p in scorer.players:
        assert table.at[p.name, "ablation"] == pytest.approx(
            full - rows.at[coalition_without(scorer.players, [p]), "score"]
        )
    direct = one_pass_measures(scorer.lm.model, lm_eval_inputs(scorer.requests, scorer.max_length))
    np.testing.assert_allclose(table["bi"], direct.block_influence, rtol=1e-9)
    assert table["llmdrop"].isna().all()  # a branch measure: undefined for whole blocks
    assert list(imp.spans["k"]) == list(range(1, 30))
    pairs = set(zip(imp.correlations["measure_a"], imp.correlations["measure_b"], strict=True))
    assert pairs == {("shapley", "ablation"), ("shapley", "bi"), ("ablation", "bi")}
    assert imp.order("bi")[0] == table["bi"].idxmin()


def test_one_pass_measures_are_read_back_without_a_model(setting):
    config, scorer, imp = setting
    record = json.loads(measures_path(scorer.store).read_text())
    assert record["model"]["weights_sha256"] == scorer.lm.identity.weights_sha256 and record["n_docs"] == 4

    def no_model():
        raise AssertionError("the model was asked for")

    again = importance(config, scorer.store, no_model, ("bi", "angular", "ablation"), progress=False)
    np.testing.assert_array_equal(again.table["bi"], imp.table["bi"])


def test_curves_follow_each_order_and_score_through_the_store(setting):
    _, scorer, imp = setting
    steps = [s for m in ("shapley", "bi", "angular", "llmdrop") for s in one_shot_steps(imp, m, 3)]
    assert [s.removed for s in steps if s.measure == "bi"] == [tuple(imp.order("bi")[:k]) for k in (1, 2, 3)]
    assert not [s for s in steps if s.measure == "llmdrop"]  # undefined for blocks: no curve
    angular = [s.removed for s in steps if s.measure == "angular"]
    assert [len(r) for r in angular] == [1, 2, 3]
    greedy = greedy_ablation_steps(scorer, 2, lambda row: float(row["score"]), progress=False)
    rows = scorer.store.frame().set_index("coalition")
    by_name = {p.name: p for p in scorer.players}
    first = max(
        scorer.players, key=lambda p: (rows.at[coalition_without(scorer.players, [p]), "score"], -p.index)
    )
    assert greedy[0].removed == (first.name,) and greedy[1].removed[0] == first.name
    recomputed = recomputed_steps(scorer, "bi", 2, lm_eval_inputs(scorer.requests, scorer.max_length), 0)
    assert recomputed[0].removed == (imp.order("bi")[0],)
    curves = scored_curves(scorer, [*steps, *greedy, *recomputed], progress=False, resamples=50)
    rows = scorer.store.frame().set_index("coalition")
    for r in curves.itertuples():
        removed = [by_name[n] for n in r.removed.split(",")] if r.removed else []
        assert r.coalition == coalition_without(scorer.players, removed)
        assert r.score == pytest.approx(rows.at[r.coalition, "score"]) and r.ci_low <= r.score <= r.ci_high
    assert set(curves.groupby(["measure", "mode"]).size()) <= {3, 4}  # k = 0 .. 3 (greedy/recomputed: 0 .. 2)
    top = best_at(curves, 8)  # 25% of 8 players = 2 removed
    assert (top["k"] == 2).all() and top["score"].is_monotonic_decreasing
    sized = with_parameters(curves, player_parameters(scorer.lm.model, scorer.players))
    np.testing.assert_allclose(sized["parameter_share"], sized["k"] / 30)  # SmolLM2's blocks are alike
    assert (sized.loc[sized["k"] == 0, "parameters_removed"] == 0).all()
    assert "parameter_share" in best_at(sized, 8)


def test_held_out_documents_score_the_same_steps(setting, smollm, tmp_path):
    """Every step is scored on the held-out scorer's documents too, through its own store: the
    columns are that store's scores with their intervals, beside the unchanged task columns."""
    _, scorer, imp = setting
    held_out = Scorer(smollm, "piqa", 3, "block", tmp_path)
    steps = one_shot_steps(imp, "bi", 2)
    plain = scored_curves(scorer, steps, progress=False, resamples=50)
    curves = scored_curves(scorer, steps, progress=False, resamples=50, holdout_scorer=held_out)
    pd.testing.assert_frame_equal(curves[plain.columns], plain)
    rows = held_out.store.frame().set_index("coalition")
    for r in curves.itertuples():
        assert r.holdout_score == pytest.approx(rows.at[r.coalition, "score"])
        assert r.holdout_ci_low <= r.holdout_score <= r.holdout_ci_high
    assert {"holdout_score", "holdout_ci_low", "holdout_ci_high"} <= set(best_at(curves, 8))


def test_recomputed_rounds_resume_from_their_file(setting, tmp_path):
    """An interrupted iterative measure keeps its finished rounds: a rerun continues from the file and
    ends where an uninterrupted run ends; a file of another measure is refused, not silently reused."""
    _, scorer, _ = setting
    inputs = lm_eval_inputs(scorer.requests, scorer.max_length)
    whole = recomputed_steps(scorer, "bi", 3, inputs, 0)
    saved = tmp_path / "iterative-bi.json"
    first = recomputed_steps(scorer, "bi", 1, inputs, 0, saved=saved)
    assert json.loads(saved.read_text()) == {"measure": "bi", "removed": list(whole[0].removed)}
    assert first == whole[:1]
    assert recomputed_steps(scorer, "bi", 3, inputs, 0, saved=saved) == whole
    assert json.loads(saved.read_text())["removed"] == list(whole[-1].removed)
    saved.write_text(json.dumps({"measure": "bi", "removed": ["block.29"]}))  # a round it would not pick
    assert recomputed_steps(scorer, "bi", 2, inputs, 0, saved=saved)[0].removed == ("block.29",)
    saved.write_text(json.dumps({"measure": "llmdrop", "removed": ["attn.3"]}))
    with pytest.raises(UserError, match="delete it to recompute"):
        recomputed_steps(scorer, "bi", 2, inputs, 0, saved=saved)


def test_equal_parameters_compares_the_last_step_within_the_share():
    """Small players let one order go further before it reaches a share of the parameters: each curve
    is read at its own last step within the share, not at a common k."""
    small, large = 1, 3  # two curves over 8 players: one removes small players, the other large ones
    rows = [
        {
            "measure": m,
            "mode": "one-shot",
            "k": k,
            "parameter_share": k * size / 16,
            "score": 0.9 - k * drop,
            "ci_low": 0.0,
            "ci_high": 1.0,
            "removed": "",
        }
        for m, size, drop in (("llmdrop", small, 0.1), ("shapley", large, 0.05))
        for k in range(5)
    ]
    curves = pd.DataFrame(rows)
    best = best_within_parameters(curves, share=0.25)  # 4 of 16 parameter units
    assert best["measure"].tolist() == ["shapley", "llmdrop"]
    assert best.set_index("measure")["k"].to_dict() == {"shapley": 1, "llmdrop": 4}
    assert (best["parameter_share"] <= 0.25).all() and best["score"].is_monotonic_decreasing
    assert best_at(curves, 8)["measure"].tolist() == ["shapley", "llmdrop"]  # both at k = 2


def test_bad_measures_are_named():
    with pytest.raises(UserError, match="unknown measure shapely"):
        parse_measures("shapley,shapely")
    assert parse_measures(None) == ("shapley", "ablation", "bi", "angular", "llmdrop")


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["importance", "--measures", "bi,shapely"], "unknown measure shapely; measures are"),
        (["pruning-curves", "--iterative", "shapley"], "no iterative variant of shapley"),
        (["pruning-curves", "--task", "piqa", "--holdout-task", "piqa"], "is the task the orders come from"),
        (["pruning-curves", "--holdout-task", "piqa_heldot"], "unknown task 'piqa_heldot'"),
    ],
)
def test_cli_bad_measures_exit_2_before_loading(argv, message, capsys):
    from lsi.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err
    assert message in err and len(err.strip().splitlines()) == 1
