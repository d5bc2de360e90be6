"""Where each supported model family keeps its blocks, sub-layers and output head.

One small table instead of per-family forward copies: the engine calls the family's own
decoder-layer modules and only needs to know their attribute names.
"""

from __future__ import annotations

from dataclasses import dataclass

from torch import nn


@dataclass(frozen=True)
class Architecture:
    """Attribute paths of one family (dotted, relative to the CausalLM module or to a block)."""

    layers: str  # ModuleList of decoder blocks
    attn: str  # attention sub-module inside a block
    ffn: tuple[str, ...]  # modules that make up the FFN branch; the last one feeds the residual
    tail: tuple[str, ...]  # modules applied after the last block, in order (final norm, projections, head)
    ffn_kind: str = "mlp"  # "moe" for mixture-of-experts FFNs
    # Inside a block, the module (or parameter) whose output each branch adds to the residual: zeroing
    # its weight and bias removes that branch from a saved checkpoint exactly (lsi.prune).
    attn_out: str = "self_attn.o_proj"
    ffn_out: str = "mlp.down_proj"
    # Families with sandwich norms normalise a branch's output before the residual adds it: the
    # module whose output is the branch's contribution to the residual (None: the branch itself).
    attn_post: str | None = None
    ffn_post: str | None = None


_PRE_NORM = Architecture(
    layers="model.layers", attn="self_attn", ffn=("mlp",), tail=("model.norm", "lm_head")
)
_SANDWICH = Architecture(
    layers="model.layers",
    attn="self_attn",
    ffn=("mlp",),
    tail=("model.norm", "lm_head"),
    attn_post="post_attention_layernorm",
    ffn_post="post_feedforward_layernorm",
)

ARCHITECTURES: dict[str, Architecture] = {
    "llama": _PRE_NORM,
    "mistral": _PRE_NORM,
    "qwen2": _PRE_NORM,
    "qwen3": _PRE_NORM,
    "gemma2": _SANDWICH,
    "gemma3_text": _SANDWICH,
    "phi3": _PRE_NORM,
    "olmo2": _SANDWICH,
    "mixtral": Architecture(
        layers="model.layers",
        attn="self_attn",
        ffn=("mlp",),
        tail=("model.norm", "lm_head"),
        ffn_kind="moe",
        ffn_out="mlp.experts.down_proj",  # every expert's down projection, one stacked parameter
    ),
    "gpt2": Architecture(
        layers="transformer.h",
        attn="attn",
        ffn=("mlp",),
        tail=("transformer.ln_f", "lm_head"),
        attn_out="attn.c_proj",
        ffn_out="mlp.c_proj",
    ),
    "gpt_neox": Architecture(
        layers="gpt_neox.layers",
        attn="attention",
        ffn=("mlp",),
        tail=("gpt_neox.final_layer_norm", "lm_head"),
        attn_out="attention.dense",
        ffn_out="mlp.dense_4h_to_h",
    ),
    # OPT has no FFN module: fc1 -> activation -> fc2. Removing the FFN replaces fc1 and fc2.
    "opt": Architecture(
        layers="model.decoder.layers",
        attn="self_attn",
        ffn=("fc1", "fc2"),
        tail=("model.decoder.final_layer_norm", "model.decoder.project_out", "lm_head"),
        attn_out="self_attn.out_proj",
        ffn_out="fc2",
    ),
}


class UnsupportedModelError(ValueError):
    """The model's family is not in the table, or is a variant whose removal is not well defined."""


def architecture(model: nn.Module) -> Architecture:
    """The table entry for a loaded CausalLM, refusing variants where skipping is not the identity."""
    model_type = model.config.model_type
    if model_type not in ARCHITECTURES:
        raise UnsupportedModelError(
            f"unsupported architecture '{model_type}'; supported: {', '.join(sorted(ARCHITECTURES))}. "
            "Add its attribute paths to lsi/architectures.py::ARCHITECTURES to support it."
        )
    if model_type == "opt" and not model.config.do_layer_norm_before:
        raise UnsupportedModelError(
            "post-norm OPT (do_layer_norm_before=False, e.g. opt-350m) is not supported: there a removed "
            "sub-layer still passes through its LayerNorm, so removal is not skipping; use another OPT size."
        )
    return ARCHITECTURES[model_type]


def get_path(root: nn.Module, path: str) -> nn.Module | None:
    """Follow a dotted path; None where the family leaves that module out (OPT's project_out)."""
    obj: nn.Module | None = root
    for part in path.split("."):
        obj = getattr(obj, part, None)
        if obj is None:
            return None
    return obj


def set_path(root: nn.Module, path: str, module: nn.Module) -> None:
    """Replace the module at a dotted path."""
    parent, _, name = path.rpartition(".")
    setattr(get_path(root, parent) if parent else root, name, module)
