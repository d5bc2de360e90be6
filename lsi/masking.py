"""Remove players from a model: by skipping (fast, the default), by zeroing (the paper's way), or by
building a smaller model with the blocks deleted (the reference that both must equal).

Skipping a block takes it out of the layer list and renumbers the survivors, which is exactly a
model with that block deleted. Skipping one branch of a block swaps the branch for `Removed`,
which returns zeros without computing anything, so the residual stream passes through unchanged.
Every change is undone on exit, leaving the model exactly as it was.
"""

from __future__ import annotations

import copy
from collections.abc import Iterable, Iterator, Sequence
from contextlib import ExitStack, contextmanager, suppress

import torch
from torch import nn
from transformers import AutoModelForCausalLM
from transformers.cache_utils import Cache

from lsi.architectures import Architecture, architecture, get_path, set_path
from lsi.errors import UserError
from lsi.players import Player

_CACHE_KWARGS = ("cache", "past_key_values", "layer_past")


class Removed(nn.Module):
    """Stands in for a removed branch: a zero output of the right width, nothing computed.

    A removed attention still records a one-number-wide placeholder in the KV cache, so that the
    cache's sequence length (which transformers reads from the first layer) stays right during
    generation; the placeholder is never read.
    """

    def __init__(self, width: int, attention: nn.Module | None = None) -> None:
        super().__init__()
        self.width = width
        # Kept out of the module tree (no parameters, no state_dict entries): only its layer_idx is read.
        self._attention = [attention] if attention is not None else []

    def forward(self, *args: object, **kwargs: object) -> torch.Tensor | tuple[torch.Tensor, None]:
        x = args[0] if args else kwargs["hidden_states"]
        assert isinstance(x, torch.Tensor)
        out = x.new_zeros(*x.shape[:-1], self.width)
        if not self._attention:
            return out
        cache = next((kwargs[k] for k in _CACHE_KWARGS if isinstance(kwargs.get(k), Cache)), None)
        if cache is not None:
            placeholder = x.new_zeros(x.shape[0], 1, x.shape[1], 1)
            cache.update(placeholder, placeholder, self._attention[0].layer_idx)
        return out, None


def branch_paths(arch: Architecture, kind: str) -> tuple[str, ...]:
    """Attribute paths, inside a block, of the modules that make up one branch."""
    return (arch.attn,) if kind == "attn" else arch.ffn


def _stand_ins(model: nn.Module, block: nn.Module, kind: str) -> list[tuple[str, nn.Module]]:
    """(path, Removed) pairs that skip one branch of a block."""
    arch = architecture(model)
    width = model.config.hidden_size
    if kind == "attn":
        return [(arch.attn, Removed(width, attention=get_path(block, arch.attn)))]
    # Every FFN module before the last returns an empty tensor; the last returns the residual's width.
    return [(path, Removed(0)) for path in arch.ffn[:-1]] + [(arch.ffn[-1], Removed(width))]


@contextmanager
def branches_removed(model: nn.Module, block: nn.Module, kinds: Iterable[str]) -> Iterator[None]:
    """Temporarily swap the given branches ("attn", "mlp"/"moe") of one block for `Removed`."""
    saved: list[tuple[str, nn.Module]] = []
    try:
        for kind in kinds:
            for path, stand_in in _stand_ins(model, block, kind):
                saved.append((path, get_path(block, path)))
                set_path(block, path, stand_in)
        yield
    finally:
        for path, original in reversed(saved):
            set_path(block, path, original)


def removal_plan(removed: Iterable[Player], n_blocks: int) -> tuple[list[int], dict[int, list[str]]]:
    """Kept block indices, and for kept blocks the branches to skip."""
    per_block: dict[int, set[str]] = {}
    for p in removed:
        if not 0 <= p.block < n_blocks:
            raise UserError(f"player {p.name} is out of range: the model has blocks 0..{n_blocks - 1}")
        per_block.setdefault(p.block, set()).add(p.kind)
    dropped = {b for b, kinds in per_block.items() if "block" in kinds or len(kinds) == 2}
    kept = [b for b in range(n_blocks) if b not in dropped]
    partial = {b: sorted(kinds) for b, kinds in per_block.items() if b not in dropped}
    return kept, partial


