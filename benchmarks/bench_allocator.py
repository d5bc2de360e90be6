"""lsi's engine on the CPU with glibc's default malloc settings against `retain_freed_memory`.

Each setting runs in its own process (malloc settings are process-wide), alternately, `--rounds`
times each, on the same coalitions; the scores must be identical. Prints seconds per coalition, the
minor page faults while scoring, and the ratio.

    python benchmarks/bench_allocator.py [--model gemma3-270m] [--task boolq] [--limit 100]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np


def _minor_faults() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_minflt


def child(args: argparse.Namespace) -> None:
    import torch
    from bench_engine import sampled_windows

    from lsi.models import load_model
    from lsi.scoring import Scorer

    torch.set_num_threads(2)
    lm = load_model(args.model, dtype="bfloat16")
    scorer = Scorer(lm, args.task, args.limit, "sublayer", Path(tempfile.mkdtemp(prefix="lsi-bench-")))
    coalitions = sampled_windows(len(scorer.players), 3, args.windows)
    faults, start = _minor_faults(), time.perf_counter()
    frame = scorer.scores(coalitions, progress=False)
    seconds = time.perf_counter() - start
    print(
        json.dumps(
            {
                "seconds": seconds,
                "coalitions": len(coalitions),
                "faults": _minor_faults() - faults,
                "scores": frame.score.tolist(),
            }
        )
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="gemma3-270m")
    parser.add_argument("--task", default="boolq")
    parser.add_argument("--limit", type=int, default=100)
    parser.add_argument("--windows", type=int, default=8, help="window coalitions besides the full model")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    settings = {"glibc defaults": "0", "retain_freed_memory": "1"}
    runs: dict[str, list[dict]] = {name: [] for name in settings}
    for _ in range(args.rounds):
        for name, flag in settings.items():
            env = {**os.environ, "LSI_RETAIN_FREED_MEMORY": flag}
            out = subprocess.run(
                [sys.executable, __file__, *sys.argv[1:], "--child"],
                env=env,
                check=True,
                capture_output=True,
                text=True,
            ).stdout
            runs[name].append(json.loads(out.strip().splitlines()[-1]))
    first = runs["glibc defaults"][0]
    print(
        f"model {args.model} | task {args.task} | limit {args.limit} | bfloat16, sub-layers | "
        f"{first['coalitions']} coalitions | {args.rounds} runs per setting, alternating"
    )
    print(f"{'malloc setting':22s} {'s/coalition':>12s} {'minor faults':>14s} {'speed-up':>9s}")
    base = np.median([r["seconds"] / r["coalitions"] for r in runs["glibc defaults"]])
    for name, results in runs.items():
        per = np.median([r["seconds"] / r["coalitions"] for r in results])
        faults = np.median([r["faults"] for r in results])
        print(f"{name:22s} {per:12.2f} {faults:14,.0f} {base / per:8.2f}x")
    same = all(r["scores"] == first["scores"] for results in runs.values() for r in results)
    print(f"scores identical in every run: {same}")


if __name__ == "__main__":
    main()
