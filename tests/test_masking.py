"""Removal by skipping equals removal by zeroing (the paper's hooks) and a model with the blocks
deleted, on every supported family; the model is restored exactly; the KV cache stays right."""

from __future__ import annotations

import pytest
import torch
from tiny_models import FAMILIES, N_BLOCKS, tiny_model

from lsi.architectures import UnsupportedModelError, architecture, get_path
from lsi.masking import pruned_copy, skip, zeroed
from lsi.players import list_players, player_parameters

IDS = torch.randint(3, 90, (2, 20), generator=torch.Generator().manual_seed(0))
TOL = 1e-5


def _logits(model, ids=IDS):
    with torch.no_grad():
        return model(ids).logits


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    return request.param, tiny_model(request.param)


@pytest.mark.parametrize("removed_blocks", [(0,), (1, 3), (0, 1, 2, 3)])
def test_block_skip_equals_zeroing_and_deletion(family_model, removed_blocks):
    _, model = family_model
    players = list_players(model, "block")
    removed = [players[b] for b in removed_blocks]
    full = _logits(model)
    with skip(model, removed):
        skipped = _logits(model)
    with zeroed(model, removed):
        zeroed_ = _logits(model)
    deleted = _logits(pruned_copy(model, [b for b in range(N_BLOCKS) if b not in removed_blocks]))
    assert (skipped - zeroed_).abs().max() <= TOL
    assert (skipped - deleted).abs().max() <= TOL
    assert (skipped - full).abs().max() > 1e-2  # the removal changed something
    assert torch.equal(_logits(model), full)  # restored exactly


@pytest.mark.parametrize("removed_names", [("attn.0",), ("mlp.0", "attn.1"), ("attn.0", "mlp.2", "attn.3")])
def test_sublayer_skip_equals_zeroing(family_model, removed_names):
    family, model = family_model
    players = list_players(model, "sublayer")
    ffn = "moe" if family == "mixtral" else "mlp"
    by_name = {p.name: p for p in players}
    removed = [by_name[n.replace("mlp", ffn)] for n in removed_names]
    full = _logits(model)
    with skip(model, removed):
        skipped = _logits(model)
    with zeroed(model, removed):
        zeroed_ = _logits(model)
    assert (skipped - zeroed_).abs().max() <= TOL
    assert (skipped - full).abs().max() > 1e-3
    assert torch.equal(_logits(model), full)


def test_skip_restores_config_and_modules(family_model):
    _, model = family_model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config_before = model.config.to_dict()
    names_before = [n for n, _ in model.named_modules()]
    players = list_players(model, "sublayer")
    with skip(model, [players[0], players[3], players[4], players[5]]):
        assert model.config.num_hidden_layers == N_BLOCKS - 1
    assert model.config.to_dict() == config_before
    assert [n for n, _ in model.named_modules()] == names_before
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize(
    "removed_names", [("attn.0",), ("block.0",), ("attn.1", "mlp.2"), ("attn.0", "mlp.0", "attn.2")]
)
def test_kv_cache_generation_on_reduced_model(family_model, removed_names):
    """Cached and uncached decoding agree, also without the first attention (the cache length is
    read from the first cache layer), and with a block deleted before a removed attention (whose
    cache placeholder must go to the attention's new index)."""
    family, model = family_model
    granularity = "block" if removed_names[0].startswith("block") else "sublayer"
    ffn = "moe" if family == "mixtral" else "mlp"
    by_name = {p.name: p for p in list_players(model, granularity)}
    removed = [by_name[n.replace("mlp", ffn)] for n in removed_names]
    ids = IDS[:1, :12]
    with skip(model, removed), torch.no_grad():
        # One incremental step with the cache equals the full forward on the longer sequence.
        full_last = model(ids).logits[:, -1]
        prefix = model(ids[:, :-1], use_cache=True)
        step = model(ids[:, -1:], cache=prefix.cache, use_cache=True).logits[:, -1]
        assert (full_last - step).abs().max() <= 1e-4
        kwargs = dict(max_new_tokens=10, do_sample=False, pad_token_id=0)
        cached = model.generate(ids, use_cache=True, **kwargs)
        uncached = model.generate(ids, use_cache=False, **kwargs)
    assert torch.equal(cached, uncached)


def test_player_sizes_are_what_removal_takes_away(family_model):
    """A block's count is what deleting it takes from the model; its branches hold all of it but its
    norms (1-D vectors), so no weight matrix is left uncounted or counted twice."""
    family, model = family_model
    blocks = player_parameters(model, list_players(model, "block"))
    total = sum(t.numel() for t in model.parameters())
    assert total - sum(t.numel() for t in pruned_copy(model, [1, 2]).parameters()) == (
        blocks["block.0"] + blocks["block.3"]
    )
    branches = player_parameters(model, list_players(model, "sublayer"))
    arch = architecture(model)
    counted = tuple(f"{path}." for path in (arch.attn, *arch.ffn, arch.attn_post, arch.ffn_post) if path)
    for b, block in enumerate(get_path(model, arch.layers)):
        attn, ffn = branches[f"attn.{b}"], branches[f"{arch.ffn_kind}.{b}"]
        outside = [t for name, t in block.named_parameters() if not name.startswith(counted)]
        assert attn > 0 and ffn > 0 and all(t.dim() == 1 for t in outside)
        assert attn + ffn + sum(t.numel() for t in outside) == blocks[f"block.{b}"]
    if family == "llama":  # hidden 32, 4 heads of 8, 2 key-value heads, FFN 48: q, k, v, o and gate, up, down
        assert branches["attn.0"] == 32 * 32 + 2 * 32 * 16 + 32 * 32
        assert branches["mlp.0"] == 3 * 32 * 48


def test_unsupported_architecture_is_named():
    import transformers as T

    model = T.AutoModelForCausalLM.from_config(
        T.BloomConfig(vocab_size=64, hidden_size=32, n_layer=2, n_head=4)
    )
    with pytest.raises(UnsupportedModelError, match="unsupported architecture 'bloom'.*supported: gemma2"):
        architecture(model)


def test_post_norm_opt_is_refused():
    import transformers as T

    model = T.AutoModelForCausalLM.from_config(
        T.OPTConfig(
            vocab_size=64,
            hidden_size=32,
            ffn_dim=48,
            num_hidden_layers=2,
            num_attention_heads=4,
            word_embed_proj_dim=32,
            do_layer_norm_before=False,
        )
    )
    with pytest.raises(UnsupportedModelError, match="post-norm OPT"):
        architecture(model)
