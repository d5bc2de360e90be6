"""Profiles of two model sizes along relative depth: placement, interpolation and the permutation test
respond to the shape they are given."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from scipy.stats import spearmanr

from lsi import figures
from lsi.analysis import ablation_table, full_model_table
from lsi.results import store_index
from lsi.scale import compare_sizes, depth_correlation, depth_profile, family_pairs, relative_depths
from lsi.store import ScoreStore

ROOT = Path(__file__).resolve().parent.parent


def _sublayers(blocks: int) -> list[str]:
    return [f"{kind}.{b}" for b in range(blocks) for kind in ("attn", "mlp")]


def _profile(blocks: int, shape, noise: float = 0.0, seed: int = 0):
    names = _sublayers(blocks)
    depth = relative_depths(names)["depth"].to_numpy()
    kind = np.array([n.startswith("mlp") for n in names], dtype=float)
    values = shape(depth) * (1 + kind) + noise * np.random.default_rng(seed).normal(size=len(names))
    return depth_profile(names, values)


def test_players_sit_at_the_middle_of_their_block_and_shares_average_one():
    frame = depth_profile(_sublayers(28), np.linspace(1, 2, 56))
    assert frame.loc[0, "depth"] == pytest.approx(0.5 / 28) and frame.iloc[-1]["depth"] == pytest.approx(
        27.5 / 28
    )
    assert list(frame["kind"][:2]) == ["attn", "mlp"] and frame["share"].mean() == pytest.approx(1.0)


def test_the_same_shape_at_two_depths_correlates_and_an_unrelated_one_does_not():
    def decay(d):
        return np.exp(-4 * d)

    small, large = _profile(24, decay), _profile(28, decay)
    same = depth_correlation(small, large, permutations=2000)
    assert list(same["kind"]) == ["attn", "mlp"] and list(same["players_large"]) == [28, 28]
    assert (same["spearman"] > 0.99).all() and (same["p_value"] < 0.001).all()
    flipped = depth_correlation(small, _profile(28, lambda d: decay(1 - d)), permutations=2000)
    assert (flipped["spearman"] < -0.99).all() and (flipped["p_value"] < 0.001).all()  # two-sided
    unrelated = depth_correlation(small, _profile(28, lambda d: 0 * d + 1, noise=1.0), permutations=2000)
    assert (unrelated["spearman"].abs() < 0.5).all() and (unrelated["p_value"] > 0.01).all()


def test_the_permutation_p_value_is_what_a_loop_of_spearmanr_gives_with_ties():
    small = _profile(24, np.sin, noise=0.5)
    large = _profile(28, np.cos, noise=0.5).assign(value=lambda f: f["value"].round(1))  # tied values
    table = depth_correlation(small, large, permutations=300, seed=3)
    rng = np.random.default_rng(3)
    for row in table.itertuples():
        s, target = (p[p["kind"] == row.kind].sort_values("depth") for p in (small, large))
        x = np.interp(target["depth"], s["depth"], s["value"])
        observed = spearmanr(x, target["value"]).statistic
        shuffled = [spearmanr(x, rng.permutation(target["value"])).statistic for _ in range(300)]
        hits = sum(abs(r) >= abs(observed) - 1e-12 for r in shuffled)
        assert row.spearman == observed and row.p_value == (hits + 1) / 301


def test_one_model_against_itself_is_a_perfect_match():
    profile = _profile(24, np.sin, noise=0.3)
    table = depth_correlation(profile, profile, permutations=200)
    assert table["spearman"].tolist() == pytest.approx([1.0, 1.0])


def test_the_figure_draws_a_panel_per_kind_and_rings_the_cornerstones():
    profiles = {"0.5B": _profile(24, np.cos), "1.5B": _profile(28, np.cos)}
    fig = figures.depth_profiles(profiles, "scale", {"1.5B": ["mlp.0", "attn.1"]})
    assert [ax.get_title() for ax in fig.axes] == ["attn", "mlp"]
    rings = [line for line in fig.axes[1].lines if line.get_linestyle() == "None" and len(line.get_xdata())]
    assert [len(r.get_xdata()) for r in rings] == [1]  # mlp.0 on the FFN panel


def test_family_pairs_match_task_and_configuration_and_put_the_shallower_first():
    def store(model, family, players, task="arc_easy", limit=200):
        config = {"granularity": "sublayer", "dtype": "bfloat16", "limit": limit}
        return {"model": model, "family": family, "n_players": players, "task": task} | config

    stores = pd.DataFrame(
        [
            store("qwen-1.5b", "qwen2", 56),
            store("qwen-0.5b", "qwen2", 48),
            store("qwen-0.5b", "qwen2", 48, limit=1000),  # no 1.5B twin at 1000 documents
            store("qwen-0.5b", "qwen2", 48, task="piqa"),
            store("smollm2", "llama", 60),
        ]
    )
    pairs = family_pairs(stores)
    assert [(a["model"], b["model"], a["task"]) for a, b in pairs] == [("qwen-0.5b", "qwen-1.5b", "arc_easy")]


def test_a_pair_is_assembled_from_its_estimates_and_report_rows():
    def store(model, players):
        config = {"granularity": "sublayer", "dtype": "bfloat16", "limit": 200, "title": model.upper()}
        return pd.Series({"model": model, "family": "qwen2", "n_players": players, "task": "piqa"} | config)

    pair = (store("qwen-0.5b", 48), store("qwen-1.5b", 56))
    small, large = _profile(24, np.cos), _profile(28, np.cos)
    estimates = [{"players": p["player"].tolist(), "values": p["value"].tolist()} for p in (small, large)]
    concentration = {
        "positive_mass_share_cornerstone": 0.4,
        "mean_drop_cornerstone": 0.3,
        "mean_drop_other": 0.01,
    }
    report = pd.DataFrame(
        [
            {"task": "piqa", "model": "qwen-0.5b", "cornerstones": "mlp.0", "above_chance": True},
            {"task": "piqa", "model": "qwen-1.5b", "cornerstones": "", "above_chance": False},
        ]
    ).assign(granularity="sublayer", dtype="bfloat16", limit=200, n_blocks=[24, 28], **concentration)
    report = report.set_index(["task", "model", "granularity", "dtype", "limit"])
    ablated = compare_sizes(pair, [estimates[0], None], report)  # the ablations alone: no profiles
    assert (ablated.profiles, ablated.correlation.empty) == ({}, True)
    sizes = compare_sizes(pair, estimates, report)
    assert ablated.rows == sizes.rows
    assert list(sizes.profiles) == ["qwen-0.5b", "qwen-1.5b"]
    assert sizes.cornerstones == {"qwen-0.5b": ["mlp.0"], "qwen-1.5b": []}
    assert [r["cornerstones"] for r in sizes.rows] == [f"mlp.0 ({0.5 / 24:.2f})", ""]
    assert [r["above_chance"] for r in sizes.rows] == [True, False]
    assert sizes.rows[0]["mean_drop_other"] == 0.01
    expected = depth_correlation(small, large)
    pd.testing.assert_frame_equal(sizes.correlation[expected.columns], expected)
    assert set(sizes.correlation[["small", "large", "task", "limit"]].itertuples(index=False)) == {
        ("qwen-0.5b", "qwen-1.5b", "piqa", 200)
    }
    assert sizes.stem == "scale-qwen2-piqa-sublayer-bfloat16-limit200"
    assert sizes.title == "QWEN-0.5B and QWEN-1.5B | piqa | sublayer | bfloat16 | limit200"


def test_full_model_table_agrees_with_the_ablation_tables():
    """Section 14 counts a task as clearly above chance from its full model alone; on every Qwen2.5-Coder
    store with an ablation that equals what the ablation table says, and a store holding only the full
    model (as the 1.5B's tasks did before their cells ran) counts too."""
    stores = store_index(ROOT / "results")
    stores = stores[stores["family"] == "qwen2"]
    table = full_model_table(stores)
    assert list(table.index) == list(stores.index)  # every one of them holds its full model
    for s in stores[stores["has_ablation"]].itertuples():
        attrs = ablation_table(ScoreStore.open(s.path), resamples=10).attrs
        assert table.loc[s.Index, "full"] == attrs["full"]
        assert table.loc[s.Index, "above_chance"] == attrs["above_chance"]
