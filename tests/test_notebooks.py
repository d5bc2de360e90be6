"""The notebooks: every .py source has an in-sync .ipynb; the quickstart and the paper-figures notebook
run end to end under papermill; the figures are written and the tables match the stores they came from."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import jupytext
import numpy as np
import pandas as pd
import papermill
import pytest
from scipy.stats import spearmanr
from test_read_side import blocked_environment

ROOT = Path(__file__).resolve().parent.parent
NOTEBOOKS = sorted((ROOT / "notebooks").glob("*.py"))
RESULTS = ROOT / "results"
KERNEL = {"kernel_name": "python3", "language": "python", "progress_bar": False, "cwd": str(ROOT)}


def _cells(notebook) -> list[tuple[str, str, tuple[str, ...]]]:
    return [(c.cell_type, c.source, tuple(c.metadata.get("tags", ()))) for c in notebook.cells]


@pytest.mark.parametrize("source", NOTEBOOKS, ids=lambda p: p.stem)
def test_pair_in_sync(source: Path) -> None:
    paired = source.with_suffix(".ipynb")
    assert paired.exists(), f"{paired.name} is missing: run `jupytext --sync notebooks/*.py`"
    assert _cells(jupytext.read(paired)) == _cells(jupytext.read(source)), (
        f"{paired.name} is out of sync with {source.name}: run `jupytext --sync notebooks/*.py`"
    )


def test_notebooks_have_parameters() -> None:
    assert {p.stem for p in NOTEBOOKS} >= {"00_quickstart", "01_layer_importance", "02_paper_figures"}
    for source in NOTEBOOKS:
        tagged = [c for c in jupytext.read(source).cells if "parameters" in c.metadata.get("tags", ())]
        assert len(tagged) == 1, f"{source.name} needs exactly one cell tagged 'parameters'"


def _png_and_pdf(folder: Path, stem: str) -> None:
    for suffix in ("png", "pdf"):
        path = folder / f"{stem}.{suffix}"
        assert path.exists() and path.stat().st_size > 1000, f"{path} missing or empty"


def _paper_figures(results: Path, tmp_path: Path, resamples: int, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run 02_paper_figures on a results folder, in a kernel that cannot import torch, transformers or
    lm-eval (it "needs no model"); returns the folder it wrote to."""
    for name, value in blocked_environment(tmp_path / "blocker").items():
        monkeypatch.setenv(name, value)
    out = tmp_path / "figures"
    papermill.execute_notebook(
        str(ROOT / "notebooks/02_paper_figures.ipynb"),
        str(tmp_path / "02.ipynb"),
        parameters={"results_dir": str(results), "figures_dir": str(out), "resamples": resamples},
        **KERNEL,
    )
    return out


