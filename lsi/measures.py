"""The one-pass importance measures of the depth-pruning literature, from one forward of the full model
over the very token sequences lm-eval feeds it for a task.

- Block Influence (ShortGPT, Men et al. 2024, arXiv:2403.03853): 1 - cos(block input, block output),
  averaged over every non-padding token. Taken from hooks on the blocks, because the model's last
  `hidden_states` already has the final norm applied.
- Angular distance (Gromov et al. 2024, "The Unreasonable Ineffectiveness of the Deeper Layers",
  arXiv:2403.17887): arccos(cos(x_l, x_{l+k})) / pi between the last token's inputs of blocks l and
  l + k (x_n is the last block's output); for each k the span l .. l+k-1 with the smallest distance
  is the one to drop.
- LLM-Drop (He et al. 2024, "What Matters in Transformers? Not All Attention is Needed",
  arXiv:2406.15786): 1 - cos(X, X + F(LN(X))) per attention or FFN branch, X the residual stream
  the branch reads and F(LN(X)) what it adds to it.

Low values mean "changes its input little": such players are pruned first.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from lsi.architectures import architecture, get_path
from lsi.engine import TokenRequest, lm_eval_input
from lsi.hardware import bfloat16_matmuls


@dataclass(frozen=True)
class OnePassMeasures:
    """Per-block and per-branch means over the tokens, and the angular distances of the last token."""

    block_influence: np.ndarray  # (blocks,)
    llm_drop: np.ndarray  # (blocks, 2): attention, FFN
    angular: np.ndarray  # (blocks + 1, blocks + 1): mean arccos(cos)/pi of last-token states
    tokens: int  # non-padding tokens averaged over
    sequences: int

    def best_spans(self) -> list[dict[str, float | int]]:
        """For each span length k, Gromov et al.'s choice: the k consecutive blocks whose input and
        output (last token) are closest in angle."""
        n = len(self.block_influence)
        spans = []
        for k in range(1, n):
            distances = [self.angular[start, start + k] for start in range(n - k + 1)]
            start = int(np.argmin(distances))
            spans.append(
                {"k": k, "first_block": start, "last_block": start + k - 1, "distance": distances[start]}
            )
        return spans


def _tensor(value: object) -> torch.Tensor:
    return value[0] if isinstance(value, tuple) else value  # some families return (hidden, extras)


def _cos(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    return nn.functional.cosine_similarity(a.float(), b.float(), dim=-1)


@contextmanager
def branch_outputs(model: nn.Module) -> Iterator[list[dict[str, torch.Tensor]]]:
    """Per block, the tensors of the latest forward: its input `x`, the attention's and the FFN's
    contributions to the residual `attn` and `ffn`, and its output `y` (hooks removed on exit)."""
    arch = architecture(model)
    layers = get_path(model, arch.layers)
    seen: list[dict[str, torch.Tensor]] = [{} for _ in layers]
    handles = []

    def keep(i: int, key: str):  # noqa: ANN202 - a hook
        return lambda _m, _args, output: seen[i].__setitem__(key, _tensor(output))

    def keep_input(i: int):  # noqa: ANN202 - a hook
        def hook(_m: nn.Module, args: tuple, kwargs: dict) -> None:
            seen[i]["x"] = args[0] if args else kwargs["hidden_states"]

        return hook

    try:
        for i, block in enumerate(layers):
            handles.append(block.register_forward_pre_hook(keep_input(i), with_kwargs=True))
            handles.append(block.register_forward_hook(keep(i, "y")))
            attn = get_path(block, arch.attn_post or arch.attn)
            ffn = get_path(block, arch.ffn_post or arch.ffn[-1])
            handles.append(attn.register_forward_hook(keep(i, "attn")))
            handles.append(ffn.register_forward_hook(keep(i, "ffn")))
        yield seen
    finally:
        for handle in handles:
            handle.remove()


def _batches(sequences: Sequence[np.ndarray], batch_tokens: int) -> Iterator[list[np.ndarray]]:
    """Sequences sorted by length, grouped so that a padded batch holds at most `batch_tokens`."""
    batch: list[np.ndarray] = []
    for seq in sorted(sequences, key=len, reverse=True):
        if batch and len(batch[0]) * (len(batch) + 1) > batch_tokens:
            yield batch
            batch = []
        batch.append(seq)
    if batch:
        yield batch


def one_pass_measures(
    model: nn.Module, sequences: Sequence[np.ndarray], pad_id: int = 0, batch_tokens: int = 4096
) -> OnePassMeasures:
    """Block Influence, LLM-Drop and angular distances over `sequences` (token ids, one forward each)."""
    n = len(get_path(model, architecture(model).layers))
    parallel = bool(getattr(model.config, "use_parallel_residual", False))  # GPT-NeoX: both read x
    device = next(model.parameters()).device
    bi = torch.zeros(n, dtype=torch.float64)
    drop = torch.zeros(n, 2, dtype=torch.float64)
    angular = torch.zeros(n + 1, n + 1, dtype=torch.float64)
    tokens = 0
    with branch_outputs(model) as seen, torch.no_grad(), bfloat16_matmuls(device):
        for batch in _batches(sequences, batch_tokens):
            lengths = torch.tensor([len(s) for s in batch])
            ids = torch.full((len(batch), int(lengths.max())), pad_id, dtype=torch.long)
            for row, seq in enumerate(batch):
                ids[row, : len(seq)] = torch.as_tensor(seq)
            mask = (torch.arange(ids.shape[1])[None] < lengths[:, None]).to(device)
            # The body only: the hooks read the blocks, and the head would cost a vocabulary-wide
            # product per token (Gemma-3's 262k outputs outweigh its blocks).
            model.base_model(input_ids=ids.to(device), attention_mask=mask.long(), use_cache=False)
            rows = torch.arange(len(batch), device=device)
            last = []
            for i, t in enumerate(seen):
                x, y = t["x"], t["y"]
                bi[i] += ((1 - _cos(x, y)) * mask).sum().double().cpu()
                attn, ffn = t["attn"].reshape(x.shape), t["ffn"].reshape(x.shape)  # OPT's FFN runs flat
                read_by_ffn = x if parallel else x + attn
                drop[i, 0] += ((1 - _cos(x, x + attn)) * mask).sum().double().cpu()
                drop[i, 1] += ((1 - _cos(read_by_ffn, read_by_ffn + ffn)) * mask).sum().double().cpu()
                last.append(x[rows, lengths.to(device) - 1])
                t.clear()
            last.append(y[rows, lengths.to(device) - 1])
            states = nn.functional.normalize(torch.stack(last, dim=1).double(), dim=-1)  # (rows, n+1, H)
            cos = (states @ states.transpose(1, 2)).clamp(-1, 1)
            angular += (torch.arccos(cos) / math.pi).sum(0).cpu()  # float64: arccos is steep near 1
            tokens += int(lengths.sum())
    return OnePassMeasures(
        (bi / tokens).numpy(),
        (drop / tokens).numpy(),
        (angular / len(sequences)).numpy(),
        tokens,
        len(sequences),
    )


def lm_eval_inputs(requests: Sequence[TokenRequest], max_length: int) -> list[np.ndarray]:
    """The distinct token sequences lm-eval runs for these requests: context + continuation without its
    last token (a generation request: its context), cut from the left to the model's length."""
    seen: dict[bytes, np.ndarray] = {}
    for r in requests:
        kept = lm_eval_input(r, max_length)[0] if r.continuation else r.context[-max_length:]
        seq = np.asarray(kept, dtype=np.int64)
        seen.setdefault(seq.tobytes(), seq)
    return list(seen.values())
