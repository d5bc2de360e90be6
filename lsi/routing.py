"""One batch, many coalitions: each row of a batch runs the model with its own players removed.

Decoding is memory-bound on a CPU: a step streams every kept weight once whether it serves one row or
thirty, so a coalition whose last rows run to their token budget pays nearly a full step per token
for one row. Rows of several coalitions decoded together share those weight reads wherever their
coalitions keep the same player.

While `routed` is active, every block of the model is wrapped: rows that keep the whole block run it
together, rows that keep one branch run it with the other swapped for `lsi.masking.Removed`, and rows
that drop the block pass through unchanged. Each such group keeps its own KV cache (a `DynamicCache`
of the model's config, so sliding-window layers stay sliding) holding exactly its rows, while the
model's own cache (`RoutedCache`) holds one-number placeholders, as a removed attention does, so that
sequence lengths and masks come out as for any batch. Row for row this is the computation of
`lsi.masking.skip` for that row's coalition.

The prompt is computed once per shared prefix of coalitions: rows that hold the same prompt and have
so far kept and removed the same players enter a block with the same hidden states, so in the first
forward (the prompt) each group runs one of them and copies its output and KV cache to the others.
Two coalitions that differ only from block b on share the prompt's computation through block b - 1;
decoding then runs per row, since the rows' tokens may part.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass

import torch
from torch import nn
from transformers import DynamicCache
from transformers.cache_utils import Cache

from lsi.architectures import architecture, get_path
from lsi.masking import branches_removed, removal_plan
from lsi.players import Player


@dataclass
class _Group:
    """Rows (batch positions) that run one block with the same branches removed, and their cache."""

    removed: tuple[str, ...]  # branches skipped ("attn", "mlp"/"moe"); empty: the whole block runs
    rows: torch.Tensor
    cache: Cache | None  # None where the group's attention is removed
    # For the prompt's forward only: the positions in `rows` that run, and each row's among them.
    prompt: tuple[torch.Tensor, torch.Tensor] | None = None


class RoutedCache(DynamicCache):
    """The model's cache during a routed batch: placeholders for lengths and masks; dropping rows
    (`batch_select_indices`, as `lsi.generation` does when rows finish) drops them from every group."""

    def __init__(self, config: object, groups: list[list[_Group]], n_rows: int) -> None:
        super().__init__(config=config)
        self.groups = groups
        self.n_rows = n_rows

    def batch_select_indices(self, indices: torch.Tensor) -> None:
        super().batch_select_indices(indices)
        where = torch.full((self.n_rows,), -1, dtype=torch.long)
        where[indices.cpu()] = torch.arange(len(indices))
        self.n_rows = len(indices)
        for block in self.groups:
            for group in list(block):
                kept = where[group.rows] >= 0
                if not kept.any():
                    block.remove(group)
                    continue
                if group.cache is not None and not kept.all():
                    group.cache.batch_select_indices(torch.nonzero(kept).flatten().to(indices.device))
                group.rows = where[group.rows[kept]]


class _RoutedBlock(nn.Module):
    """A block that runs each group of rows as its coalitions ask."""

    def __init__(self, model: nn.Module, block: nn.Module, index: int, groups: list[_Group]) -> None:
        super().__init__()
        self.block = block
        self.index = index
        self.groups = groups
        self._model = [model]  # kept out of the module tree

    def forward(self, hidden_states: torch.Tensor, *args: object, **kwargs: object) -> torch.Tensor:
        n_rows = hidden_states.shape[0]
        shared = next((v for v in (*args, *kwargs.values()) if isinstance(v, Cache)), None)
        out = hidden_states.clone()
        for group in self.groups:
            rows = group.rows.to(hidden_states.device)
            run, spread = rows, None
            if group.prompt is not None:
                first, spread = (t.to(hidden_states.device) for t in group.prompt)
                run, group.prompt = rows[first], None
            own_args = [_take(value, run, n_rows, group.cache) for value in args]
            own_kwargs = {key: _take(value, run, n_rows, group.cache) for key, value in kwargs.items()}
            with branches_removed(self._model[0], self.block, group.removed):
                result = self.block(hidden_states[run], *own_args, **own_kwargs)
            if spread is not None:
                result = result[spread]
                if group.cache is not None:
                    group.cache.batch_select_indices(spread)
            out[rows] = result
        if shared is not None:  # the lengths every layer's mask and positions are read from
            placeholder = hidden_states.new_zeros(n_rows, 1, hidden_states.shape[1], 1)
            shared.update(placeholder, placeholder, self.index)
        return out


def _take(value: object, rows: torch.Tensor, n_rows: int, cache: Cache | None) -> object:
    """A block's argument for some of its rows: the model's cache becomes the group's, per-row tensors
    (masks, positions, rotary tables) are sliced, and anything else (broadcast tensors, flags) passes."""
    if isinstance(value, Cache):
        return cache
    if isinstance(value, torch.Tensor) and value.dim() and value.shape[0] == n_rows:
        return value[rows]
    if isinstance(value, tuple):
        return tuple(_take(v, rows, n_rows, cache) for v in value)
    return value


def _groups(
    removed: Sequence[Sequence[Player]], prompts: Sequence[int], n_blocks: int, config: object
) -> list[list[_Group]]:
    """Per block, its groups of rows (rows that drop the block are in none), each knowing which of its
    rows enter the block with the same hidden states during the prompt."""
    plans = [removal_plan(players, n_blocks) for players in removed]
    # What each row does at a block: None drops it, else the branches it skips there.
    steps = [
        [tuple(partial.get(b, ())) if b in kept else None for b in range(n_blocks)] for kept, partial in plans
    ]
    prefix = list(prompts)  # rows with equal ids hold equal hidden states before the current block
    blocks = []
    for b in range(n_blocks):
        members: dict[tuple[str, ...], list[int]] = {}
        for row, step in enumerate(steps):
            if step[b] is not None:
                members.setdefault(step[b], []).append(row)
        blocks.append(
            [
                _Group(
                    kinds,
                    torch.tensor(rows),
                    None if "attn" in kinds else DynamicCache(config=config),
                    _shared([prefix[row] for row in rows]),
                )
                for kinds, rows in sorted(members.items())
            ]
        )
        ids: dict[tuple[int, tuple[str, ...] | None], int] = {}
        prefix = [ids.setdefault((prefix[row], step[b]), len(ids)) for row, step in enumerate(steps)]
    return blocks


def _shared(keys: list[int]) -> tuple[torch.Tensor, torch.Tensor] | None:
    """The first position of each distinct key, and each position's index among those firsts; None
    when the keys are all distinct (nothing to share)."""
    firsts: list[int] = []
    where: dict[int, int] = {}
    spread = []
    for position, key in enumerate(keys):
        if key not in where:
            where[key] = len(firsts)
            firsts.append(position)
        spread.append(where[key])
    return None if len(firsts) == len(keys) else (torch.tensor(firsts), torch.tensor(spread))


@contextmanager
def routed(
    model: nn.Module, removed: Sequence[Sequence[Player]], prompts: Sequence[int] | None = None
) -> Iterator[RoutedCache]:
    """The model with row i of the next batch run without `removed[i]`; yields the cache to pass to
    its first forward (and its later ones). Rows with equal `prompts` ids hold the same prompt, whose
    shared prefix is computed once. The model is restored exactly on exit."""
    arch = architecture(model)
    layers = get_path(model, arch.layers)
    prompts = range(len(removed)) if prompts is None else prompts
    groups = _groups(removed, prompts, len(layers), model.config)
    originals = list(layers)
    try:
        for b, block in enumerate(originals):
            layers[b] = _RoutedBlock(model, block, b, groups[b])
        yield RoutedCache(model.config, groups, len(removed))
    finally:
        for b, block in enumerate(originals):
            layers[b] = block
