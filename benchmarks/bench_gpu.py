"""lsi's engine against the paper's pipeline at Llama-3-8B scale, on one GPU, needing torch + transformers.

The paper (Zhang, Dong & Kawaguchi 2024) scored each coalition with lm-eval 0.4.2 on Llama-3-8B in
float32 at batch size 2: one forward per request (context + continuation, right-padded), removed
sub-layers zeroed by hooks (still computed), logits at every position. lsi scores the same coalitions
in bfloat16, skipping removed sub-layers, with shared contexts, a prefix tree over coalitions and
scored positions only. Timing needs no real weights or data (nor lm-eval, datasets, gguf, network):
a random Llama-3-8B is built on the device in float32 for the paper path and an lsi float32 check,
then cast to bfloat16 in place, so 8B float32 and bfloat16 copies never coexist.

Useful tokens: the paper's unpadded input tokens per coalition, the same count for both paths, so the
tokens/s ratio is the time ratio. Executed FLOPs: 2·in·out per row of every nn.Linear call a path
runs (the paper's zeroed modules count; lsi's skipped modules and unscored positions do not);
attention scores (under 1% here) are left out. %peak is of the dense bfloat16 peak for both paths.

One H100 or H200 (about 4-5 minutes, most of it the paper path):
    PYTHONPATH=. python benchmarks/bench_gpu.py --docs 64 --coalitions 6 --json bench_gpu.json
Anywhere, in seconds:
    PYTHONPATH=. python benchmarks/bench_gpu.py --tiny --device cpu
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import sys
import time
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import numpy as np
import torch
import transformers
from torch import nn
from transformers import LlamaConfig, LlamaForCausalLM

from lsi.engine import Engine, TokenRequest, lm_eval_input, make_batches, score_requests
from lsi.hardware import device_label
from lsi.masking import zeroed
from lsi.players import Player, list_players, removed_players, window_coalitions

R = TypeVar("R")
Players = tuple[Player, ...]
Requests = list[TokenRequest]
LLAMA3_8B: dict[str, Any] = dict(
    vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
    num_attention_heads=32, num_key_value_heads=8, max_position_embeddings=8192, rms_norm_eps=1e-5,
)  # fmt: skip
# Larger init than Llama's 0.02 so that every sub-layer of the tiny model moves the log-likelihoods.
TINY: dict[str, Any] = dict(
    LLAMA3_8B, vocab_size=1000, hidden_size=64, intermediate_size=128, num_hidden_layers=4,
    num_attention_heads=4, num_key_value_heads=2, initializer_range=0.2,
)  # fmt: skip
PEAK_BF16_TFLOPS = (("H200", 989.0), ("H100 PCIe", 756.0), ("H100 NVL", 835.0), ("H100", 989.0))
STUDY_COALITIONS, STUDY_TASKS, STUDY_DOCS = 190, 6, 1000  # the paper's Llama-3-8B study
PAPER = "paper: fp32, bs 2, zeroing hooks, full logits"
CHOICES = 4
COLUMNS = (  # header, format, key of the path's figures
    ("coal", "{:9d}", "coalitions"), ("s", "{:9.2f}", "seconds"),
    ("s/coal", "{:9.3f}", "seconds_per_coalition"), ("tok/s", "{:9.0f}", "tokens_per_s"),
    ("TFLOP/s", "{:9.3g}", "tflops"),
    ("%peak", "{:9.1%}", "peak_fraction"), ("GiB", "{:9.1f}", "peak_gib"), ("ratio", "{:8.1f}x", "speedup"),
    ("study h", "{:9.1f}", "projected_study_hours"),
)  # fmt: skip


def build_model(shape: dict[str, Any], device: torch.device, seed: int) -> LlamaForCausalLM:
    """Random float32 weights, allocated and initialised on the device (32 GB never pass the host)."""
    rope = {"rope_type": "default", "rope_theta": 500000.0}
    config = LlamaConfig(**shape, rope_parameters=rope, tie_word_embeddings=False, attn_implementation="sdpa")
    torch.manual_seed(seed)
    with device:
        model = LlamaForCausalLM(config)
    return model.eval().requires_grad_(False)


def cast_parameters(model: nn.Module, dtype: torch.dtype) -> None:
    """Cast parameters one by one: buffers (RoPE frequencies) stay float32 as in from_pretrained(dtype=...),
    and the old copy of each weight is freed before the next is made."""
    for p in model.parameters():
        p.data = p.data.to(dtype)


def synthetic_requests(docs: int, context: int, vocab: int, seed: int) -> Requests:
    """ARC/PIQA-shaped documents: 4 choices after one context of context/2..3·context/2 tokens,
    continuations of 5..20 tokens."""
    rng = random.Random(seed)
    tokens = lambda n: tuple(rng.randrange(3, vocab) for _ in range(n))  # noqa: E731
    out = []
    for _ in range(docs):
        ctx = tokens(rng.randint(context // 2, 3 * context // 2))
        out += [TokenRequest(ctx, tokens(rng.randint(5, 20))) for _ in range(CHOICES)]
    return out


def measure(model: nn.Module, device: torch.device, run: Callable[[], R]) -> tuple[R, dict[str, Any]]:
    """Wall time between device synchronisations, peak device memory, and executed FLOPs: 2·in·out per
    row of every nn.Linear call, counted by hooks (no sync), so only the matmuls a path really runs count."""
    flops = [0]

    def count(module: nn.Module, inputs: tuple[torch.Tensor, ...], _out: object) -> None:
        flops[0] += 2 * inputs[0].numel() * module.out_features  # type: ignore[operator]

    hooks = [m.register_forward_hook(count) for m in model.modules() if isinstance(m, nn.Linear)]
    cuda = device.type == "cuda"
    if cuda:
        torch.cuda.synchronize(device)
        torch.cuda.reset_peak_memory_stats(device)
    start = time.perf_counter()
    out = run()
    if cuda:
        torch.cuda.synchronize(device)
    seconds = time.perf_counter() - start
    for hook in hooks:
        hook.remove()
    gib = torch.cuda.max_memory_allocated(device) / 2**30 if cuda else None
    return out, {"seconds": seconds, "executed_tflop": flops[0] / 1e12, "peak_gib": gib}


def paper_scores(
    model: LlamaForCausalLM, players: Players, requests: Requests, coalitions: list[str]
) -> np.ndarray:
    """lm-eval 0.4.2's loglikelihood loop, one coalition at a time: longest requests first, 2 per forward,
    right-padded with 0 and no attention mask (causal: padding cannot reach the tokens before it),
    log-softmax over every position, sum over the continuation. [coalition, request]."""
    device, max_length = model.device, model.config.max_position_embeddings
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context + requests[i].continuation))
    out = np.zeros((len(coalitions), len(requests)))
    for c, coalition in enumerate(coalitions):
        with zeroed(model, removed_players(coalition, players)), torch.inference_mode():
            for at in range(0, len(order), 2):
                pair = order[at : at + 2]
                inputs = [lm_eval_input(requests[i], max_length) for i in pair]
                ids = torch.zeros(len(pair), max(len(inp) for inp, _ in inputs), dtype=torch.long)
                rows, positions, targets = [], [], []
                for row, (inp, cont) in enumerate(inputs):
                    ids[row, : len(inp)] = torch.tensor(inp)
                    rows += [row] * len(cont)
                    positions += range(len(inp) - len(cont), len(inp))
                    targets += cont
                logprobs = torch.log_softmax(model(ids.to(device)).logits, dim=-1)
                index = [torch.tensor(a, device=device) for a in (rows, positions, targets)]
                picked = logprobs[index[0], index[1], index[2]].double().cpu().numpy()
                out[c, pair] = np.bincount(rows, weights=picked, minlength=len(pair))
    return out


def lsi_scores(
    model: LlamaForCausalLM, players: Players, requests: Requests, coalitions: list[str], args: Any
) -> np.ndarray:
    """lsi's engine on all coalitions at once (batching included in the time). [coalition, request]."""
    batches = make_batches(requests, model.config.max_position_embeddings, args.batch_tokens)
    engine = Engine(model, players, stack_tokens=args.stack_tokens)
    return score_requests(engine, batches, coalitions, len(requests))[0]


