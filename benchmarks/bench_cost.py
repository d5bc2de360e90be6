"""What the paper's study costs one model on this CPU, measured before it starts: load time, peak memory,
seconds per coalition on a few documents of each task, and the projected hours at the study's limits.

    python benchmarks/bench_cost.py [--model qwen2.5-coder-1.5b] [--docs 20] [--sample 24]

The study's coalitions per task are those its grids ask of the sub-layer cells: the single-player
ablation and, per setting, what the estimator plans (`planned_coalitions`; the window's v(empty) for
the efficiency report included), for the cells of `--cells-of` (a model already in the grids, whose
protocol the new model follows) in studies/paper.yaml (200 documents) and studies/paper-1000.yaml.

Per task, `--sample` of those coalitions (the full model and a random draw) are scored on the first
`--docs` documents in one `Scorer.scores` call, as a study scores them. Their cost differs from the
study's: the engine's prefix tree shares work among the coalitions of one unit, and the scorer caps a
unit (`unit_cost_cap`), so at 200 documents a unit holds fewer coalitions and shares less. The
projection therefore uses the planner's cost model (`plan_units`: player runs x padded tokens, checked
within 15% by bench_scaleout): seconds per unit of cost measured on the sample, times the planned
cost of every study coalition over the first N documents' batches, planned as `Scorer.scores` plans
them. `s_per_coalition_sample` is measured; `s_per_coalition_study` (the study's mix on the same
documents) and the hours are that model's; `hours_from_cpu_time` puts this process's CPU time over
its threads in place of the wall time: the wall time with no other process running, if torch kept
every thread busy. `--validate TASK` checks the model here: it predicts the time of that task's
other study coalitions on the same documents, then scores them.

Another busy process slows torch several times over on 2 cores: each timing waits (up to
--max-wait) for the 1-minute load average to drop below --max-load, and records the load averages
before and after it and the CPU seconds other processes used meanwhile.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import sys
import tempfile
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import psutil
import torch

from lsi.estimators import estimator_options, planned_coalitions, resolve_budget
from lsi.hardware import cpu_label
from lsi.jobs import plan_units
from lsi.models import LoadedModel, load_model
from lsi.pipeline import ablation_coalitions
from lsi.provenance import now, versions
from lsi.scoring import Scorer, unit_cost_cap
from lsi.study import load_grid

ROOT = Path(__file__).resolve().parent.parent
GRIDS = (ROOT / "studies" / "paper.yaml", ROOT / "studies" / "paper-1000.yaml")


def study_coalitions(
    grid: Path, cells_of: str, n_players: int
) -> tuple[int, dict[str, list[str]], list[str]]:
    """(limit, task -> coalitions, settings) of the grid's sub-layer cells of model `cells_of`."""
    per_task: dict[str, list[str]] = defaultdict(list)
    limits, settings = set(), []
    for cell in load_grid(grid).cells:
        p = cell.parameters
        if p["model"] != cells_of or p["granularity"] != "sublayer":
            continue
        limits.add(p["limit"])
        budget = resolve_budget(p["estimator"], p["budget"], n_players, p["max_removed"])
        options = estimator_options(p["estimator"], p)
        per_task[p["task"]] += ablation_coalitions(n_players)
        per_task[p["task"]] += planned_coalitions(p["estimator"], n_players, budget, p["seed"], **options)
        setting = f"{p['estimator']} budget {budget} seed {p['seed']} {options}"
        if setting not in settings:
            settings.append(setting)
    if len(limits) != 1:
        raise SystemExit(f"{grid}: expected one limit for the sub-layer cells of {cells_of}, got {limits}")
    return limits.pop(), {t: sorted(set(c), reverse=True) for t, c in per_task.items()}, settings


def planned_cost(
    coalitions: Sequence[str], batch_costs: Sequence[int], chunk_size: int, rate: float
) -> float:
    """Cost of scoring `coalitions` in one `Scorer.scores` call at `rate` seconds per unit of cost, planned
    as the scorer plans it: a first round of two coalitions, then units capped by `unit_cost_cap`."""
    todo = sorted(set(coalitions), reverse=True)
    units = plan_units(todo[:2], batch_costs, 1, chunk_size)
    if todo[2:]:
        units += plan_units(todo[2:], batch_costs, 1, chunk_size, unit_cost_cap(todo[2:], batch_costs, rate))
    return sum(u.cost for u in units)


def measured_rate(
    wall: float, coalitions: Sequence[str], batch_costs: Sequence[int], chunk_size: int
) -> float:
    """Seconds per unit of cost: the cap depends on the rate, so iterate to the fixed point."""
    rate = wall / planned_cost(coalitions, batch_costs, chunk_size, float("inf"))
    for _ in range(20):
        updated = wall / planned_cost(coalitions, batch_costs, chunk_size, rate)
        if updated == rate:
            break
        rate = updated
    return rate


