"""A pruned checkpoint: the model without some players, saved so that plain transformers (and lm-eval's
HFLM) load it without lsi.

Whole blocks are deleted and the survivors renumbered (`masking.pruned_copy`, the reference that
skipping equals). A removed branch inside a kept block cannot be deleted from a standard config, so
its output projection's weight and bias are zeroed: the branch then adds exact zeros to the residual,
which is what skipping it does. The copy is built fresh from the config, which is also how a
GGUF-loaded model is saved at all (transformers will not `save_pretrained` one).
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from transformers import PreTrainedModel

from lsi.architectures import architecture, get_path
from lsi.errors import UserError
from lsi.masking import pruned_copy, removal_plan
from lsi.models import LoadedModel
from lsi.players import Player, list_players, parse_players
from lsi.provenance import now, versions

RECORD = "lsi-pruned.json"  # what was dropped from which model, written beside the weights


def named_players(model: torch.nn.Module, names: Iterable[str]) -> tuple[Player, ...]:
    """Players named at either granularity ("block.3", "attn.5", "mlp.2" mixed freely)."""
    names = [n.strip() for n in names if n.strip()]
    blocks = [n for n in names if n.startswith("block.")]
    branches = [n for n in names if not n.startswith("block.")]
    return parse_players(blocks, list_players(model, "block")) + parse_players(
        branches, list_players(model, "sublayer")
    )


def pruned_model(model: PreTrainedModel, dropped: Sequence[Player]) -> PreTrainedModel:
    """A standalone model equal to `model` with `dropped` skipped: blocks deleted, branches zeroed."""
    arch = architecture(model)
    n_blocks = len(get_path(model, arch.layers))
    kept, partial = removal_plan(dropped, n_blocks)
    if not kept:
        raise UserError(
            f"dropping {', '.join(p.name for p in dropped)} removes every block: keep at least one"
        )
    smaller = pruned_copy(model, kept)
    layers = get_path(smaller, arch.layers)
    with torch.no_grad():
        for block, kinds in partial.items():
            for kind in kinds:
                out = get_path(layers[kept.index(block)], arch.attn_out if kind == "attn" else arch.ffn_out)
                params = [out] if isinstance(out, torch.nn.Parameter) else list(out.parameters(recurse=False))
                for param in params:
                    param.zero_()
    config = smaller.config
    config.use_cache = True  # lsi scores without the cache; a checkpoint is for generating too
    if hasattr(config, "quantization_config"):
        del config.quantization_config  # the weights are dequantised: a plain checkpoint
    return smaller


def free_folder(out: Path, force: bool) -> Path:
    """`out`, refused when it exists without `force` (checked before a model is loaded)."""
    out = Path(out)
    if out.exists() and not force:
        raise UserError(f"{out} exists; pass --force to replace it, or choose another --out")
    return out


def write_pruned(lm: LoadedModel, dropped: Sequence[Player], out: Path, force: bool = False) -> Path:
    """Save the pruned model, its tokenizer and a record of what was dropped into `out`.

    Written into a sibling temporary folder and moved into place, so an interrupted export leaves no
    half checkpoint; an existing `out` is replaced only with `force`."""
    out = free_folder(out, force)
    if not dropped:
        raise UserError("no players to drop: pass --drop with at least one player (see `lsi players`)")
    model = pruned_model(lm.model, dropped)
    n_blocks = lm.identity.n_blocks
    kept, partial = removal_plan(dropped, n_blocks)
    out.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{out.name}-", dir=out.parent))
    try:
        model.save_pretrained(staging)
        lm.tokenizer.save_pretrained(staging)
        record = {
            "source": lm.identity.as_dict(),
            "dtype": lm.dtype,
            "dropped": [p.name for p in dropped],
            "kept_blocks": kept,
            "zeroed_branches": {f"block {kept.index(b)} (was {b})": kinds for b, kinds in partial.items()},
            "num_hidden_layers": len(kept),
            "add_bos_token": lm.add_bos_token,
            "made": {"date": now(), "versions": versions()},
        }
        (staging / RECORD).write_text(json.dumps(record, indent=1) + "\n")
        _usual_permissions(staging)
        if out.exists():
            shutil.rmtree(out)
        staging.rename(out)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return out


def _usual_permissions(folder: Path) -> None:
    """mkdtemp (and the safetensors writer) make owner-only files; a checkpoint is shared like any other."""
    umask = os.umask(0)
    os.umask(umask)
    folder.chmod(0o777 & ~umask)
    for path in folder.iterdir():
        path.chmod(0o666 & ~umask)
