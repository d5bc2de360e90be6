"""Shapley estimators against exact values on a real, fully enumerated layer game.

The game is read from a score store holding all 2^n coalitions of a restricted player set (enumerate
it first, e.g. `lsi shapley --players ... --estimator exact`). Every estimator then runs on a table of
those values, so hundreds of runs cost no model time. Prints a table and writes a CSV, a Markdown
summary and a figure of error against budget.

    python benchmarks/bench_estimators.py --store results/scores/.../sublayer-bfloat16-limit40 \
        --players attn.0,mlp.0,...  --name early --value margin --seeds 50

Cornerstones are judged on the task's metric by the package's default rule, whatever value the
estimators see; "recovered" means an estimate's top |C| players are exactly the cornerstone set C.
"""

from __future__ import annotations

import argparse
from datetime import datetime, timezone
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pandas as pd
from scipy import stats

from lsi import figures, style
from lsi.analysis import CornerstoneRule, estimator_summary, paired_drop_pvalue
from lsi.estimators import ESTIMATORS, estimate
from lsi.game import Game, TableGame, all_coalitions, shapley_from_table
from lsi.layer_game import LayerGame
from lsi.scoring import versions
from lsi.store import ScoreStore

SAMPLERS = ("permutation", "truncated", "kernelshap", "unbiased_kernelshap", "svarm", "stratified", "kadd")


def top_k_precision(estimated: np.ndarray, truth: np.ndarray, k: int = 3) -> float:
    """Share of the estimate's top k that belong to the true top k, ties at the k-th true value included."""
    threshold = np.sort(truth)[::-1][k - 1]
    true_top = set(np.flatnonzero(truth >= threshold - 1e-12))
    return len(set(np.argsort(-estimated, kind="stable")[:k]) & true_top) / k


def cornerstone_set(metric_game: Game) -> set[int]:
    """The game's cornerstones by the package's default rule, judged on the task's metric (whatever
    value the estimators see): a single removal leaves less than `max_gap_left` of the (full - chance)
    gap and the paired per-document drop is significant."""
    rule = CornerstoneRule()
    n = metric_game.n_players
    full = np.ones((1, n), dtype=bool)
    singles = ~np.eye(n, dtype=bool)
    full_docs = metric_game.doc_values(full)[0]
    single_docs = metric_game.doc_values(singles)
    gap = full_docs.mean() - metric_game.chance
    return {
        i
        for i in range(n)
        if gap > 0
        and (single_docs[i].mean() - metric_game.chance) / gap < rule.max_gap_left
        and paired_drop_pvalue(full_docs, single_docs[i]) < rule.alpha
    }


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
    """Doubling budgets from n to 2^n, plus the window estimator's fixed cost for a same-cost comparison."""
    window = ESTIMATORS["window"].min_budget(n, {})
    return sorted({min(b, 2**n) for b in (n, 2 * n, window, 4 * n, 8 * n, 16 * n, 32 * n, 64 * n, 2**n)})


def run(
    values: np.ndarray, names: list[str], chance: float | None, corner: set[int], seeds: int
) -> pd.DataFrame:
    n = len(names)
    truth = shapley_from_table(values)
    rows = []
    # `truncated` stops at the chance level, which only the metric (value "score") has.
    for name in [s for s in SAMPLERS if s != "truncated" or chance is not None]:
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
    # The deterministic ones, once: the paper's window, and exact as the reference (does the exact
    # ranking itself put the ablation cornerstones on top?).
    for name in ("window", "exact"):
        fixed = estimate(TableGame(values, names=names, chance=chance), name, bootstrap=0)
        rows.append(
            {"estimator": name, "budget": fixed.evaluations, "seed": 0, "evaluations": fixed.evaluations}
            | metrics(fixed.values, truth, corner)
        )
    return pd.DataFrame(rows)


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
    names = args.players.split(",")
    games = {}
    for kind in dict.fromkeys([args.value, "score"]):
        parent = LayerGame(store, kind)
        games[kind] = parent.restricted([parent.names.index(p) for p in names])
    game = games[args.value]
    values = game.value(all_coalitions(len(names)))  # every coalition must be in the store
    corner = cornerstone_set(games["score"])
    frame = run(values, names, game.chance, corner, args.seeds)

    args.out.mkdir(parents=True, exist_ok=True)
    args.figures.mkdir(parents=True, exist_ok=True)
    stem = f"{args.name}-{args.value}"
    frame.to_csv(args.out / f"{stem}.csv", index=False)
    summary = estimator_summary(frame)
    meta = store.meta
    header = (
        f"{meta['model']['title']} | {meta['task']} ({meta['split']}, {meta['n_docs']} docs) | "
        f"{meta['dtype']} | value {args.value}\n{len(names)} players ({names[0]} .. {names[-1]}, others "
        f"always kept) | medians and quartiles over {args.seeds} seeds"
    )
    provenance = (
        f"store {args.store} (weights sha256 {meta['weights_sha256'][:16]}) | made "
        f"{datetime.now(timezone.utc).isoformat(timespec='seconds')} with "
        + ", ".join(f"{name} {version}" for name, version in versions().items())
    )
    table = summary.to_markdown(index=False, floatfmt=".4g")
    (args.out / f"{stem}.md").write_text(f"{header}\n{provenance}\n\n{table}\n")
    style.save(figures.estimator_error(frame, header), args.figures, f"estimators-{stem}")
    print(header)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"exact values: {dict(zip(names, np.round(shapley_from_table(values), 4), strict=True))}")
    print(f"cornerstones (metric, default rule): {[names[i] for i in sorted(corner)] or 'none'}")


if __name__ == "__main__":
    main()
