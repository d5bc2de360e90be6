"""Ray scale-out against the local backend on the same coalitions, Ray's overhead per work unit, and a
scaling model checked on the measured 2-worker run before it predicts larger clusters.

    python benchmarks/bench_scaleout.py --json scaleout.json

1. local backend, --threads 2 (one process, both cores);
2. Ray, 2 workers x 1 thread (a local instance), the same coalitions in a fresh store;
3. calibration: the local backend with 1 thread on the coalitions of a few of those units gives
   seconds per unit of cost (the planner's estimate: player runs of the prefix tree x padded tokens);
4. the model: a unit lasts rate x cost + the per-call overhead, and the driver hands units out costliest
   first to whichever worker is free (list scheduling), so the wall time is that schedule's makespan.
   It must predict run 2 within 15%; only then are its GPU figures printed, labelled as predictions.

The GPU predictions take the per-GPU throughput measured on one H100 (docs/performance.md: Llama-3-8B,
190 window coalitions x 64 documents, 0.27 s per coalition in bfloat16), scale it by active parameters,
and count the prefix sharing a work unit loses; a worker that splits a model over K GPUs runs its
blocks one after another, so it counts as one GPU of throughput (no pipelining).
Run it on a quiet machine: with two threads any other busy process distorts the ratios.
"""

from __future__ import annotations

import argparse
import heapq
import json
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from lsi.config import RunConfig
from lsi.estimators import planned_coalitions
from lsi.jobs import executed_players, plan_units
from lsi.pipeline import build_scorer
from lsi.players import single_removals

TOLERANCE = 0.15
# One H100, Llama-3-8B shape, bfloat16: 0.27 s per window coalition on 64 documents (performance.md).
H100_S_PER_COALITION_DOC_8B = 0.27 / 64
# (active parameters in billions, bfloat16 weights in GB, sub-layer players, GPUs per worker on 80 GB
# cards) of the paper's models
PAPER_MODELS = {
    "Llama-3-8B": (8.0, 16, 64, 1),
    "Mixtral-8x7B": (12.9, 94, 64, 2),  # 2 of 8 experts active
    "Llama-3-70B": (70.6, 141, 160, 2),
}
TASKS, DOCS, GPUS_PER_NODE = 6, 1000, 8
NODE_READ_GBPS = 5.0  # assumed: a node's workers load their weights concurrently from its disk (not measured)