@contextmanager
def skip(model: nn.Module, removed: Iterable[Player]) -> Iterator[nn.Module]:
    """The model with the given players skipped, as a context; restored exactly on exit.

    Works for plain forwards and for `generate` with the KV cache.
    """
    arch = architecture(model)
    layers = get_path(model, arch.layers)
    kept, partial = removal_plan(removed, len(layers))
    config = model.config
    saved_config = {k: getattr(config, k) for k in ("num_hidden_layers", "layer_types") if hasattr(config, k)}
    renumbered: list[tuple[nn.Module, int]] = []
    with ExitStack() as stack:
        try:
            set_path(model, arch.layers, nn.ModuleList([layers[b] for b in kept]))
            # Renumbered before any branch is swapped out, so that a removed attention (held aside by
            # its stand-in) also gets its new index: the stand-in's cache placeholder goes there.
            for new_index, b in enumerate(kept):
                for module in layers[b].modules():
                    if getattr(module, "layer_idx", None) == b:
                        renumbered.append((module, b))
                        module.layer_idx = new_index
            for b, kinds in partial.items():
                stack.enter_context(branches_removed(model, layers[b], kinds))
            config.num_hidden_layers = len(kept)
            if saved_config.get("layer_types") is not None:
                config.layer_types = [saved_config["layer_types"][b] for b in kept]
            yield model
        finally:
            for module, b in renumbered:
                module.layer_idx = b
            set_path(model, arch.layers, layers)
            for key, value in saved_config.items():
                setattr(config, key, value)


def _zero_output(_module: nn.Module, _inputs: object, output: object) -> object:
    if isinstance(output, tuple):
        return (torch.zeros_like(output[0]), *output[1:])
    return torch.zeros_like(output)


@contextmanager
def zeroed(model: nn.Module, removed: Iterable[Player]) -> Iterator[nn.Module]:
    """The paper's removal: forward hooks zero each removed branch's output (it is still computed)."""
    arch = architecture(model)
    layers = get_path(model, arch.layers)
    handles = []
    try:
        for p in removed:
            kinds = ("attn", "ffn") if p.kind == "block" else (p.kind,)
            for kind in kinds:
                path = arch.attn if kind == "attn" else arch.ffn[-1]
                handles.append(get_path(layers[p.block], path).register_forward_hook(_zero_output))
        yield model
    finally:
        for handle in handles:
            with suppress(Exception):
                handle.remove()


def pruned_copy(model: nn.Module, kept_blocks: Iterable[int]) -> nn.Module:
    """A fresh, smaller model holding only the kept blocks: the reference a skipped model must equal.

    Built from a copied config and the original weights re-keyed to new block numbers, so it shares
    no code path with `skip`.
    """
    arch = architecture(model)
    kept = list(kept_blocks)
    config = copy.deepcopy(model.config)
    config.num_hidden_layers = len(kept)
    if getattr(config, "layer_types", None) is not None:
        config.layer_types = [config.layer_types[b] for b in kept]
    smaller = AutoModelForCausalLM.from_config(config, dtype=model.dtype)
    prefix = arch.layers + "."
    renumber = {b: i for i, b in enumerate(kept)}
    state = {}
    for key, value in model.state_dict().items():
        if key.startswith(prefix):
            block, _, rest = key[len(prefix) :].partition(".")
            if int(block) not in renumber:
                continue
            key = f"{prefix}{renumber[int(block)]}.{rest}"
        state[key] = value
    smaller.load_state_dict(state, strict=True)
    return smaller.to(next(model.parameters()).device).eval()


@contextmanager
def removed_by_reference(model: nn.Module, dropped: Sequence[Player]) -> Iterator[nn.Module]:
    """The model with `dropped` removed without skipping, for lm-eval to run on in the equivalence
    tests and benchmarks: whole blocks deleted (a smaller copy), branches zeroed by hooks."""
    if dropped and all(p.kind == "block" for p in dropped):
        n_blocks = len(get_path(model, architecture(model).layers))
        yield pruned_copy(model, [b for b in range(n_blocks) if b not in {p.block for p in dropped}])
    else:
        with zeroed(model, dropped):
            yield model
