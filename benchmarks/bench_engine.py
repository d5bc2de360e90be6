"""Speed of lsi's engine against the paper's pipeline, side by side in one process.

The paper's pipeline: for every coalition, `lm_eval.simple_evaluate` through HFLM, players removed
by zeroing hooks (computed, then zeroed), float32, batch size 2. lsi: one `Scorer.scores` call for
all coalitions (skipping, shared contexts, prefix tree over coalitions, scored positions only),
first in float32 (scores must be identical), then in bfloat16 (near-tie documents may flip).

    python benchmarks/bench_engine.py [--task piqa] [--limit 50] [--granularity block] [--windows 12]
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import lm_eval
import numpy as np
import torch

from lsi.masking import zeroed
from lsi.models import load_model
from lsi.players import removed_players, window_coalitions
from lsi.scoring import Scorer
from lsi.tasks import lm_eval_tasks


def sampled_windows(n: int, max_removed: int, count: int) -> list[str]:
    """The full model and `count` of the paper's removal windows, evenly spaced."""
    windows = window_coalitions(n, max_removed)[1:]
    step = max(1, len(windows) // count)
    return ["1" * n, *windows[::step][:count]]


def paper_pipeline(lm, scorer: Scorer, coalitions: list[str]) -> tuple[float, list[dict]]:
    start = time.perf_counter()
    results = []
    for coalition in coalitions:
        with zeroed(lm.model, removed_players(coalition, scorer.players)):
            out = lm_eval.simple_evaluate(
                model=lm.hflm(batch_size=2),
                limit=scorer.limit,
                bootstrap_iters=0,
                **lm_eval_tasks(scorer.task),
            )
        results.append(out["results"][scorer.task.name])
    return time.perf_counter() - start, results


def timed_scores(scorer: Scorer, coalitions: list[str]) -> tuple[float, object]:
    start = time.perf_counter()
    frame = scorer.scores(coalitions, progress=False)
    return time.perf_counter() - start, frame


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="piqa")
    parser.add_argument("--limit", type=int, default=50)
    parser.add_argument("--granularity", default="block")
    parser.add_argument(
        "--windows", type=int, default=12, help="window coalitions scored besides the full model"
    )
    parser.add_argument("--batch-tokens", type=int, default=4096)
    args = parser.parse_args()
    torch.set_num_threads(2)

    results = Path(tempfile.mkdtemp(prefix="lsi-bench-"))
    scorers = {
        dtype: Scorer(
            load_model(args.model, dtype=dtype),
            args.task,
            args.limit,
            args.granularity,
            results,
            args.batch_tokens,
        )
        for dtype in ("float32", "bfloat16")
    }
    f32_scorer = scorers["float32"]
    coalitions = sampled_windows(len(f32_scorer.players), 3, args.windows)
    f32_time, f32 = timed_scores(f32_scorer, coalitions)
    bf16_time, bf16 = timed_scores(scorers["bfloat16"], coalitions)
    paper_time, paper = paper_pipeline(f32_scorer.lm, f32_scorer, coalitions)

    metric = f32_scorer.task.metric
    same = [abs(r[f"{metric},none"] - s) < 1e-12 for r, s in zip(paper, f32.score, strict=True)]
    flips = [int((a != b).sum()) for a, b in zip(f32["doc_" + metric], bf16["doc_" + metric], strict=True)]
    n_tokens = sum(len(r.context) + len(r.continuation) - 1 for r in f32_scorer.requests)
    print(
        f"model {args.model} | task {args.task} ({f32_scorer.task.split}) | limit {args.limit} | "
        f"{len(coalitions)} coalitions ({args.granularity}: full + windows of 1..3) | "
        f"{n_tokens} request tokens"
    )
    print(f"{'pipeline':44s} {'seconds':>9s} {'s/coalition':>12s} {'speed-up':>9s}")
    for name, seconds in [
        ("paper: simple_evaluate, zeroing hooks, fp32, bs 2", paper_time),
        ("lsi engine, float32", f32_time),
        ("lsi engine, bfloat16", bf16_time),
    ]:
        print(f"{name:44s} {seconds:9.1f} {seconds / len(coalitions):12.2f} {paper_time / seconds:8.1f}x")
    print(
        f"float32 scores identical to the paper pipeline's: {sum(same)}/{len(same)} coalitions "
        f"(near-tie documents: {int(f32.near_ties.sum())})"
    )
    print(
        f"bfloat16 vs float32: {metric} flips per coalition: max {max(flips)}, mean {np.mean(flips):.2f} "
        f"of {len(f32_scorer.docs)} documents; max |score diff| {np.abs(f32.score - bf16.score).max():.4f}"
    )


if __name__ == "__main__":
    main()
