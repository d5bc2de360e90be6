"""Shapley estimators against a walk reference on a real layer game too large to enumerate.

Three steps, so that the cost is stated before anything is scored and the comparison needs no model:

    python benchmarks/bench_references.py plan REFERENCE.json      # coalitions and hours, per estimator
    python benchmarks/bench_references.py score REFERENCE.json     # score what the plan lacks (resumable)
    python benchmarks/bench_references.py evaluate REFERENCE.json  # estimates vs the reference, no model

REFERENCE.json is one of `results/references/` (`benchmarks/reference_walks.py`): its store, value and
walk runs. Every estimator here chooses its coalitions without seeing values (`planned_coalitions`),
so the plan is exact. Seeds start at 100: the reference's walks use seeds 0-2, and a permutation
estimate sharing its walks would agree with it for the wrong reason. `plan` and `evaluate` write to
a temporary folder unless `--out` names one (`--out results/estimator_benchmark` for the committed
tables).

Hours are predicted from the store's own CPU rows (this CPU's where there are enough): seconds = a + b x
(share of players kept), fitted by least squares, since a coalition that skips layers costs less.
"""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from lsi.analysis import estimator_summary
from lsi.estimators import ESTIMATORS, planned_coalitions
from lsi.hardware import device_label
from lsi.provenance import now, versions
from lsi.references import against_reference, load_reference, reference_game
from lsi.store import ScoreStore

# Every estimator that plans its coalitions ahead. Left out: `exact` (2^n), `kadd` (needs 466 coalitions
# on 30 players, 1,831 on 60: beyond 8n) and `truncated` (it stops where the values reach chance).
COMPARED = (
    "window",
    "window_efficient",  # added after the committed plans: the window's coalitions and v(empty), all stored
    "kernelshap",
    "permutation",
    "svarm",
    "unbiased_kernelshap",
    "stratified",
    "owen",
    "leverage",
    "polyshap",
    "regression_msr",
    "proxyshap",  # added after the committed plans: regression_msr's coalitions, all stored
    "layer",
)
MULTIPLES = (1, 3, 8)
SEEDS = tuple(range(100, 105))


def budgets(n: int) -> list[int]:
    """n, 3n and 8n, and the window estimator's own cost (the same-cost comparison)."""
    return sorted({*(k * n for k in MULTIPLES), ESTIMATORS["window"].min_budget(n, {})})


def runs(n: int, estimators: tuple[str, ...] = COMPARED) -> list[tuple[str, int | None, int]]:
    """(estimator, budget, seed) of every estimate: the deterministic window once."""
    out: list[tuple[str, int | None, int]] = []
    for name in estimators:
        if ESTIMATORS[name].deterministic:
            out.append((name, None, 0))
            continue
        out.extend((name, b, s) for b in budgets(n) if b >= ESTIMATORS[name].min_budget(n, {}) for s in SEEDS)
    return out


def seconds_model(store: ScoreStore) -> tuple[float, float, list[str]]:
    """(a, b) of seconds = a + b x kept share, and the CPUs timed: the rows this CPU would write where the
    store has enough of them, otherwise every CPU row (rows from before rows named their CPU say "cpu")."""
    frame = store.frame()
    here = frame[frame["device"] == device_label(torch.device("cpu"), getattr(torch, store.meta["dtype"]))]
    cpu = here if len(here) >= 20 else frame[frame["device"].str.startswith("cpu")]
    if len(cpu) < 20:
        raise SystemExit(f"{store.path} has {len(cpu)} rows scored on a CPU: too few to predict hours")
    b, a = np.polyfit(cpu["n_kept"] / len(store.meta["players"]), cpu["seconds"], 1)
    return float(a), float(b), sorted(set(cpu["device"]))


def planned(n: int) -> dict[str, set[str]]:
    """Each estimator's coalitions over all its budgets and seeds."""
    coalitions: dict[str, set[str]] = {name: set() for name in COMPARED}
    for name, budget, seed in runs(n):
        coalitions[name].update(planned_coalitions(name, n, budget, seed))
    return coalitions


