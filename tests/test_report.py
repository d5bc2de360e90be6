"""The study's summary tables (lsi.report): task order, the latest estimate per grid cell, statistics
over the tasks above chance only, dense against MoE, recall beside multiple choice. Synthetic index
rows and stores, no model."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import store_meta

from lsi import figures, report
from lsi.report import cornerstone_statistics, dense_vs_moe, shapley_grids, task_order
from lsi.results import estimate_index, store_index
from lsi.store import ScoreStore


def test_paper_tasks_first_then_the_others_alphabetically() -> None:
    assert task_order(["mmlu", "piqa", "copa", "boolq"]) == ["boolq", "piqa", "copa", "mmlu"]


def _report(moe: bool = False) -> pd.DataFrame:
    rows = [
        {"task": "arc_easy", "above_chance": True, "full": 0.4, "max_drop": 0.2},
        {"task": "piqa", "above_chance": True, "full": 0.6, "max_drop": 0.1},
        {"task": "boolq", "above_chance": False, "full": 0.39, "max_drop": 0.02},
    ]
    frame = pd.DataFrame(rows).assign(
        model="m", granularity="block", dtype="bfloat16", limit=200, chance=0.3, moe=moe,
        mean_drop_cornerstone=0.15, mean_drop_other=0.01,
    )  # fmt: skip
    return frame


def test_statistics_average_the_tasks_above_chance_only() -> None:
    (row,) = cornerstone_statistics(_report()).to_dict("records")
    assert (row["tasks"], row["tasks_above_chance"]) == (3, 2)
    assert row["full"] == pytest.approx(0.5) and row["max_drop"] == pytest.approx(0.15)


def test_dense_vs_moe_needs_both_kinds() -> None:
    assert dense_vs_moe(_report()).empty
    both = dense_vs_moe(pd.concat([_report(), _report(moe=True).assign(max_drop=0.05)]))
    assert sorted(both["moe"]) == [False, True]
    assert both.set_index("moe").loc[True, "max_drop"] == pytest.approx(0.05)


def test_each_grid_takes_the_latest_estimate_of_each_cell(tmp_path: Path) -> None:
    store = ScoreStore.open(
        tmp_path / "store", store_meta(1, [{"gold": 0, "n_choices": 2, "choice_chars": [1, 1]}])
    ).path
    base = {
        "model": "m", "granularity": "block", "dtype": "bfloat16", "limit": 200, "value": "score",
        "restricted_to": None, "store": store, "players": ["block.0"], "ci_low": [None], "ci_high": [None],
        "evaluations": 3, "created": "1", "metric": "acc_norm",
    }  # fmt: skip
    runs = [
        ("piqa", "window", 0.1),
        ("piqa", "window", 0.2),
        ("boolq", "window", 0.3),
        ("piqa", "kernelshap", 0.4),
    ]
    estimates = pd.DataFrame([base | {"task": t, "estimator": e, "values": [v]} for t, e, v in runs])
    estimates.loc[1, "created"] = "2"  # the second piqa window run is the latest
    by_name = base | {
        "task": "piqa",
        "estimator": "window",
        "values": [0.5],
        "value": "score-acc",
        "metric": "acc",
    }
    estimates = pd.concat([estimates, pd.DataFrame([by_name])], ignore_index=True)  # --metric acc
    grids = {stem: (title, latest) for title, stem, latest in shapley_grids(estimates, _report())}
    assert set(grids) == {
        "shapley-block-bfloat16-limit200-window-score",
        "shapley-block-bfloat16-limit200-kernelshap-score",
        "shapley-block-bfloat16-limit200-window-score-acc",
    }
    assert grids["shapley-block-bfloat16-limit200-window-score-acc"][1]["metric"].tolist() == ["acc"]
    title, latest = grids["shapley-block-bfloat16-limit200-window-score"]
    assert latest["task"].tolist() == ["boolq", "piqa"]  # the paper's order
    assert np.concatenate(latest["values"].to_numpy()).tolist() == [0.3, 0.2]  # the latest piqa run
    assert latest["above_chance"].tolist() == [False, True] and set(latest["metric"]) == {"acc_norm"}
    assert "window, 3 coalitions" in title


N_DOCS = 60
MODEL = {"name": "m", "title": "M", "family": "llama"}


def _store(results: Path, task: str, output_type: str, metric: str, chance: float) -> ScoreStore:
    docs = [{"gold": 0, "n_choices": 2, "choice_chars": [1, 1]}] * N_DOCS
    meta = store_meta(3, docs, metric=metric, chance=chance) | {
        "task": task,
        "model": MODEL,
        "n_docs": N_DOCS,
        "task_info": {"output_type": output_type},
    }
    return ScoreStore.open(results / "scores/m" / task / "block-float32-limit60", meta)


SPREAD = 0.01 * np.arange(N_DOCS)  # gold log-likelihoods differ by document, equally in every coalition


def _right(count: int) -> np.ndarray:
    return (np.arange(N_DOCS) < count).astype(float)


def _choice_store(results: Path) -> None:
    """ARC-Easy over 3 blocks: only block.0's removal brings it to chance."""
    rows = [("111", 50), ("011", 28), ("101", 48), ("110", 49)]
    frame = pd.DataFrame([{"coalition": c, "doc_acc_norm": _right(k)} for c, k in rows])
    _store(results, "arc_easy", "multiple_choice", "acc_norm", 0.5).append(frame)


