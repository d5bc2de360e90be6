"""Reference Shapley values of a real layer game from antithetic permutation walks, and how converged.

Reads the walks' coalitions from a score store (no model: scored beforehand, e.g. with `lsi shapley
--estimator permutation --seed S --budget B`, or on a lent GPU with `export-job` / `lsi.remote` /
`import-scores`), pools the walk pairs of every seed given (independent pairs), and reports what
`lsi.references` measures: the issue's criterion (each of the top ten values has a standard error below
a fifth of the gap to its neighbour in rank), the walk pairs each would need for it, and the split-half
reliability of the whole ranking.

    python benchmarks/reference_walks.py STORE --value margin --walks 4800:0 2440:1 4600:2 [--out FILE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from lsi.layer_game import LayerGame
from lsi.provenance import now, versions
from lsi.references import TOP, reference
from lsi.store import ScoreStore


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("store", type=Path)
    parser.add_argument("--value", default="margin", choices=["margin", "score"])
    parser.add_argument("--walks", nargs="+", required=True, help="BUDGET:SEED of each permutation run")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    store = ScoreStore.open(args.store)
    game = LayerGame(store, args.value)
    runs = [tuple(int(x) for x in spec.split(":")) for spec in args.walks]
    ref = reference(game, runs)
    met, needed, top = ref.criterion_met(), ref.pairs_needed(), ref.top()
    split, reliability = ref.split_half()
    print(f"{args.store} ({args.value}): {ref.pairs} walk pairs; top-{TOP} criterion met: {sum(met)}/{TOP}")
    print(f"split-half Spearman {split:.3f}; for all {ref.pairs} pairs (Spearman-Brown): {reliability:.3f}")
    for rank, i in enumerate(top):
        flag = "ok" if met[rank] else f"needs ~{needed[rank]:.3g} pairs"
        print(f"  {rank + 1:2d} {game.names[i]:9s} {ref.values[i]: .4f} +- {ref.stderr[i]:.4f}  {flag}")
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
            "runs": [{"budget": b, "seed": s} for b, s in runs],
            "walk_pairs": ref.pairs,
            "values": ref.values.tolist(),
            "stderr": ref.stderr.tolist(),
            "criterion": f"each of the top {TOP}: standard error below a fifth of the gap to its neighbours",
            "criterion_met": met,
            "pairs_needed": needed.tolist(),
            "split_half_spearman": split,
            "reliability_spearman_brown": reliability,
            "versions": versions(),
            "created": now(),
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