def plan(reference_file: Path, out: Path) -> None:
    record, game = reference_game(reference_file)
    store, n = game.store, game.n_players
    stored = set(store.coalitions())
    a, b, timed_on = seconds_model(store)

    def hours(coalitions: set[str]) -> float:
        return (a * len(coalitions) + b * sum(c.count("1") for c in coalitions) / n) / 3600

    every: set[str] = set()
    rows = []
    for name, mine in planned(n).items():
        new = mine - stored - every  # counted once, at the first estimator that asks for it
        rows.append({"estimator": name, "coalitions": len(mine), "new": len(new), "cpu_hours": hours(new)})
        every |= mine
    missing = every - stored
    print(pd.DataFrame(rows).to_string(index=False, float_format=lambda v: f"{v:.2f}"))
    print(
        f"all: {len(every)} distinct coalitions, {len(missing)} to score, {hours(missing):.1f} h on this CPU"
    )
    meta = store.meta
    record_out = {
        "reference": str(reference_file),
        "store": record["store"],
        "model": meta["model"],
        "weights_sha256": meta["weights_sha256"],
        "dtype": meta["dtype"],
        "task": meta["task"],
        "split": meta["split"],
        "limit": meta["limit"],
        "granularity": meta["granularity"],
        "value": record["value"],
        "players": n,
        "estimators": list(COMPARED),
        "budgets": budgets(n),
        "seeds": list(SEEDS),
        "per_estimator": rows,
        "distinct": len(every),
        "to_score": len(missing),
        "seconds_per_coalition": {"a": a, "b_per_kept_share": b, "timed_on": timed_on},
        "cpu_hours": hours(missing),
        "versions": versions(),
        "created": now(),
    }
    path = out / f"plan-{reference_file.stem}.json"
    path.write_text(json.dumps(record_out, indent=1))
    print(f"written: {path}")


def score(reference_file: Path) -> None:
    from lsi.config import RunConfig
    from lsi.pipeline import LazyScorer, ensure_scored

    record, game = reference_game(reference_file)
    store, meta = game.store, game.store.meta
    config = RunConfig(
        model=meta["model"]["name"],
        task=meta["task"],
        granularity=meta["granularity"],
        limit=meta["limit"],
        dtype=meta["dtype"],
        results_dir=str(store.path.parents[3]),
    )
    if config.store_path().resolve() != store.path.resolve():
        raise SystemExit(f"the reference's store {store.path} is not where {config} scores")
    # One budget at a time, smallest first, and within it one seed at a time: a run stopped early
    # leaves whole estimates to evaluate, every estimator with the same seeds.
    n = game.n_players
    scorer, total = LazyScorer(config), 0
    for budget in sorted({b or 0 for _, b, _ in runs(n)}):
        group = [r for r in runs(n) if (r[1] or 0) == budget]
        for seed in sorted({s for _, _, s in group}):
            runs_of_seed = [r for r in group if r[2] == seed]
            coalitions = (c for name, b, s in runs_of_seed for c in planned_coalitions(name, n, b, s))
            total += len(ensure_scored(store, coalitions, scorer))
        print(f"budget {budget or 'window'}: every coalition stored")
    print(f"scored {total} coalitions into {store.path}")


def evaluate(reference_file: Path, out: Path) -> None:
    record, game, ref = load_reference(reference_file)
    n = game.n_players
    frame = against_reference(game, ref, runs(n))
    print(
        f"estimates with every coalition stored: {len(frame)} of {len(runs(n))} (the rest are not scored yet)"
    )
    stem = f"large-{reference_file.stem}"
    frame.to_csv(out / f"{stem}.csv", index=False, float_format="%.6g")
    summary = estimator_summary(frame)
    split, reliability = ref.split_half()
    meta = game.store.meta
    header = (
        f"{meta['model']['title']} | {meta['task']} ({meta['split']}, {meta['n_docs']} docs) | "
        f"{meta['dtype']} | value {record['value']} | {n} players | medians over the seeds "
        f"scored of {SEEDS[0]}-{SEEDS[-1]} (column `seeds`) | {len(frame)} of {len(runs(n))} planned "
        "estimates scored\n"
        f"reference: {ref.pairs} antithetic walk pairs ({reference_file}); split-half Spearman {split:.3f}, "
        f"{reliability:.3f} for all pairs; its own MSE (mean squared error) {np.mean(ref.stderr**2):.3g}\n"
        f"store {game.store.path} (weights sha256 {meta['weights_sha256'][:16]}) | made {now()} with "
        + ", ".join(f"{k} {v}" for k, v in versions().items())
    )
    (out / f"{stem}.md").write_text(f"{header}\n\n{summary.to_markdown(index=False, floatfmt='.4g')}\n")
    print(header)
    print(summary.to_string(index=False, float_format=lambda v: f"{v:.4g}"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("step", choices=("plan", "score", "evaluate"))
    parser.add_argument("reference", type=Path)
    parser.add_argument("--out", type=Path, default=None, help="folder of the plan and tables")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="lsi-bench-references-"))
    out.mkdir(parents=True, exist_ok=True)
    if args.step == "plan":
        plan(args.reference, out)
    elif args.step == "score":
        score(args.reference)
    else:
        evaluate(args.reference, out)


if __name__ == "__main__":
    main()