def _recall_store(results: Path, with_empty: bool) -> None:
    """A generative task: removing block.0 or block.2 leaves no right answer (block.2: a removal that
    multiple choice survives); gold_loglik, -1 nat for the full model, falls by 1, 0.2 and 3 nats, and
    by 10 without any block."""
    rows = [("111", 40, 1.0), ("011", 0, 2.0), ("101", 38, 1.2), ("110", 0, 4.0)]
    rows += [("000", 0, 11.0)] if with_empty else []
    frame = pd.DataFrame(
        [
            {
                "coalition": c,
                "doc_metrics": json.dumps(
                    {"exact_match": _right(k).tolist(), "gold_loglik": (-d - SPREAD).tolist()}
                ),
            }
            for c, k, d in rows
        ]
    )
    _store(results, "triviaqa", "generate_until", "exact_match", 0.0).append(frame)


@pytest.mark.parametrize("with_empty", [False, True])
def test_recall_beside_choice_flags_what_multiple_choice_survives(tmp_path: Path, with_empty: bool) -> None:
    _choice_store(tmp_path)
    _recall_store(tmp_path, with_empty)
    assert store_index(tmp_path)["task"].tolist() == ["arc_easy"]  # multiple choice only by default
    stores = store_index(tmp_path, choices_only=False)
    ((title, stem, table),) = report.recall_against_choice(stores, resamples=50)
    assert stem == "recall-m-block" and "M | block" in title
    summary = report.recall_summary(table).set_index(["task", "value"])
    assert summary.loc[("triviaqa", "exact_match"), "cornerstones"] == "block.0, block.2"
    assert summary.loc[("triviaqa", "exact_match"), "multiple_choice_survives"] == "block.2"
    assert summary.loc[("arc_easy", "acc_norm"), "cornerstones"] == "block.0"
    gaps = table.set_index(["task", "value", "player"])["gap_left"]
    assert gaps[("arc_easy", "acc_norm", "block.0")] == pytest.approx((28 / 60 - 0.5) / (50 / 60 - 0.5))
    # The log-likelihood has no floor until the empty model is scored; then the floor is its value.
    assert (("triviaqa", "gold_loglik") in summary.index) == with_empty
    if with_empty:
        assert summary.loc[("triviaqa", "gold_loglik"), "floor"] == pytest.approx(-11.0 - SPREAD.mean())
        assert gaps[("triviaqa", "gold_loglik", "block.2")] == pytest.approx(7 / 10)
        assert summary.loc[("triviaqa", "gold_loglik"), "cornerstones"] == ""  # 90% and 70% of the gap left
    marks = figures.gap_heatmap(table, title).axes[0].collections[0].get_offsets()
    last = 1 + with_empty  # rows: exact match, gold_loglik where it has a floor, arc_easy
    assert sorted(map(tuple, marks)) == [(0, 0), (0, last), (2, 0)]  # (player, row)


def test_recall_shapley_takes_each_values_latest_full_game_estimate_of_the_same_store(tmp_path: Path) -> None:
    _choice_store(tmp_path)
    _recall_store(tmp_path, with_empty=True)
    ((_, _, table),) = report.recall_against_choice(store_index(tmp_path, choices_only=False), resamples=50)
    players = ["block.0", "block.1", "block.2"]

    def estimate(name: str, task: str, values: list[float], **fields: object) -> None:
        folder = tmp_path / "scores/m" / task / "block-float32-limit60/estimates"
        folder.mkdir(exist_ok=True)
        record = {"task": task, "players": players, "values": values, "estimator": "window",
                  "value": "score", "restricted_to": None, "created": "1"} | fields  # fmt: skip
        (folder / f"{name}.json").write_text(json.dumps(record))

    estimate("a", "triviaqa", [0.3, 0.0, 0.1], metric="exact_match")
    estimate("b", "triviaqa", [0.5, 0.0, 0.2], metric="exact_match", created="2")  # the latest
    estimate("c", "triviaqa", [9.0, 9.0, 9.0], metric="exact_match", estimator="kernelshap", created="3")
    estimate("d", "triviaqa", [9.0, 9.0], restricted_to=players[:2], players=players[:2], created="4")
    estimate("e", "triviaqa", [8.0, 8.0, 8.0], value="margin", metric="exact_match", created="5")
    estimate("f", "triviaqa", [4.0, 1.0, 2.0], value="score-gold_loglik", metric="gold_loglik")
    estimate("g", "arc_easy", [0.2, 0.05, 0.01])  # written before estimates named their metric
    estimates = estimate_index(tmp_path)
    shapley = report.recall_shapley(table, estimates)
    columns = ["triviaqa: exact_match", "triviaqa: gold_loglik", "arc_easy: acc_norm"]
    assert shapley.columns.tolist() == columns
    assert shapley.index.tolist() == players
    assert shapley["triviaqa: exact_match"].tolist() == [0.5, 0.0, 0.2]
    assert shapley["arc_easy: acc_norm"].tolist() == [0.2, 0.05, 0.01]
    assert shapley["triviaqa: gold_loglik"].tolist() == [4.0, 1.0, 2.0]
    assert report.recall_shapley(table, estimates[estimates["task"] == "arc_easy"]).shape == (3, 1)
    assert report.recall_shapley(table, pd.DataFrame()).empty