def load_seconds(weights_gb: float, gpus_per_worker: int) -> float:
    """Every worker of a node reads the whole model at cell start (no page cache assumed)."""
    return weights_gb * (GPUS_PER_NODE // gpus_per_worker) / NODE_READ_GBPS


def makespan(durations: Sequence[float], workers: int) -> float:
    """Costliest first, each to the worker that frees first: the driver's dispatch."""
    loads = [0.0] * workers
    for d in sorted(durations, reverse=True):
        heapq.heapreplace(loads, loads[0] + d)
    return max(loads)


def _timed_scores(config: RunConfig, coalitions: list[str]) -> tuple[float, float, object]:
    start = time.perf_counter()
    scorer = build_scorer(config)
    loaded = time.perf_counter()
    scorer.scores(coalitions, progress=False)
    done = time.perf_counter()
    return loaded - start, done - loaded, scorer


def _call_overhead(scorer: object, calls: int = 50) -> float:
    """Seconds per round trip of an empty actor call (submission, scheduling, result)."""
    backend = scorer.backend
    ray = backend.ray
    start = time.perf_counter()
    for _ in range(calls):
        ray.get([a.ready.remote() for a in backend.actors])
    return (time.perf_counter() - start) / calls


def made() -> dict:
    """How the figures were made: when, where, with which packages."""
    import platform

    from lsi.provenance import now, versions

    info = Path("/proc/cpuinfo").read_text().splitlines() if Path("/proc/cpuinfo").exists() else []
    cpu = next((line.split(":", 1)[1].strip() for line in info if "model name" in line), "?")
    return {
        "date": now(),
        "machine": f"{platform.machine()} {cpu}",
        "command": " ".join(sys.argv),
        "versions": versions(),
    }


def measure(args: argparse.Namespace) -> dict:
    setting = {
        "model": args.model,
        "task": args.task,
        "limit": args.limit,
        "granularity": "block",
        "dtype": args.dtype,
    }
    rng = np.random.default_rng(0)
    n = 30
    coalitions = ["1" * n, *single_removals(n)]
    coalitions += [
        "".join(rng.choice(["0", "1"], n, p=[0.2, 0.8])) for _ in range(args.coalitions - len(coalitions))
    ]
    out: dict = {"setting": setting, "coalitions": len(coalitions), "made": made()}
    with tempfile.TemporaryDirectory() as tmp:
        base = RunConfig(**setting, dtype=args.dtype, results_dir=tmp)
        load, wall, _ = _timed_scores(base.replace(results_dir=f"{tmp}/local", threads=2), coalitions)
        out["local_2_threads"] = {"load_s": load, "wall_s": wall}
        ray_config = base.replace(results_dir=f"{tmp}/ray", backend="ray", workers=2, threads=1)
        load, wall, scorer = _timed_scores(ray_config, coalitions)
        units = plan_units(coalitions, scorer.batch_costs, 2, scorer.chunk_size)
        overhead = _call_overhead(scorer)
        scorer.close()
        out["ray_2x1"] = {"load_s": load, "wall_s": wall, "units": len(units), "call_overhead_s": overhead}
        # Some of the same plan's chunks, scored alone with one thread over every batch: seconds per
        # unit of cost.
        chosen = list(dict.fromkeys(c for u in units[:: len(units) // args.calibrate] for c in u.coalitions))
        load, wall, _ = _timed_scores(base.replace(results_dir=f"{tmp}/one", threads=1), chosen)
        rate = wall / sum(u.cost for u in plan_units(chosen, scorer.batch_costs, 1, scorer.chunk_size))
        out["calibration_1_thread"] = {
            "coalitions": len(chosen),
            "wall_s": wall,
            "s_per_cost": rate,
        }
    predicted = makespan([rate * u.cost + overhead for u in units], 2)
    measured = out["ray_2x1"]["wall_s"]
    out["model_check"] = {
        "predicted_s": predicted,
        "measured_s": measured,
        "error": predicted / measured - 1,
        "passes": abs(predicted / measured - 1) <= TOLERANCE,
    }
    out["parallel_efficiency_2x1_vs_local_2_threads"] = out["local_2_threads"]["wall_s"] / measured
    unit_mean = measured * 2 / len(units)
    out["overhead_share_of_unit"] = overhead / unit_mean
    return out


def predict_paper_study(gpus: int, unit_overhead_s: float) -> dict:
    """Predicted wall hours of the paper's study (three models, six tasks, 1000 documents, window):
    cells one after another, each on every worker, a model load per cell."""
    per_model, busy, wall = {}, 0.0, 0.0
    for name, (params, weights, players, per_worker) in PAPER_MODELS.items():
        workers = gpus // per_worker
        coalitions = planned_coalitions("window", players, n_lim=3)
        s_per_coalition = H100_S_PER_COALITION_DOC_8B * params / 8.0 * DOCS  # as measured: all in one go
        batches = DOCS // 64  # 64-document batches, as measured
        units = plan_units(coalitions, [1] * batches, workers)
        # Seconds per unit of cost, such that all coalitions in one unit cost what was measured; a smaller
        # unit shares fewer prefixes, which its cost counts.
        rate = (
            s_per_coalition * len(coalitions) / ((executed_players(coalitions) + len(coalitions)) * batches)
        )
        seconds = [rate * u.cost + unit_overhead_s for u in units]
        cell = makespan(seconds, workers) + load_seconds(weights, per_worker)
        compute = s_per_coalition * len(coalitions)
        per_model[name] = {
            "workers": workers,
            "gpus_per_worker": per_worker,
            "hours": TASKS * cell / 3600,
            "scheduling_efficiency": compute / workers / cell,
        }
        busy += TASKS * compute / workers
        wall += TASKS * cell
    return {"gpus": gpus, "hours": wall / 3600, "models": per_model, "scheduling_efficiency": busy / wall}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="piqa")
    parser.add_argument("--limit", type=int, default=40)
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--coalitions", type=int, default=48)
    parser.add_argument("--calibrate", type=int, default=2, help="units of the 1-thread calibration")
    parser.add_argument("--json", type=Path, default=None)
    args = parser.parse_args()
    out = measure(args)
    local, remote, check = out["local_2_threads"], out["ray_2x1"], out["model_check"]
    print(f"{out['coalitions']} coalitions, {args.task} limit {args.limit}, blocks, {args.dtype}")
    print(f"local, 2 threads:    {local['wall_s']:7.1f} s scoring ({local['load_s']:.1f} s load)")
    print(
        f"ray, 2 x 1 thread:   {remote['wall_s']:7.1f} s scoring "
        f"({remote['load_s']:.1f} s start + load), {remote['units']} units"
    )
    print(
        "parallel efficiency (local 2 threads / ray 2 x 1): "
        f"{out['parallel_efficiency_2x1_vs_local_2_threads']:.2f}"
    )
    print(
        f"ray call overhead: {remote['call_overhead_s'] * 1e3:.1f} ms per unit = "
        f"{out['overhead_share_of_unit']:.2%} of a unit's time"
    )
    print(
        f"model: predicted {check['predicted_s']:.1f} s, measured {check['measured_s']:.1f} s "
        f"({check['error']:+.1%})"
    )
    if check["passes"]:
        out["predictions"] = [predict_paper_study(g, remote["call_overhead_s"]) for g in (8, 64)]
        for p in out["predictions"]:
            per = ", ".join(
                f"{k} {v['hours']:.1f} h ({v['workers']} x {v['gpus_per_worker']} GPU)"
                for k, v in p["models"].items()
            )
            print(
                f"PREDICTED on {p['gpus']} H100s: {p['hours']:.1f} h; {per}; "
                f"scheduling efficiency {p['scheduling_efficiency']:.0%}"
            )
    else:
        print(f"the model misses the 2-worker run by more than {TOLERANCE:.0%}: no cluster predictions")
    if args.json:
        args.json.write_text(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