def path_figures(
    cost: dict[str, Any], n_coalitions: int, useful: int, docs: int, peak: float | None
) -> dict[str, Any]:
    """Throughput, achieved TFLOP/s and the projected hours of the paper's full study for one path:
    190 coalitions x 6 tasks x 1000 documents, each task assumed shaped like the synthetic batch
    (time linear in documents, at this run's seconds per coalition)."""
    seconds, tflops = cost["seconds"], cost["executed_tflop"] / cost["seconds"]
    study = STUDY_COALITIONS * STUDY_TASKS * STUDY_DOCS / docs
    return dict(
        cost, coalitions=n_coalitions, seconds_per_coalition=seconds / n_coalitions,
        tokens_per_s=useful * n_coalitions / seconds, tflops=tflops,
        peak_fraction=tflops / peak if peak else None,
        projected_study_hours=seconds / n_coalitions * study / 3600,
    )  # fmt: skip


def agreement(paper: np.ndarray, lsi: np.ndarray, requests: Requests) -> dict[str, float]:
    """Relative log-likelihood differences and how often both pick the same choice per document:
    by summed log-likelihood (lm-eval's acc) and per token (not decided by continuation length)."""
    rel = np.abs(lsi - paper) / np.abs(paper)
    lengths = np.array([len(r.continuation) for r in requests])
    pick = lambda ll: ll.reshape(len(ll), -1, CHOICES).argmax(-1)  # noqa: E731
    return {
        "median_rel_diff": float(np.median(rel)),
        "max_rel_diff": float(rel.max()),
        "max_abs_diff": float(np.abs(lsi - paper).max()),
        "acc_agreement": float((pick(paper) == pick(lsi)).mean()),
        "per_token_agreement": float((pick(paper / lengths) == pick(lsi / lengths)).mean()),
    }


