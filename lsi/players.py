"""Players of the layer game and coalitions over them.

A coalition is always the set of *kept* players. On disk and on the command line it is a bit
string in player order ("1" = kept), which stays readable and sorts so that coalitions sharing
a prefix of kept/removed players sit next to each other.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from lsi.choices import Granularity
from lsi.errors import UserError

if TYPE_CHECKING:  # the read side lists coalitions without torch
    from torch import nn


@dataclass(frozen=True)
class Player:
    """One removable unit: a whole block, or the attention / FFN / MoE branch of one block."""

    name: str  # "block.3", "attn.3", "mlp.3", "moe.3"
    kind: str  # "block", "attn", "mlp" or "moe"
    block: int  # decoder block it belongs to
    index: int  # position in player order


def list_players(model: nn.Module, granularity: str) -> tuple[Player, ...]:
    """Players of a model in forward order (attn.0, mlp.0, attn.1, ... for sub-layers)."""
    granularity = Granularity.parse(granularity).value
    from lsi.architectures import architecture, get_path

    arch = architecture(model)
    n_blocks = len(get_path(model, arch.layers))
    if granularity == "block":
        kinds: tuple[str, ...] = ("block",)
    else:
        kinds = ("attn", arch.ffn_kind)
    names = [(f"{kind}.{b}", kind, b) for b in range(n_blocks) for kind in kinds]
    return tuple(Player(name, kind, block, i) for i, (name, kind, block) in enumerate(names))


def player_parameters(model: nn.Module, players: Iterable[Player]) -> dict[str, int]:
    """Parameters in each player's modules (a sub-layer: its branch and, in sandwich-norm families, the
    norm after it), i.e. what a runtime that skips the player need not hold. Players differ in size
    (an attention branch is a fraction of an FFN), so a pruning curve over players removed compares
    orders that remove different amounts of the model; this puts them on one scale. A checkpoint from
    `lsi prune` deletes whole blocks but keeps a removed branch's weights, zeroed."""
    from lsi.architectures import architecture, get_path

    arch = architecture(model)
    layers = get_path(model, arch.layers)
    paths = {"attn": (arch.attn, arch.attn_post), arch.ffn_kind: (*arch.ffn, arch.ffn_post)}
    sizes = {}
    for p in players:
        block = layers[p.block]
        modules = [block] if p.kind == "block" else [get_path(block, path) for path in paths[p.kind] if path]
        sizes[p.name] = sum(t.numel() for m in modules if m is not None for t in m.parameters())
    return sizes


def parse_players(names: Iterable[str], players: tuple[Player, ...]) -> tuple[Player, ...]:
    """Look up players by name, with an error that says what exists."""
    by_name = {p.name: p for p in players}
    found = []
    for raw in names:
        name = raw.strip()
        if not name:
            continue
        if name not in by_name:
            granularity = "block" if players[0].kind == "block" else "sublayer"
            kind = name.partition(".")[0]
            if (kind == "block") != (granularity == "block") and kind in ("block", "attn", "mlp", "moe"):
                other = "block" if kind == "block" else "sublayer"
                raise UserError(
                    f"player '{name}' belongs to granularity '{other}', not '{granularity}'; "
                    f"pass --granularity {other}"
                )
            raise UserError(
                f"unknown player '{name}' for granularity '{granularity}'; players are "
                f"{players[0].name} .. {players[-1].name} (see `lsi players`)"
            )
        found.append(by_name[name])
    return tuple(found)


def full_coalition(players: tuple[Player, ...]) -> str:
    return "1" * len(players)


def coalition_without(players: tuple[Player, ...], removed: Iterable[Player]) -> str:
    """Bit string keeping every player except the removed ones."""
    out = ["1"] * len(players)
    for p in removed:
        out[p.index] = "0"
    return "".join(out)


def single_removals(n_players: int) -> list[str]:
    """The n coalitions that each remove exactly one player, in player order."""
    return ["".join("0" if j == i else "1" for j in range(n_players)) for i in range(n_players)]


def window_coalitions(n_players: int, max_removed: int = 3) -> list[str]:
    """The paper's window coalitions: the full model, then every run of 1..max_removed consecutive
    players removed, shortest runs first (the coalitions the `window` estimator scores)."""
    sizes = range(1, max_removed + 1)
    return ["1" * n_players] + [
        "1" * start + "0" * size + "1" * (n_players - start - size)
        for size in sizes
        for start in range(n_players - size + 1)
    ]


def removed_players(coalition: str, players: tuple[Player, ...]) -> tuple[Player, ...]:
    """Players a coalition leaves out, validating its length and alphabet."""
    if len(coalition) != len(players) or set(coalition) - {"0", "1"}:
        raise UserError(
            f"coalition '{coalition}' is not a bit string of length {len(players)} (one bit per player)"
        )
    return tuple(p for p, bit in zip(players, coalition, strict=True) if bit == "0")
