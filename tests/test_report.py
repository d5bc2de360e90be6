"""The study's summary tables (lsi.report): task order, the latest estimate per grid cell, statistics
over the tasks above chance only, dense against MoE. Synthetic index rows, no model."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from synthetic_stores import store_meta

from lsi.report import cornerstone_statistics, dense_vs_moe, shapley_grids, task_order
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
        "evaluations": 3, "created": "1",
    }  # fmt: skip
    runs = [
        ("piqa", "window", 0.1),
        ("piqa", "window", 0.2),
        ("boolq", "window", 0.3),
        ("piqa", "kernelshap", 0.4),
    ]
    estimates = pd.DataFrame([base | {"task": t, "estimator": e, "values": [v]} for t, e, v in runs])
    estimates.loc[1, "created"] = "2"  # the second piqa window run is the latest
    grids = {stem: (title, latest) for title, stem, latest in shapley_grids(estimates, _report())}
    assert set(grids) == {
        "shapley-block-bfloat16-limit200-window-score",
        "shapley-block-bfloat16-limit200-kernelshap-score",
    }
    title, latest = grids["shapley-block-bfloat16-limit200-window-score"]
    assert latest["task"].tolist() == ["boolq", "piqa"]  # the paper's order
    assert np.concatenate(latest["values"].to_numpy()).tolist() == [0.3, 0.2]  # the latest piqa run
    assert latest["above_chance"].tolist() == [False, True] and set(latest["metric"]) == {"acc_norm"}
    assert "window, 3 coalitions" in title
