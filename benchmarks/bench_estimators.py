"""Shapley estimators against exact values on a real, fully enumerated layer game.

The game is read from a score store holding all 2^n coalitions of a restricted player set (enumerate
it first, e.g. `lsi shapley --players ... --estimator exact`). Every estimator then runs on a table of
those values, so hundreds of runs cost no model time. Prints a table and writes a CSV and a Markdown
summary, to a temporary folder unless `--out` names one (`--out results/estimator_benchmark`
regenerates the committed ones, from which notebook 02 draws the figures: one writer per figure).

    python benchmarks/bench_estimators.py --store results/scores/.../sublayer-bfloat16-limit40 \
        --players attn.0,mlp.0,...  --name early --value margin --seeds 50

Budgets count distinct coalitions; the tables also give the layer-forwards they executed (a coalition
keeping |S| of the game's players runs |S|), median over seeds. Cornerstones are judged on the task's
metric by the package's rule (`lsi.analysis.cornerstones`, above-chance check included), whatever value
the estimators see; "recovered" means an estimate's top |C| players are exactly the cornerstone set C
(undefined where there is none).
"""

from __future__ import annotations

import argparse
import tempfile
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pandas as pd

from lsi.analysis import estimator_summary, game_cornerstones
from lsi.estimators import ESTIMATORS, estimate
from lsi.estimators.agreement import agreement
from lsi.game import TableGame, all_coalitions, shapley_from_table
from lsi.layer_game import LayerGame
from lsi.provenance import versions
from lsi.store import ScoreStore

SAMPLERS = (
    "permutation",
    "truncated",
    "kernelshap",
    "unbiased_kernelshap",
    "svarm",
    "stratified",
    "kadd",
    "leverage",
    "polyshap",
    "regression_msr",
    "proxyshap",
    "layer",
)


def budgets(n: int) -> list[int]:
    """n to 20n, the window estimator's fixed cost (for a same-cost comparison), and 2^n."""
    window = ESTIMATORS["window"].min_budget(n, {})
    multiples = (1, 2, 3, 5, 8, 12, 16, 20)
    return sorted({min(b, 2**n) for b in (*(k * n for k in multiples), window, 2**n)})


def one_estimate(
    values: np.ndarray, names: list[str], chance: float | None, name: str, budget: int | None, seed: int
):
    """An estimate on a fresh table, and the layer-forwards its coalitions cost: a coalition keeping |S|
    of the game's players runs |S| of them (the players outside the game, always kept, are left out).
    The efficiency report's v(N) and v(empty), asked for after the estimator, are not counted."""
    game = TableGame(values, names=names, chance=chance)
    result = estimate(game, name, budget, seed=seed, bootstrap=0)
    forwards = sum(key.count("1") for key in game.evaluated[: result.evaluations])
    return result, forwards


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
                result, forwards = one_estimate(values, names, chance, name, budget, seed)
                rows.append(
                    {
                        "estimator": name,
                        "budget": budget,
                        "seed": seed,
                        "evaluations": result.evaluations,
                        "layer_forwards": forwards,
                    }
                    | agreement(result.values, truth, corner)
                )
    # The deterministic ones, once: the paper's window, its efficient calibration, and exact as the
    # reference (does the exact ranking itself put the ablation cornerstones on top?).
    for name in ("window", "window_efficient", "exact"):
        fixed, forwards = one_estimate(values, names, chance, name, None, 0)
        rows.append(
            {
                "estimator": name,
                "budget": fixed.evaluations,
                "seed": 0,
                "evaluations": fixed.evaluations,
                "layer_forwards": forwards,
            }
            | agreement(fixed.values, truth, corner)
        )
    return pd.DataFrame(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, required=True)
    parser.add_argument("--players", required=True, help="the enumerated players, comma-separated, in order")
    parser.add_argument("--value", default="margin", choices=("score", "margin"))
    parser.add_argument("--name", required=True, help="short name of the game, used in file names")
    parser.add_argument("--seeds", type=int, default=20)
    parser.add_argument(
        "--out",
        type=Path,
        default=None,
        help="tables folder (default: a new temporary folder); "
        "results/estimator_benchmark regenerates the committed tables",
    )
    args = parser.parse_args()
    args.out = args.out or Path(tempfile.mkdtemp(prefix="lsi-bench-estimators-"))

    store = ScoreStore.open(args.store)
    names = args.players.split(",")
    games = {}
    for kind in dict.fromkeys([args.value, "score"]):
        parent = LayerGame(store, kind)
        games[kind] = parent.restricted([parent.names.index(p) for p in names])
    game = games[args.value]
    values = game.value(all_coalitions(len(names)))  # every coalition must be in the store
    corner = game_cornerstones(games["score"])
    frame = run(values, names, game.chance, corner, args.seeds)

    args.out.mkdir(parents=True, exist_ok=True)
    stem = f"{args.name}-{args.value}"
    frame.to_csv(args.out / f"{stem}.csv", index=False, float_format="%.6g")  # 6 digits: the repository size
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
    print(header)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    print(f"exact values: {dict(zip(names, np.round(shapley_from_table(values), 4), strict=True))}")
    print(f"cornerstones (metric, default rule): {[names[i] for i in sorted(corner)] or 'none'}")
    print(f"written: {args.out / stem}.csv, .md (figures: notebook 02, from the committed tables)")


if __name__ == "__main__":
    main()
