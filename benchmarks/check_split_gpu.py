"""A model split over two devices scores as the same model on one: the lsi.remote path (torch and
transformers only, no Ray, no accelerate), for a lent GPU machine.

    python benchmarks/check_split_gpu.py                      # cuda:0 + cpu against all on cuda:0
    python benchmarks/check_split_gpu.py --devices cpu cpu    # the same code path on a CPU-only machine

A tiny random Llama in float32 (untied head, so the head can live apart from the embeddings) scores
random requests for several coalitions; the blocks are then split in two runs over `--devices` with
`lsi.jobs.place_blocks` (what `python -m lsi.remote --devices` does). Prints the largest relative
difference of the summed log-likelihoods and how many greedy flags differ; exits 1 if the difference
passes 1e-5 or a flag differs (report any such flag with its top-two logit gap before calling it a tie).
"""

from __future__ import annotations

import argparse
import sys

import numpy as np
import torch
import transformers as T

from lsi.engine import TokenRequest
from lsi.jobs import ScoringJob, Unit, checked_worker, place_blocks

BLOCKS = 8


def tiny_llama(device: str) -> T.PreTrainedModel:
    torch.manual_seed(0)
    config = T.LlamaConfig(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_hidden_layers=BLOCKS,
        num_attention_heads=4,
        num_key_value_heads=2,
        tie_word_embeddings=False,
    )
    model = T.LlamaForCausalLM(config).to(device=device, dtype=torch.float32).eval()
    model.config.use_cache = False
    return model


def requests(n: int = 40, seed: int = 1) -> list[TokenRequest]:
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        context = rng.integers(3, 512, int(rng.integers(5, 60))).tolist()
        out.append(
            TokenRequest(tuple(context), tuple(rng.integers(3, 512, int(rng.integers(1, 6))).tolist()))
        )
    return out


def score(model: T.PreTrainedModel, granularity: str, job: ScoringJob) -> tuple[np.ndarray, np.ndarray]:
    from lsi.players import list_players

    names = [p.name for p in list_players(model, granularity)]
    worker = checked_worker(model, granularity, names)
    n = len(names)
    coalitions = (
        "1" * n,
        "0" + "1" * (n - 1),
        "1" * (n // 2) + "0" + "1" * (n - n // 2 - 1),
        "10" * (n // 2),
    )
    result = worker.score(job, Unit(coalitions, tuple(range(len(worker.batches(job))))))
    return result.loglik, result.greedy


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", nargs=2, default=["cuda:0", "cpu"])
    args = parser.parse_args(argv)
    job = ScoringJob.from_requests(requests(), max_length=128, batch_tokens=1024, max_rows=16)
    worst, flips = 0.0, 0
    for granularity in ("block", "sublayer"):
        whole = tiny_llama(args.devices[0])
        reference, greedy_ref = score(whole, granularity, job)
        split = tiny_llama(args.devices[0])
        place_blocks(split, args.devices)
        placed = {str(next(b.parameters()).device) for b in split.model.layers}
        loglik, greedy = score(split, granularity, job)
        relative = np.abs(loglik - reference) / np.maximum(np.abs(reference), 1e-12)
        worst = max(worst, float(relative.max()))
        flips += int((greedy != greedy_ref).sum())
        print(f"{granularity}: blocks on {sorted(placed)}, max relative difference {relative.max():.2e}")
    print(f"greedy flags that differ: {flips}")
    ok = worst <= 1e-5 and flips == 0
    print("OK" if ok else "FAILED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