def wait_for_quiet(max_load: float, max_wait: float) -> dict:
    """Wait until the 1-minute load average is below `max_load` (or `max_wait` seconds have passed)."""
    start = time.monotonic()
    while os.getloadavg()[0] >= max_load and time.monotonic() - start < max_wait:
        time.sleep(15)
    load = os.getloadavg()
    return {
        "loadavg_before": list(load),
        "waited_s": round(time.monotonic() - start),
        "quiet": load[0] < max_load,
    }


def _busy_cpu_s() -> tuple[float, float]:
    """(CPU seconds of the whole machine, of this process) so far: their difference is the others' share."""
    total = psutil.cpu_times()
    mine = psutil.Process().cpu_times()
    return total.user + total.nice + total.system, mine.user + mine.system


def timed(scorer: Scorer, coalitions: list[str], max_load: float, max_wait: float) -> dict:
    """Score `coalitions` once a quiet moment comes; seconds, load averages and the others' CPU use."""
    out = wait_for_quiet(max_load, max_wait)
    machine, mine = _busy_cpu_s()
    start = time.perf_counter()
    scorer.scores(coalitions, progress=False)
    wall = time.perf_counter() - start
    machine_after, mine_after = _busy_cpu_s()
    return out | {
        "wall_s": wall,
        "cpu_s": mine_after - mine,
        "loadavg_after": list(os.getloadavg()),
        "other_processes_cpu_s": (machine_after - machine) - (mine_after - mine),
    }


