"""How the scorer cuts slow coalitions into units: one per unit against `unit_cost_cap`'s, side by side.

A unit is what a stopped run may lose, so the scorer caps it at UNIT_S seconds. Where one coalition
alone takes longer (a 1.5B model on a CPU: about 270 s in float32 on 200 ARC-Easy documents), that cap
leaves one coalition per unit and the engine's prefix tree shares nothing; `unit_cost_cap` lets a unit
hold UNIT_COALITIONS coalitions' work instead. Both plans score the same coalitions (the full model and
every single-player removal) on the same documents in one process, alternately, `--rounds` times,
planned at the rate that makes the full model take `--as-if-seconds`. Prints seconds, units and planned
cost per plan, and how far apart their log-likelihoods are (stacking differs: float32 rounding only).

    python benchmarks/bench_units.py [--model smollm2-135m] [--task arc_easy] [--limit 30]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from lsi.jobs import plan_units
from lsi.models import load_model
from lsi.pipeline import ablation_coalitions
from lsi.scoring import UNIT_S, Scorer, unit_cost_cap


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="arc_easy")
    parser.add_argument("--limit", type=int, default=30)
    parser.add_argument("--granularity", default="sublayer")
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--as-if-seconds", type=float, default=300.0, help="the full model's time alone")
    parser.add_argument("--rounds", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(2)
    lm = load_model(args.model, dtype=args.dtype)
    scorer = Scorer(lm, args.task, args.limit, args.granularity, Path(tempfile.mkdtemp(prefix="lsi-bench-")))
    coalitions = ablation_coalitions(len(scorer.players))
    costs = scorer.batch_costs
    rate = args.as_if_seconds / ((len(scorer.players) + 1) * sum(costs))
    plans = {
        "one per unit (UNIT_S)": plan_units(coalitions, costs, 1, scorer.chunk_size, UNIT_S / rate),
        "unit_cost_cap": plan_units(
            coalitions, costs, 1, scorer.chunk_size, unit_cost_cap(coalitions, costs, rate)
        ),
    }
    worker, job = scorer.backend.worker, scorer.job
    seconds: dict[str, list[float]] = {name: [] for name in plans}
    loglik: dict[str, np.ndarray] = {}
    for _ in range(args.rounds):
        for name, units in plans.items():
            start = time.perf_counter()
            results = [worker.score(job, unit) for unit in units]
            seconds[name].append(time.perf_counter() - start)
            rows = {c: r.loglik[i] for r in results for i, c in enumerate(r.unit.coalitions)}
            loglik[name] = np.stack([rows[c] for c in coalitions])
    print(
        f"model {args.model} | {args.task} | limit {args.limit} | {args.granularity} | {args.dtype} | "
        f"{len(coalitions)} coalitions (ablation) | planned as if the full model took "
        f"{args.as_if_seconds:g} s | "
        f"{args.rounds} round(s), alternating | torch {torch.__version__}"
    )
    base = np.median(seconds["one per unit (UNIT_S)"])
    print(f"{'plan':24s} {'units':>6s} {'planned cost':>13s} {'seconds':>8s} {'speed-up':>9s}")
    for name, units in plans.items():
        wall = np.median(seconds[name])
        cost = sum(u.cost for u in units)
        print(f"{name:24s} {len(units):6d} {cost:13.3g} {wall:8.1f} {base / wall:8.2f}x")
    apart = np.abs(loglik["unit_cost_cap"] - loglik["one per unit (UNIT_S)"]).max()
    print(f"largest log-likelihood difference between the plans: {apart:.2e}")


if __name__ == "__main__":
    main()
