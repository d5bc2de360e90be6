"""lsi's engine in float32 against bfloat16 on this CPU, and what `--dtype auto` picks here.

Each variant scores the same coalitions of the same documents in one process, alternately, `--rounds`
times each; prints seconds per coalition, the ratio, and whether the CPU multiplies bfloat16 in hardware
(AMX or AVX512-BF16). Where it does not, bfloat16 runs twice: with torch's own kernels (the baseline) and
with lsi's float32-kernel matmuls (`lsi.hardware.bfloat16_matmuls`, what scoring uses there). The
scores differ slightly between dtypes (bfloat16 rounds): their means are shown.

    python benchmarks/bench_dtype.py [--model smollm2-135m] [--task piqa] [--limit 20] [--windows 4]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_engine import sampled_windows

from lsi.choices import DType
from lsi.hardware import MATMULS_ENV, native_bfloat16, resolve_dtype
from lsi.models import load_model
from lsi.scoring import Scorer

# variant -> (dtype, the bfloat16 matmuls setting)
VARIANTS = {
    "float32": ("float32", ""),
    "bfloat16": ("bfloat16", ""),
    "bfloat16 torch kernels": ("bfloat16", "native"),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="piqa")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--windows", type=int, default=4, help="window coalitions besides the full model")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    variants = {k: v for k, v in VARIANTS.items() if not (v[1] and native_bfloat16("cpu"))}
    models = {dtype: load_model(args.model, dtype=dtype) for dtype, _ in variants.values()}
    seconds: dict[str, list[float]] = {name: [] for name in variants}
    means: dict[str, float] = {}
    for _ in range(args.rounds):
        for name, (dtype, matmuls) in variants.items():
            os.environ[MATMULS_ENV] = matmuls
            store = Path(tempfile.mkdtemp(prefix="lsi-bench-"))  # empty: every coalition is scored
            scorer = Scorer(models[dtype], args.task, args.limit, "block", store)
            coalitions = sampled_windows(len(scorer.players), 3, args.windows)
            start = time.perf_counter()
            frame = scorer.scores(coalitions, progress=False)
            seconds[name].append((time.perf_counter() - start) / len(coalitions))
            means[name] = float(frame.score.mean())
    print(
        f"model {args.model} | task {args.task} | limit {args.limit} | blocks | {len(coalitions)} "
        f"coalitions | {args.rounds} runs per dtype, alternating | torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {native_bfloat16('cpu')}"
    )
    print(f"{'variant':24s} {'s/coalition':>12s} {'vs float32':>11s} {'mean score':>11s}")
    base = np.median(seconds["float32"])
    for name in variants:
        per = np.median(seconds[name])
        print(f"{name:24s} {per:12.2f} {base / per:10.2f}x {means[name]:11.3f}")
    print(f"--dtype auto picks {resolve_dtype(DType.AUTO, 'cpu').value} on this CPU")


if __name__ == "__main__":
    main()