def peak_rss_gib() -> float:
    """This process's peak resident set so far (Linux reports KiB), as /usr/bin/time -v reports it."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


def measure(args: argparse.Namespace, scratch: Path, out: Path) -> dict:
    """Every figure, written to `out` after each task (a stopped run keeps what it measured)."""
    torch.set_num_threads(args.threads)
    load = wait_for_quiet(args.max_load, args.max_wait)
    start = time.perf_counter()
    lm = load_model(args.model, args.dtype)
    load |= {"load_s": time.perf_counter() - start, "peak_rss_gib_after_load": peak_rss_gib()}
    n_players = 2 * lm.identity.n_blocks
    grids = [study_coalitions(grid, args.cells_of, n_players) for grid in GRIDS]
    limits = [limit for limit, _, _ in grids]
    rng = np.random.default_rng(args.seed)
    tasks = {}
    for task, wanted in grids[0][1].items():
        scorer = Scorer(lm, task, args.docs, "sublayer", scratch / "measured")
        others = rng.choice(len(wanted) - 1, size=min(args.sample, len(wanted)) - 1, replace=False)
        sample = [wanted[0], *(wanted[1 + i] for i in sorted(others))]  # wanted[0]: the full model
        timing = timed(scorer, sample, args.max_load, args.max_wait)
        # wall time, and this process's CPU time over its threads: what the wall time would be on
        # an otherwise idle machine, if torch kept every thread busy
        rates = {
            name: measured_rate(seconds, sample, scorer.batch_costs, scorer.chunk_size)
            for name, seconds in (("wall", timing["wall_s"]), ("cpu", timing["cpu_s"] / args.threads))
        }
        row = {
            "documents": len(scorer.docs),
            "sample": len(sample),
            **timing,
            "s_per_coalition_sample": timing["wall_s"] / len(sample),
            "cpu_s_per_coalition_sample": timing["cpu_s"] / len(sample),
            "s_per_cost": rates["wall"],
            "s_per_coalition_study": rates["wall"]
            * planned_cost(wanted, scorer.batch_costs, scorer.chunk_size, rates["wall"])
            / len(wanted),
            "projection": {},
        }
        for (limit, coalitions, _), grid in zip(grids, GRIDS, strict=True):
            tokens_only = Scorer(lm, task, limit, "sublayer", scratch / f"limit{limit}")  # nothing scored
            hours = {
                name: rate
                * planned_cost(coalitions[task], tokens_only.batch_costs, scorer.chunk_size, rate)
                / 3600
                for name, rate in rates.items()
            }
            row["projection"][str(limit)] = {
                "grid": str(grid.relative_to(ROOT)),
                "documents": len(tokens_only.docs),
                "coalitions": len(coalitions[task]),
                "hours": hours["wall"],
                "hours_from_cpu_time": hours["cpu"],
            }
        if task == args.validate:
            rest = [c for c in wanted if c not in sample]
            check = timed(scorer, rest, args.max_load, args.max_wait)
            rate = rates["wall"]
            predicted = rate * planned_cost(rest, scorer.batch_costs, scorer.chunk_size, rate)
            row["model_check"] = check | {
                "coalitions": len(rest),
                "predicted_s": predicted,
                "error": predicted / check["wall_s"] - 1,
            }
        tasks[task] = row
        print(_row(task, row, limits), flush=True)
        result = _result(args, lm, n_players, grids, load, tasks)
        out.write_text(json.dumps(result, indent=1) + "\n")
    return result


def _result(
    args: argparse.Namespace, lm: LoadedModel, n_players: int, grids: list, load: dict, tasks: dict
) -> dict:
    limits = [limit for limit, _, _ in grids]
    memory = psutil.virtual_memory().total / 2**30
    return {
        "model": lm.identity.as_dict(),
        "weights_sha256": lm.identity.weights_sha256,
        "dtype": args.dtype,
        "device": cpu_label(),
        "threads": args.threads,
        "granularity": "sublayer",
        "players": n_players,
        "protocol": {
            "cells_of": args.cells_of,
            "grids": {str(limit): settings for limit, _, settings in grids},
        },
        "load": load,
        "peak_rss_gib": peak_rss_gib(),
        "tasks": tasks,
        "total_hours": {
            str(limit): {
                key: sum(t["projection"][str(limit)][key] for t in tasks.values())
                for key in ("hours", "hours_from_cpu_time")
            }
            for limit in limits
        },
        "made": {
            "date": now(),
            "machine": f"{platform.machine()}, {os.cpu_count()} CPUs, {memory:.0f} GiB",
            "command": " ".join(["python", *sys.argv]),
            "versions": versions(),
            "max_load": args.max_load,
        },
    }


def _row(task: str, row: dict, limits: Sequence[int]) -> str:
    hours = "  ".join(
        f"{p['hours']:6.1f} ({p['hours_from_cpu_time']:.1f})"
        for p in (row["projection"][str(limit)] for limit in limits)
    )
    load = f"{row['loadavg_before'][0]:.2f} -> {row['loadavg_after'][0]:.2f}"
    return (
        f"{task:14s} {row['s_per_coalition_sample']:7.2f} {row['cpu_s_per_coalition_sample']:7.2f} "
        f"{row['s_per_coalition_study']:7.2f}  {hours}   {load}  ({row['other_processes_cpu_s']:.0f} s)"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="qwen2.5-coder-1.5b")
    parser.add_argument("--cells-of", default="qwen2.5-coder-0.5b", help="whose grid cells give the protocol")
    parser.add_argument("--dtype", default="bfloat16")
    parser.add_argument("--docs", type=int, default=20, help="documents per task in the timing")
    parser.add_argument("--sample", type=int, default=24, help="coalitions timed per task")
    parser.add_argument("--seed", type=int, default=0, help="of the sample's draw")
    parser.add_argument(
        "--validate", default=None, help="then score this task's other study coalitions: the model's check"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--max-load", type=float, default=1.5, help="wait for a lower 1-minute load average")
    parser.add_argument("--max-wait", type=float, default=900, help="seconds to wait for it, per timing")
    parser.add_argument("--out", type=Path, default=None, help="default results/benchmarks/cost-MODEL.json")
    args = parser.parse_args()
    out = args.out or ROOT / "results" / "benchmarks" / f"cost-{args.model}.json"
    print(f"{args.model}, {args.dtype}, sub-layer players, {args.docs} documents, {args.sample} coalitions")
    print(
        f"{'task':14s} {'s/coal':>7s} {'cpu/coal':>7s} {'s/study':>7s}  hours per grid limit (from CPU time)"
        "   load (others' CPU s)"
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="lsi-cost-") as scratch:
        result = measure(args, Path(scratch), out)
    load = result["load"]
    for task, row in result["tasks"].items():
        if "model_check" in row:
            check = row["model_check"]
            print(
                f"model check on {task}: the other {check['coalitions']} coalitions took "
                f"{check['wall_s']:.0f} s, predicted {check['predicted_s']:.0f} s ({check['error']:+.0%})"
            )
    print(
        f"load {load['load_s']:.0f} s; peak RSS {load['peak_rss_gib_after_load']:.2f} GiB after load, "
        f"{result['peak_rss_gib']:.2f} GiB in all"
    )
    for limit, hours in result["total_hours"].items():
        print(
            f"projected hours at limit {limit}: {hours['hours']:.1f} "
            f"({hours['hours_from_cpu_time']:.1f} from this process's CPU time over {args.threads} threads)"
        )
    print(f"written: {out}")


if __name__ == "__main__":
    main()