@pytest.mark.slow
def test_paper_figures_from_committed_results(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    out = _paper_figures(RESULTS, tmp_path, resamples=200, monkeypatch=monkeypatch)
    report = pd.read_csv(out / "cornerstones.csv")
    assert len(report) > 0
    for row in report.itertuples():
        stem = f"ablation-{row.model}-{row.granularity}-{row.dtype}-limit{row.limit}"
        _png_and_pdf(out, stem)
        # Recompute from the store's parquet parts with pandas alone.
        store = RESULTS / "scores" / row.model / row.task / f"{row.granularity}-{row.dtype}-limit{row.limit}"
        frame = pd.read_parquet(store / "parts").drop_duplicates("coalition").set_index("coalition")
        n = len(next(iter(frame.index)))
        full = frame.loc["1" * n, "score"]
        singles = [frame.loc["1" * i + "0" + "1" * (n - i - 1), "score"] for i in range(n)]
        assert row.full == pytest.approx(full, abs=1e-12)
        assert row.max_drop == pytest.approx(full - min(singles), abs=1e-12)
        assert row.n_docs == len(frame.loc["1" * n, f"doc_{row.metric}"])
    stats = pd.read_csv(out / "cornerstone-statistics.csv")
    config = ["model", "granularity", "dtype", "limit"]
    assert stats["tasks"].sum() == len(report)
    assert stats["tasks_above_chance"].sum() == report["above_chance"].sum()
    clear = report[report["above_chance"]].groupby(config)["full"].mean().rename("mean").reset_index()
    merged = stats.merge(clear, on=config)  # means are over the tasks above chance only
    assert len(merged) == (stats["tasks_above_chance"] > 0).sum() > 0
    assert merged["full"].to_numpy() == pytest.approx(merged["mean"].to_numpy())
    assert stats.loc[stats["tasks_above_chance"] == 0, "full"].isna().all()
    keys = ["model", "task", "granularity", "limit", "a", "b"]
    agreement = pd.read_csv(out / "estimate-agreement.csv").set_index(keys)
    estimates = RESULTS / "scores/smollm2-135m/arc_easy/sublayer-bfloat16-limit200/estimates"
    window, sampled = (json.loads((estimates / f"{name}-score-{run}-all.json").read_text())["values"]
                       for name, run in [("window", "bNone-sNone"), ("kernelshap", "b178-s0")])  # fmt: skip
    row = agreement.loc[("smollm2-135m", "arc_easy", "sublayer", 200, "window", "kernelshap b178 s0")]
    assert row["spearman"] == pytest.approx(spearmanr(window, sampled).statistic)
    recall = pd.read_csv(out / "recall-cornerstones.csv").set_index(["model", "granularity", "task", "value"])
    for model, granularity in {key[:2] for key in recall.index}:
        _png_and_pdf(out, f"recall-{model}-{granularity}")
    lambada = RESULTS / "scores/smollm2-135m/lambada_openai/sublayer-bfloat16-limit1000/parts"
    frame = pd.read_parquet(lambada).drop_duplicates("coalition").set_index("coalition")
    full_acc = json.loads(frame.loc["1" * 60, "metrics"])["acc"]
    lambada_acc = recall.loc[("smollm2-135m", "sublayer", "lambada_openai", "acc")]
    assert lambada_acc["full"] == pytest.approx(full_acc)
    spearman = pd.read_csv(out / "recall-smollm2-135m-sublayer-shapley-spearman.csv").set_index("Spearman")
    window_values = {  # the same 60 players in the same order
        task: json.loads((RESULTS / "scores/smollm2-135m" / task / "sublayer-bfloat16-limit1000/estimates"
                          / "window-score-bNone-sNone-all.json").read_text())["values"]
        for task in ("lambada_openai", "arc_easy")
    }  # fmt: skip
    assert spearman.loc["lambada_openai: perplexity", "arc_easy: acc_norm"] == pytest.approx(
        spearmanr(window_values["lambada_openai"], window_values["arc_easy"]).statistic, abs=0.005
    )
    by_parameters = pd.read_csv(out / "pruning-at-25-percent-of-parameters.csv")
    cells = by_parameters.groupby(["model", "task", "granularity"])
    assert cells.ngroups == len(list(RESULTS.glob("scores/*/*/*/pruning/curves.csv"))) > 0
    assert (by_parameters["parameter_share"] <= 0.25 + 1e-9).all()
    assert cells["score"].apply(lambda s: s.is_monotonic_decreasing).all()
    references = pd.read_csv(out / "reference-agreement.csv").set_index(["reference", "estimator", "seed"])
    for path in (RESULTS / "references").glob("*.json"):
        _png_and_pdf(out, f"reference-{path.stem}")
        record = json.loads(path.read_text())
        saved = ROOT / record["store"] / "estimates/window-score-bNone-sNone-all.json"
        window = json.loads(saved.read_text())
        row = references.loc[(path.stem, "window", 0)]
        assert row["walk_pairs"] == record["walk_pairs"] and row["value"] == record["value"]
        if record["value"] == "score":  # the saved window estimate is of accuracy
            assert row["spearman"] == pytest.approx(spearmanr(window["values"], record["values"]).statistic)
    for csv in (RESULTS / "estimator_benchmark").glob("*.csv"):
        _png_and_pdf(out, f"estimators-{csv.stem}")
        table = pd.read_csv(out / f"estimators-{csv.stem}.csv")
        bench = pd.read_csv(csv)
        medians = bench.groupby(["estimator", "budget"])["mse"].median().to_numpy()
        assert np.allclose(table["mse"].to_numpy(), medians)


@pytest.mark.slow
def test_quickstart_runs(tmp_path: Path) -> None:
    """The five-minute tour end to end on the embedded model (a few minutes on 2 cores)."""
    out = tmp_path / "figures"
    papermill.execute_notebook(
        str(ROOT / "notebooks/00_quickstart.ipynb"),
        str(tmp_path / "00.ipynb"),
        parameters={
            "results_dir": str(tmp_path / "results"),
            "figures_dir": str(out),
            "task": "arc_easy",
            "limit": 6,
        },
        **KERNEL,
    )
    _png_and_pdf(out, "quickstart-ablation-smollm2-135m-arc_easy")
    _png_and_pdf(out, "quickstart-shapley-smollm2-135m-arc_easy")
    stores = list((tmp_path / "results").glob("scores/smollm2-135m/arc_easy/*/parts"))
    assert len(stores) == 1
    # The full model, 30 single removals, windows of two and three blocks (1 + 30 + 29 + 28), and the
    # empty model, which the efficiency check v(all) - v(empty) needs.
    assert pd.read_parquet(stores[0])["coalition"].nunique() == 88 + 1


@pytest.mark.slow
def test_optional_sections(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The sections drawn only when their results exist: dense vs MoE, and removal curves.

    No MoE model is available offline, so the MoE store is a relabelled copy of a committed one
    (family 'mixtral'), and the curves are written by hand: this checks the notebook's grouping and
    drawing, not a finding.
    """
    import json
    import shutil

    from lsi.results import save_removal_curves
    from lsi.store import ScoreStore

    source = RESULTS / "scores/smollm2-135m/arc_easy/block-float32-limit50"
    results = tmp_path / "results"
    shutil.copytree(source, results / "scores/smollm2-135m/arc_easy" / source.name)
    moe = results / "scores/relabelled-moe/arc_easy" / source.name
    shutil.copytree(source, moe)
    meta = json.loads((moe / "meta.json").read_text())
    meta["model"] |= {"name": "relabelled-moe", "family": "mixtral"}
    (moe / "meta.json").write_text(json.dumps(meta))
    curve = pd.DataFrame({"removed": [0, 1, 2], "last_removed": [None, "block.3", "block.9"]})
    curves = {
        "ascending": curve.assign(score=[0.4, 0.4, 0.38]),
        "random": curve.assign(score=[0.4, 0.3, 0.2]),
    }
    save_removal_curves(ScoreStore.open(moe), curves, "window", "score")
    out = _paper_figures(results, tmp_path, resamples=50, monkeypatch=monkeypatch)
    _png_and_pdf(out, f"removal-relabelled-moe-arc_easy-{source.name}-window-score")
    table = pd.read_csv(out / "dense-vs-moe.csv")
    assert sorted(table["moe"]) == [False, True]
    assert table["max_drop"].nunique() == 1  # the same scores under two labels


@pytest.mark.slow
def test_one_family_at_two_sizes(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Section 14 pairs two depths of one family. The committed family pair (Qwen2.5-Coder 0.5B and
    1.5B) may not have results yet, so Qwen 0.5B's store is relabelled into SmolLM2's family: 24 blocks
    beside 30, each with its window estimate. This checks the pairing and the depth arithmetic, not a
    finding."""
    results = tmp_path / "results"
    config = "arc_easy/sublayer-bfloat16-limit200"
    for model in ("smollm2-135m", "qwen2.5-coder-0.5b"):
        shutil.copytree(RESULTS / "scores" / model / config, results / "scores" / model / config)
    meta_file = results / "scores/qwen2.5-coder-0.5b" / config / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["model"]["family"] = "llama"
    meta_file.write_text(json.dumps(meta))
    out = _paper_figures(results, tmp_path, resamples=50, monkeypatch=monkeypatch)
    _png_and_pdf(out, "scale-llama-arc_easy-sublayer-bfloat16-limit200")
    table = pd.read_csv(out / "scale-depth-correlation.csv").set_index("kind")
    assert set(table["small"]) == {"qwen2.5-coder-0.5b"} and set(table["large"]) == {"smollm2-135m"}
    values = {
        model: np.array(json.loads((results / "scores" / model / config / "estimates"
                                    / "window-score-bNone-sNone-all.json").read_text())["values"])
        for model in ("smollm2-135m", "qwen2.5-coder-0.5b")
    }  # fmt: skip
    for offset, kind in enumerate(("attn", "mlp")):  # players alternate attn.b, mlp.b
        small, large = values["qwen2.5-coder-0.5b"][offset::2], values["smollm2-135m"][offset::2]
        interpolated = np.interp((np.arange(30) + 0.5) / 30, (np.arange(24) + 0.5) / 24, small)
        assert table.loc[kind, "spearman"] == pytest.approx(spearmanr(interpolated, large).statistic)
        assert table.loc[kind, "players_small"] == 24 and table.loc[kind, "players_large"] == 30
    rows = pd.read_csv(out / "scale-cornerstones.csv").set_index("model")
    assert list(rows.index) == ["qwen2.5-coder-0.5b", "smollm2-135m"]
    assert not rows.loc["qwen2.5-coder-0.5b", "above_chance"]  # 200 documents: no cornerstones claimed
    assert pd.isna(rows.loc["qwen2.5-coder-0.5b", "cornerstones"])
    assert {"mlp.0 (0.02)", "attn.1 (0.05)"} <= set(rows.loc["smollm2-135m", "cornerstones"].split(", "))


@pytest.mark.slow
def test_layer_importance_notebook_runs_the_cell_that_lsi_run_runs(tmp_path: Path, capsys) -> None:
    """Notebook 01 and `lsi run` call one function: the same configuration gives the same estimate,
    and the second run finds every coalition in the store (no model loaded)."""
    from lsi.cli import main

    results = tmp_path / "results"
    setting = {"task": "arc_easy", "limit": 4, "granularity": "block", "dtype": "float32"}
    setting |= {"max_removed": 1, "bootstrap": 20}
    papermill.execute_notebook(
        str(ROOT / "notebooks/01_layer_importance.ipynb"),
        str(tmp_path / "01.ipynb"),
        parameters=setting | {"results_dir": str(results)},
        **KERNEL,
    )
    saved = json.loads(next(results.rglob("estimates/window-score-*.json")).read_text())
    argv = [f"--{key.replace('_', '-')}={value}" for key, value in setting.items()]
    assert main(["run", *argv, "--results", str(results), "--json"]) == 0
    cell = json.loads(capsys.readouterr().out)
    assert cell["model_loaded"] is False
    assert cell["estimate"]["values"] == saved["values"] and cell["estimate"]["evaluations"] == 1 + 30
    assert cell["config"]["granularity"] == "block" and cell["store"].startswith(str(results))
    assert {"full", "chance", "above_chance", "ablation", "cornerstones", "files"} <= set(cell)
