"""Speed of the output-head reduction: the plain float32 log_softmax + argmax against lsi's row-chunked
`target_logprobs`, side by side in one process, on bfloat16 logits the size of a vocabulary.

With Gemma-3's 262k-token vocabulary the head, not the blocks, dominates lsi's CPU time, and most of
the plain reduction's cost is the float32 copy of every row at once.

    python benchmarks/bench_head.py [--rows 3000] [--vocab 262144] [--repeats 3]
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import torch

from lsi.engine import target_logprobs


def plain(logits: torch.Tensor, targets: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The reduction as a forward's full logits are usually reduced: all rows in float32 at once."""
    x = logits.float()
    token_lp = (x.gather(1, targets[:, None])[:, 0] - torch.logsumexp(x, -1)).double()
    return token_lp, x.argmax(-1) == targets


def best_time(fn: Callable[[], object], repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rows", type=int, default=3000, help="scored positions (ARC-Easy, 200 docs: about 3000)"
    )
    parser.add_argument(
        "--vocab", type=int, default=262144, help="262144 Gemma-3, 151936 Qwen2.5, 49152 SmolLM2"
    )
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(args.rows, args.vocab, generator=gen) * 3).bfloat16()
    targets = torch.randint(0, args.vocab, (args.rows,), generator=gen)
    expected, expected_greedy = plain(logits, targets)
    token_lp, greedy = target_logprobs(logits, targets, None)
    t_plain = best_time(lambda: plain(logits, targets), args.repeats)
    t_lsi = best_time(lambda: target_logprobs(logits, targets, None), args.repeats)
    print(f"{args.rows} rows x {args.vocab} vocabulary, bfloat16 logits, {torch.get_num_threads()} threads")
    print(f"plain float32 log_softmax + argmax: {t_plain:.2f} s")
    print(f"lsi target_logprobs:                {t_lsi:.2f} s  ({t_plain / t_lsi:.1f}x)")
    difference = (token_lp - expected).abs().max().item()
    print(f"max |difference| {difference:.1e}, greedy flags equal: {torch.equal(greedy, expected_greedy)}")


if __name__ == "__main__":
    main()
