"""Shapley estimators against exact values on a real, fully enumerated layer game.

The game is read from a score store holding all 2^n coalitions of a restricted player set (enumerate
it first, e.g. `lsi shapley --players ... --estimator exact`). Every estimator then runs on a table of
those values, so hundreds of runs cost no model time. Prints a table and writes a CSV, a Markdown
summary and a figure of error against budget.

    python benchmarks/bench_estimators.py --store results/scores/.../sublayer-bfloat16-limit50 \
        --players attn.0,mlp.0,...  --name early --value margin --seeds 20
"""

from __future__ import annotations

import argparse
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from scipy import stats

from lsi.estimators import ESTIMATORS, estimate
from lsi.game import TableGame, all_coalitions, shapley_from_table
from lsi.layer_game import LayerGame
from lsi.store import ScoreStore

SAMPLERS = ("permutation", "truncated", "kernelshap", "unbiased_kernelshap", "svarm", "stratified", "kadd")


def top_k_precision(estimated: np.ndarray, truth: np.ndarray, k: int = 3) -> float:
    """Share of the estimate's top k that belong to the true top k, ties at the k-th true value included."""
    threshold = np.sort(truth)[::-1][k - 1]
    true_top = set(np.flatnonzero(truth >= threshold - 1e-12))
    return len(set(np.argsort(-estimated, kind="stable")[:k]) & true_top) / k


def cornerstone_set(values: np.ndarray, chance: float | None, max_gap_left: float = 0.25) -> set[int]:
    """Players whose single removal leaves less than `max_gap_left` of the (full - chance) gap."""
    n = int(np.log2(values.size))
    full = values[-1]
    floor = chance if chance is not None else values[0]
    gap = full - floor
    singles = np.array([values[(2**n - 1) ^ (1 << i)] for i in range(n)])
    return set(np.flatnonzero((singles - floor) / gap < max_gap_left)) if gap > 0 else set()


def metrics(estimated: np.ndarray, truth: np.ndarray, corner: set[int]) -> dict:
    recovered = set(np.argsort(-estimated, kind="stable")[: len(corner)]) == corner if corner else None
    return {
        "mse": float(np.mean((estimated - truth) ** 2)),
        "spearman": float(stats.spearmanr(estimated, truth).statistic),
        "kendall": float(stats.kendalltau(estimated, truth).statistic),
        "top3_precision": top_k_precision(estimated, truth),
        "cornerstones_recovered": recovered,
    }


def budgets(n: int) -> list[int]:
    return sorted({min(b, 2**n) for b in (n, 2 * n, 4 * n, 8 * n, 16 * n, 32 * n, 64 * n, 2**n)})


def run(values: np.ndarray, names: list[str], chance: float | None, seeds: int) -> pd.DataFrame:
    n = len(names)
    truth = shapley_from_table(values)
    corner = cornerstone_set(values, chance)
    rows = []
    for name in SAMPLERS:
        for budget in budgets(n):
            if budget < ESTIMATORS[name].min_budget(n, {}):
                continue
            for seed in range(seeds):
                game = TableGame(values, names=names, chance=chance)
                result = estimate(game, name, budget, seed=seed, bootstrap=0)
                rows.append(
                    {"estimator": name, "budget": budget, "seed": seed, "evaluations": result.evaluations}
                    | metrics(result.values, truth, corner)
                )
    window = estimate(TableGame(values, names=names, chance=chance), "window", bootstrap=0)
    rows.append(
        {"estimator": "window", "budget": window.evaluations, "seed": 0, "evaluations": window.evaluations}
        | metrics(window.values, truth, corner)
    )
    return pd.DataFrame(rows)


def plot(frame: pd.DataFrame, title: str, path: Path) -> None:
    fig, axes = plt.subplots(1, 2, figsize=(9, 3.4), constrained_layout=True)
    for ax, metric, label in [
        (axes[0], "mse", "MSE vs exact (log)"),
        (axes[1], "spearman", "Spearman vs exact"),
    ]:
        for name, group in frame[frame.estimator != "window"].groupby("estimator"):
            q = group.groupby("evaluations")[metric].quantile([0.25, 0.5, 0.75]).unstack()
            ax.plot(q.index, q[0.5], marker=".", label=name)
            ax.fill_between(q.index, q[0.25], q[0.75], alpha=0.15)
        window = frame[frame.estimator == "window"].iloc[0]
        ax.plot(window.evaluations, window[metric], "k*", markersize=12, label="window (paper)")
        ax.set_xscale("log")
        if metric == "mse":
            ax.set_yscale("log")
        ax.set_xlabel("distinct coalitions evaluated")
        ax.set_ylabel(label)
    axes[1].legend(fontsize=7, loc="lower right")
    fig.suptitle(title, fontsize=9)
    for suffix in (".png", ".pdf"):
        fig.savefig(path.with_suffix(suffix), dpi=150)
    plt.close(fig)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--players", required=True, help="the enumerated players, comma-separated, in order")
    parser.add_argument("--value", default="margin", choices=("score", "margin"))
    parser.add_argument("--name", required=True, help="short name of the game, used in file names")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument("--out", type=Path, default=Path("results/estimator_benchmark"))
    parser.add_argument("--figures", type=Path, default=Path("figures"))
    args = parser.parse_args()

    store = ScoreStore.open(args.store)
    parent = LayerGame(store, args.value)
    names = args.players.split(",")
    game = parent.restricted([parent.names.index(p) for p in names])
    values = game.value(all_coalitions(len(names)))  # every coalition must be in the store
    frame = run(values, names, game.chance, args.seeds)

    args.out.mkdir(parents=True, exist_ok=True)
    args.figures.mkdir(parents=True, exist_ok=True)
    stem = f"{args.name}-{args.value}"
    frame.to_csv(args.out / f"{stem}.csv", index=False)
    summary = frame.groupby(["estimator", "evaluations"])[
        ["mse", "spearman", "kendall", "top3_precision"]
    ].median()
    summary["cornerstones_recovered"] = frame.groupby(["estimator", "evaluations"])[
        "cornerstones_recovered"
    ].mean()
    meta = store.meta
    header = (
        f"{meta['model']['title']} | {meta['task']} ({meta['split']}, {meta['n_docs']} docs) | "
        f"{meta['dtype']} | value {args.value} | players {', '.join(names)} | medians over {args.seeds} seeds"
    )
    (args.out / f"{stem}.md").write_text(f"{header}\n\n{summary.to_markdown(floatfmt='.4g')}\n")
    plot(frame, header, args.figures / f"estimators-{stem}")
    print(header)
    print(summary.to_string(float_format=lambda v: f"{v:.4g}"))
    print(f"exact values: {dict(zip(names, np.round(shapley_from_table(values), 4), strict=True))}")


if __name__ == "__main__":
    main()
