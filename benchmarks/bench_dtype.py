"""lsi's engine in float32 against bfloat16 on this CPU, and what `--dtype auto` picks here.

Both dtypes score the same coalitions of the same documents in one process, alternately, `--rounds`
times each; prints seconds per coalition, the ratio, and whether the CPU multiplies bfloat16 in hardware
(AMX or AVX512-BF16). The scores differ slightly between dtypes (bfloat16 rounds): their means are shown.

    python benchmarks/bench_dtype.py [--model smollm2-135m] [--task piqa] [--limit 20] [--windows 4]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from bench_engine import sampled_windows

from lsi.choices import DType
from lsi.hardware import native_bfloat16, resolve_dtype
from lsi.models import load_model
from lsi.scoring import Scorer

DTYPES = ("float32", "bfloat16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="piqa")
    parser.add_argument("--limit", type=int, default=20)
    parser.add_argument("--windows", type=int, default=4, help="window coalitions besides the full model")
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(2)
    models = {dtype: load_model(args.model, dtype=dtype) for dtype in DTYPES}
    seconds: dict[str, list[float]] = {dtype: [] for dtype in DTYPES}
    means: dict[str, float] = {}
    for _ in range(args.rounds):
        for dtype, lm in models.items():
            store = Path(tempfile.mkdtemp(prefix="lsi-bench-"))  # empty: every coalition is scored
            scorer = Scorer(lm, args.task, args.limit, "block", store)
            coalitions = sampled_windows(len(scorer.players), 3, args.windows)
            start = time.perf_counter()
            frame = scorer.scores(coalitions, progress=False)
            seconds[dtype].append((time.perf_counter() - start) / len(coalitions))
            means[dtype] = float(frame.score.mean())
    print(
        f"model {args.model} | task {args.task} | limit {args.limit} | blocks | {len(coalitions)} "
        f"coalitions | {args.rounds} runs per dtype, alternating | torch {torch.__version__}, CPU capability "
        f"{torch.backends.cpu.get_cpu_capability()}, native bfloat16: {native_bfloat16('cpu')}"
    )
    print(f"{'dtype':10s} {'s/coalition':>12s} {'vs float32':>11s} {'mean score':>11s}")
    base = np.median(seconds["float32"])
    for dtype in DTYPES:
        per = np.median(seconds[dtype])
        print(f"{dtype:10s} {per:12.2f} {base / per:10.2f}x {means[dtype]:11.3f}")
    print(f"--dtype auto picks {resolve_dtype(DType.AUTO, 'cpu').value} on this CPU")


if __name__ == "__main__":
    main()
