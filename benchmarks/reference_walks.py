"""Reference Shapley values of a real layer game from antithetic permutation walks, and how converged.

Reads the walks' coalitions from a score store (no model: scored beforehand, e.g. on a lent GPU with
`export-job --estimator permutation` / `lsi.remote` / `import-scores`), pools the walk pairs of every
seed given (independent pairs), and reports the issue's criterion: each of the top ten values has a
standard error (over walk pairs) below a fifth of the gap to its neighbours in rank.

    python benchmarks/reference_walks.py STORE --value margin --walks 4800:0 2440:1 [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from lsi.estimators import estimate
from lsi.layer_game import LayerGame
from lsi.provenance import now, versions
from lsi.store import ScoreStore

TOP = 10


def pooled(runs: list[tuple[np.ndarray, np.ndarray, int]]) -> tuple[np.ndarray, np.ndarray, int]:
    """Mean and standard error over the walk pairs of several runs, from each run's mean, standard
    error and pair count (the pairs are independent draws of one distribution)."""
    pairs = sum(p for _, _, p in runs)
    mean = sum(m * p for m, _, p in runs) / pairs
    within = sum((p - 1) * (se**2 * p) for _, se, p in runs)
    between = sum(p * (m - mean) ** 2 for m, _, p in runs)
    variance = (within + between) / (pairs - 1)
    return mean, np.sqrt(variance / pairs), pairs


def criterion(values: np.ndarray, stderr: np.ndarray) -> list[bool]:
    """For each of the top ten: standard error below a fifth of the gap to its neighbour(s) in rank."""
    order = np.argsort(-values)
    met = []
    for rank in range(min(TOP, len(values))):
        gaps = [
            abs(values[order[rank]] - values[order[r]]) for r in (rank - 1, rank + 1) if 0 <= r < len(values)
        ]
        met.append(bool(stderr[order[rank]] < min(gaps) / 5))
    return met


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--value", default="margin", choices=["margin", "score"])
    parser.add_argument("--walks", nargs="+", required=True, help="BUDGET:SEED of each permutation run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = ScoreStore.open(args.store)
    game = LayerGame(store, args.value)
    runs, budgets = [], []
    for spec in args.walks:
        budget, seed = (int(x) for x in spec.split(":"))
        result = estimate(game, "permutation", budget, seed, bootstrap=0)
        runs.append((np.asarray(result.values), np.asarray(result.stderr), int(result.info["pairs"])))
        budgets.append({"budget": budget, "seed": seed, "pairs": int(result.info["pairs"])})
    values, stderr, pairs = pooled(runs)
    met = criterion(values, stderr)
    order = np.argsort(-values)[:TOP]
    print(f"{args.store} ({args.value}): {pairs} walk pairs; top-{TOP} criterion met: {sum(met)}/{len(met)}")
    for rank, i in enumerate(order):
        flag = "ok" if met[rank] else ""
        print(f"  {rank + 1:2d} {game.names[i]:9s} {values[i]: .4f} +- {stderr[i]:.4f} {flag}")
    if args.out:
        record = {
            "store": str(args.store),
            "model": store.meta["model"],
            "weights_sha256": store.meta["weights_sha256"],
            "task": store.meta["task"],
            "split": store.meta["split"],
            "limit": store.meta["limit"],
            "dtype": store.meta["dtype"],
            "players": game.names,
            "value": args.value,
            "estimator": "antithetic permutation walks, pairs pooled over seeds",
            "runs": budgets,
            "walk_pairs": pairs,
            "values": values.tolist(),
            "stderr": stderr.tolist(),
            "criterion": f"each of the top {TOP}: standard error below a fifth of the gap to its neighbours",
            "criterion_met": met,
            "versions": versions(),
            "created": now(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
