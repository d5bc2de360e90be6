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
            own_args = [_take(value, rows, n_rows, group.cache) for value in args]
            own_kwargs = {key: _take(value, rows, n_rows, group.cache) for key, value in kwargs.items()}
            with branches_removed(self._model[0], self.block, group.removed):
                out[rows] = self.block(hidden_states[rows], *own_args, **own_kwargs)
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


def _groups(removed: Sequence[Sequence[Player]], n_blocks: int, config: object) -> list[list[_Group]]:
    """Per block, its groups of rows (rows that drop the block are in none)."""
    per_block: list[dict[tuple[str, ...], list[int]]] = [{} for _ in range(n_blocks)]
    for row, players in enumerate(removed):
        kept, partial = removal_plan(players, n_blocks)
        for b in kept:
            per_block[b].setdefault(tuple(partial.get(b, ())), []).append(row)
    return [
        [
            _Group(kinds, torch.tensor(rows), None if "attn" in kinds else DynamicCache(config=config))
            for kinds, rows in sorted(block.items())
        ]
        for block in per_block
    ]


@contextmanager
def routed(model: nn.Module, removed: Sequence[Sequence[Player]]) -> Iterator[RoutedCache]:
    """The model with row i of the next batch run without `removed[i]`; yields the cache to pass to
    its first forward (and its later ones). The model is restored exactly on exit."""
    arch = architecture(model)
    layers = get_path(model, arch.layers)
    groups = _groups(removed, len(layers), model.config)
    originals = list(layers)
    try:
        for b, block in enumerate(originals):
            layers[b] = _RoutedBlock(model, block, b, groups[b])
        yield RoutedCache(model.config, groups, len(removed))
    finally:
        for b, block in enumerate(originals):
            layers[b] = block
