"""Reading a results folder without a model: the store index, estimates, tables, dtype agreement."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lsi.analysis import ablation_table, cornerstone_report, cornerstones, dtype_agreement, estimate_agreement
from lsi.estimators import Estimate, estimate
from lsi.layer_game import LayerGame
from lsi.results import estimate_index, save_estimate, store_index, write_table
from lsi.store import ScoreStore

DEMO = Path(__file__).resolve().parent.parent / "results/scores/smollm2-135m/arc_easy/block-float32-limit50"


def _copy(results: Path, dtype: str) -> Path:
    target = results / "scores/smollm2-135m/arc_easy" / f"block-{dtype}-limit50"
    shutil.copytree(DEMO, target)
    meta = json.loads((target / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps(meta | {"dtype": dtype}))
    return target


def test_store_index_and_estimates(tmp_path: Path) -> None:
    store_path = _copy(tmp_path, "float32")
    index = store_index(tmp_path)
    assert index[["model", "task", "granularity", "dtype", "limit"]].iloc[0].tolist() == [
        "smollm2-135m",
        "arc_easy",
        "block",
        "float32",
        50,
    ]
    assert bool(index["has_ablation"].iloc[0]) and index["coalitions"].iloc[0] == 31
    store = ScoreStore.open(store_path)
    game = LayerGame(store, "score").restricted([0, 1])
    result = estimate(game, "window", bootstrap=0, n_lim=1)  # full + two single removals: stored
    path, record = save_estimate(store, result, {"value": "score", "restricted_to": ["block.0", "block.1"]})
    found = estimate_index(tmp_path)
    assert len(found) == 1 and found["file"].iloc[0] == path
    assert found["values"].iloc[0] == record["values"] == list(result.values)


def test_dtype_agreement_counts_flipped_documents(tmp_path: Path) -> None:
    _copy(tmp_path, "float32")
    cheap = _copy(tmp_path, "bfloat16")
    frame = pd.read_parquet(cheap / "parts")
    row = frame.index[frame["coalition"] == "0" + "1" * 29][0]
    docs = np.asarray(frame.at[row, "doc_acc_norm"]).copy()
    docs[:3] = 1 - docs[:3]  # three documents change their answer in one coalition
    frame.at[row, "doc_acc_norm"] = docs
    shutil.rmtree(cheap / "parts")
    (cheap / "parts").mkdir()
    frame.to_parquet(cheap / "parts/part-0.parquet")
    table = dtype_agreement(store_index(tmp_path))
    assert len(table) == 1
    assert table["coalitions"].iloc[0] == 31 and table["max_flips"].iloc[0] == 3
    assert table["mean_flips"].iloc[0] == 3 / 31


def test_write_table(tmp_path: Path) -> None:
    paths = write_table(pd.DataFrame({"a": [1.5, 2.25]}), tmp_path / "t", "x")
    assert pd.read_csv(paths[0])["a"].tolist() == [1.5, 2.25]
    assert "2.25" in paths[1].read_text()


def test_cornerstone_report_claims(tmp_path: Path) -> None:
    """The claim columns: does the window ranking put the cornerstones first, and does it agree with
    the sampler's ranking? Checked with hand-made estimates over the demo store's players."""
    store = ScoreStore.open(_copy(tmp_path, "float32"))
    flagged = cornerstones(ablation_table(store, resamples=50))
    corner = flagged["cornerstone"].to_numpy()
    assert 0 < corner.sum() < len(corner)
    players = tuple(flagged["player"])
    ranking = corner + np.linspace(0, 0.1, len(corner))  # cornerstones first, then a fixed order
    for name, values in [("window", ranking), ("kernelshap", ranking * 2)]:
        fake = Estimate(name, players, values, *[np.full(len(players), np.nan)] * 3, 88, 88, 0, {}, {})
        save_estimate(store, fake, {"value": "score", "restricted_to": None})
    report = cornerstone_report(store_index(tmp_path), estimate_index(tmp_path), resamples=50)
    row = report.iloc[0]
    assert row["window_top_precision"] == 1.0 and row["spearman_window_kernelshap"] == 1.0
    # A later sampler run at another budget is not the equal-cost comparison: it is left out.
    nan = np.full(len(players), np.nan)
    other = Estimate("kernelshap", players, -ranking, nan, nan, nan, 500, 500, 1, {}, {})
    save_estimate(store, other, {"value": "score", "restricted_to": None})
    row = cornerstone_report(store_index(tmp_path), estimate_index(tmp_path), resamples=50).iloc[0]
    assert row["spearman_window_kernelshap"] == 1.0
    assert row["deepest_cornerstone_block"] == flagged.loc[corner, "block"].max()
    collapsed = flagged.loc[corner, "score_low"] <= flagged.attrs["chance"]
    assert row["collapsed_share"] == collapsed.mean() and collapsed.sum() > 0
    assert row["positive_mass_share_cornerstone"] > 0
    fake = Estimate("window", players, -ranking, *[np.full(len(players), np.nan)] * 3, 88, 88, 0, {}, {})
    save_estimate(store, fake, {"value": "score", "restricted_to": None})  # replaces the file
    row = cornerstone_report(store_index(tmp_path), estimate_index(tmp_path), resamples=50).iloc[0]
    assert row["window_top_precision"] < 1.0 and row["spearman_window_kernelshap"] == -1.0


def test_no_cornerstones_where_the_full_model_is_not_above_chance(tmp_path: Path) -> None:
    table = ablation_table(ScoreStore.open(_copy(tmp_path, "float32")), resamples=50)
    assert cornerstones(table)["cornerstone"].any()
    table.attrs["above_chance"] = False
    assert not cornerstones(table)["cornerstone"].any()


def test_estimate_agreement_pairs_estimates_and_pools_seeds() -> None:
    def record(estimator, budget, seed, values, created, store="s1", value="score"):
        players = ["attn.0", "mlp.0", "attn.1", "mlp.1", "attn.2", "mlp.2"]
        return {"estimator": estimator, "budget": budget, "seed": seed, "values": values, "players": players,
                "value": value, "restricted_to": None, "store": store, "created": created, "model": "m",
                "task": "t", "granularity": "sublayer", "dtype": "bfloat16", "limit": 200}  # fmt: skip

    window = [6.0, 5.0, 4.0, 3.0, 2.0, 1.0]
    seed1 = [6.0, 5.0, 4.0, 1.0, 2.0, 3.0]
    seed2 = [5.0, 6.0, 1.0, 3.0, 4.0, 2.0]
    estimates = pd.DataFrame(
        [
            record("window", None, None, [0.0] * 6, "1"),  # superseded by the later window estimate
            record("window", None, None, window, "2"),
            record("kernelshap", 360, 1, seed1, "3"),
            record("kernelshap", 360, 2, seed2, "4"),
            record("kernelshap", 360, 2, [9.0] * 6, "5", value="margin"),  # another value: ignored
            record("window", None, None, window, "6", store="s2"),  # a store with one estimate: no pair
        ]
    )
    table = estimate_agreement(estimates, top=3).set_index(["a", "b"])
    pooled = "kernelshap b360 mean of 2 seeds"
    assert set(table.index) == {
        ("window", "kernelshap b360 s1"),
        ("window", "kernelshap b360 s2"),
        ("window", pooled),
        ("kernelshap b360 s1", "kernelshap b360 s2"),
        ("kernelshap b360 s1", pooled),
        ("kernelshap b360 s2", pooled),
    }
    mean = (np.array(seed1) + np.array(seed2)) / 2
    assert table.loc[("window", "kernelshap b360 s1"), "spearman"] == pytest.approx(1 - 6 * 8 / (6 * 35))
    assert table.loc[("window", pooled), "spearman"] == pytest.approx(stats.spearmanr(window, mean).statistic)
    assert table.loc[("window", "kernelshap b360 s2"), "top3_overlap"] == pytest.approx(2 / 3)
    assert table.loc[("window", "kernelshap b360 s1"), "top3_overlap"] == pytest.approx(1.0)
    assert table.loc[("kernelshap b360 s1", "kernelshap b360 s2"), "top3_overlap"] == pytest.approx(2 / 3)
    assert (table["players"] == 6).all() and (table["model"] == "m").all()
    assert estimate_agreement(pd.DataFrame()).empty
