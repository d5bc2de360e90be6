"""Reading a results folder without a model: the store index, estimates, tables, dtype agreement."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from lsi.analysis import (
    ablation_table,
    cornerstone_report,
    cornerstones,
    dtype_agreement,
    estimate_agreement,
    limit_agreement,
)
from lsi.estimators import Estimate, estimate
from lsi.layer_game import LayerGame
from lsi.results import estimate_index, save_estimate, store_index, write_table
from lsi.store import ScoreStore

DEMO = Path(__file__).resolve().parent.parent / "results/scores/smollm2-135m/arc_easy/block-float32-limit50"


def _copy(results: Path, dtype: str, limit: int | None = 50) -> Path:
    target = results / "scores/smollm2-135m/arc_easy" / f"block-{dtype}-limit{limit or 'all'}"
    shutil.copytree(DEMO, target)
    meta = json.loads((target / "meta.json").read_text())
    (target / "meta.json").write_text(json.dumps(meta | {"dtype": dtype, "limit": limit}))
    return target


def _edit_docs(store: Path, edit: Callable[[pd.DataFrame], None]) -> None:
    frame = pd.read_parquet(store / "parts")
    edit(frame)
    shutil.rmtree(store / "parts")
    (store / "parts").mkdir()
    frame.to_parquet(store / "parts/part-0.parquet")


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
    assert found["metric"].iloc[0] == "acc_norm"  # an estimate that names no metric: the store's default


def _flip(frame: pd.DataFrame, coalition: str, docs: slice) -> None:
    row = frame.index[frame["coalition"] == coalition][0]
    answers = np.asarray(frame.at[row, "doc_acc_norm"]).copy()
    answers[docs] = 1 - answers[docs]
    frame.at[row, "doc_acc_norm"] = answers


def test_dtype_agreement_counts_flipped_documents(tmp_path: Path) -> None:
    _copy(tmp_path, "float32")
    cheap = _copy(tmp_path, "bfloat16")
    _edit_docs(cheap, lambda frame: _flip(frame, "0" + "1" * 29, slice(0, 3)))  # 3 answers change
    table = dtype_agreement(store_index(tmp_path))
    assert len(table) == 1
    assert table["coalitions"].iloc[0] == 31 and table["max_flips"].iloc[0] == 3
    assert table["mean_flips"].iloc[0] == 3 / 31


def test_limit_agreement_compares_the_documents_both_stages_hold(tmp_path: Path) -> None:
    """A 20-document stage against a 50-document one: only the first 20 documents count, so flips
    after them are invisible and flips among them are counted."""
    early = _copy(tmp_path, "bfloat16", limit=20)

    def first_twenty(frame: pd.DataFrame) -> None:
        frame["doc_acc_norm"] = [np.asarray(d)[:20] for d in frame["doc_acc_norm"]]

    _edit_docs(early, first_twenty)
    late = _copy(tmp_path, "bfloat16", limit=50)
    _edit_docs(late, lambda frame: _flip(frame, "1" * 30, slice(18, 30)))  # 2 of them in the first 20
    table = limit_agreement(store_index(tmp_path))
    assert len(table) == 1
    row = table.iloc[0]
    assert (row["limit"], row["reference_limit"], row["n_docs"]) == (50, 20, 20)
    assert row["coalitions"] == 31 and row["max_flips"] == 2 and row["mean_flips"] == 2 / 31
    full = ScoreStore.open(DEMO).frame().set_index("coalition").at["1" * 30, "doc_acc_norm"]
    assert row["max_score_diff"] == pytest.approx(abs(np.sum(1 - 2 * np.asarray(full)[18:20])) / 20)


def test_a_store_of_every_document_comes_after_every_limit(tmp_path: Path) -> None:
    """A store without a limit (all documents, e.g. a held-out task's) keeps the others' limits integers
    (they name files: `limit50`, not `limit50.0`) and is the later stage of any limited twin."""
    _copy(tmp_path, "bfloat16", limit=50)
    _copy(tmp_path, "bfloat16", limit=None)
    index = store_index(tmp_path)
    assert str(index["limit"].dtype) == "Int64"
    assert sorted(str(v) for v in index["limit"]) == ["50", "<NA>"]
    table = limit_agreement(index)
    assert len(table) == 1 and pd.isna(table["limit"].iloc[0]) and table["reference_limit"].iloc[0] == 50


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