def peak_tflops(device: torch.device, override: float | None) -> float | None:
    """Dense bf16 peak of a known card (the name tells H100 SXM, PCIe and NVL apart)."""
    if override is not None or device.type != "cuda":
        return override
    name = torch.cuda.get_device_name(device)
    return next((tf for key, tf in PEAK_BF16_TFLOPS if key in name), None)


def parse(argv: Sequence[str] | None) -> argparse.Namespace:
    """Arguments; sizes left out take the full or the tiny default."""
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--tiny", action="store_true", help="4-layer random Llama: a test that runs anywhere")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--docs", type=int, help="documents of 4 choices (default 64; tiny 6)")
    parser.add_argument("--context", type=int, help="mean context tokens (default 200; tiny 24)")
    parser.add_argument("--coalitions", type=int, help="coalitions for the paper path (default 12; tiny 4)")
    parser.add_argument("--check", type=int, default=2, help="coalitions of the float32 check")
    parser.add_argument("--batch-tokens", type=int, default=8192)
    parser.add_argument("--stack-tokens", type=int, default=32768)
    parser.add_argument("--peak-tflops", type=float, help="dense bf16 peak, where the card is not known")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", help="write every printed figure to this JSON file")
    args = parser.parse_args(argv)
    for name, full, tiny in (("docs", 64, 6), ("context", 200, 24), ("coalitions", 12, 4)):
        if getattr(args, name) is None:
            setattr(args, name, tiny if args.tiny else full)
    return args


def print_report(report: dict[str, Any]) -> None:
    """The report as a table and a few lines; the JSON holds the same figures."""
    print(f"{report['device']} | {report['model']} (random weights) | {report['docs']} docs x {CHOICES}")
    print(f"{'path':46s}" + "".join(f"{head:>9s}" for head, _, _ in COLUMNS))
    for label, f in report["paths"].items():
        cells = [f"{'-':>9s}" if f[key] is None else form.format(f[key]) for _, form, key in COLUMNS]
        print(f"{label:46s}" + "".join(cells))
    print(
        f"tok/s: {report['useful_tokens_per_coalition']} useful tokens per coalition; ratio: over the paper;"
        " TFLOP/s: executed\nLinear FLOPs; study h: 190 coalitions x 6 tasks x 1000 docs shaped like these"
    )
    check = report["fp32_check"]
    for label, a in (("lsi bf16 vs paper fp32", report["bf16_vs_paper"]), ("lsi fp32 vs paper fp32", check)):
        print(
            f"{label}: rel. diff median {a['median_rel_diff']:.2e} max {a['max_rel_diff']:.2e}"
            f" (abs {a['max_abs_diff']:.2e}); same choice {100 * a['acc_agreement']:.1f}%,"
            f" per token {100 * a['per_token_agreement']:.1f}%"
        )
    print(f"fp32 check on {len(check['coalitions'])} coalitions within 1e-3 relative: {check['passed']}")
    print(f"  paper {np.round(check['paper'][0][:4], 5)}\n  lsi   {np.round(check['lsi'][0][:4], 5)}")


def main(argv: Sequence[str] | None = None) -> dict[str, Any]:
    """Run both paths in sequence on one model (float32, then cast to bfloat16); returns the report."""
    args = parse(argv)
    device = torch.device(args.device)
    torch.set_float32_matmul_precision("highest")  # the paper's float32 is IEEE float32, not TF32
    shape = TINY if args.tiny else LLAMA3_8B
    requests = synthetic_requests(args.docs, args.context, shape["vocab_size"], args.seed)
    model = build_model(shape, device, args.seed)
    players = list_players(model, "sublayer")
    every = window_coalitions(len(players))
    subset = every[:: max(1, len(every) // args.coalitions)][: args.coalitions]  # starts with the full model
    checked = subset[: args.check]
    useful = sum(len(lm_eval_input(r, shape["max_position_embeddings"])[0]) for r in requests)
    peak = peak_tflops(device, args.peak_tflops)
    t0 = time.perf_counter()
    stage = lambda what: print(f"[{time.perf_counter() - t0:6.0f} s] {what}", flush=True)  # noqa: E731

    stage(f"paper path on {len(subset)} coalitions")
    paper_scores(model, players, requests[:2], subset[:1])  # warm-up
    paper, paper_cost = measure(model, device, lambda: paper_scores(model, players, requests, subset))
    stage(f"lsi float32 check on {len(checked)} coalitions")
    lsi32 = lsi_scores(model, players, requests, checked, args)
    cast_parameters(model, torch.bfloat16)
    gc.collect()
    if device.type == "cuda":
        torch.cuda.empty_cache()  # the float32 weights' memory goes back before lsi's activations need it
    stage(f"lsi bfloat16 on {len(subset)}, then all {len(every)} coalitions")
    lsi_scores(model, players, requests[: 2 * CHOICES], subset[:2], args)  # warm-up
    lsi16, sub_cost = measure(model, device, lambda: lsi_scores(model, players, requests, subset, args))
    _, all_cost = measure(model, device, lambda: lsi_scores(model, players, requests, every, args))

    runs = [(PAPER, paper_cost, subset), ("lsi bf16, same coalitions", sub_cost, subset)]
    runs.append((f"lsi bf16, all {len(every)} coalitions", all_cost, every))
    paths = {label: path_figures(cost, len(c), useful, args.docs, peak) for label, cost, c in runs}
    for figures in paths.values():
        figures["speedup"] = figures["tokens_per_s"] / paths[PAPER]["tokens_per_s"]
    check = agreement(paper[: len(checked)], lsi32, requests)
    report: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "argv": list(sys.argv[1:] if argv is None else argv),
        "torch": torch.__version__, "transformers": transformers.__version__,
        "device": device_label(device),
        "model": "tiny" if args.tiny else "llama-3-8b",
        "docs": args.docs, "requests": len(requests), "useful_tokens_per_coalition": useful,
        "peak_bf16_tflops": peak, "paths": paths, "bf16_vs_paper": agreement(paper, lsi16, requests),
        "fp32_check": dict(
            check, coalitions=checked, passed=check["max_rel_diff"] < 1e-3,
            paper=paper[: len(checked)].tolist(), lsi=lsi32.tolist(),
        ),
    }  # fmt: skip
    stage("done")
    print_report(report)
    if args.json:
        with open(args.json, "w") as out:
            json.dump(report, out, indent=2)
    return report


if __name__ == "__main__":
    main()
