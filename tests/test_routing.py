"""Several coalitions decoded in one batch (`lsi.routing`) give, row for row, what each coalition gives
decoded alone under `skip`, on every supported family: same tokens, logit gaps within float error,
and the model restored exactly."""

from __future__ import annotations

import pytest
import torch
from tiny_models import FAMILIES, tiny_model

from lsi.generation import GenerationRequest, generate, generate_coalitions
from lsi.masking import skip
from lsi.players import list_players

PROMPTS = torch.randint(3, 90, (5, 14), generator=torch.Generator().manual_seed(1))
# Prompts of different lengths (left padding), sequences past the sliding window of 8, a stop string.
REQUESTS = [
    GenerationRequest(tuple(PROMPTS[i, : 6 + 2 * i].tolist()), ("7 1",) if i == 2 else (), 6 + i)
    for i in range(4)
]
COALITIONS = [(), ("attn.0",), ("mlp.1", "attn.2"), ("attn.0", "mlp.0", "attn.3", "mlp.3")]


def _decode(tokens: list[int]) -> str:
    return " ".join(map(str, tokens))


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    return request.param, tiny_model(request.param)


def _removed(family, model):
    ffn = "moe" if family == "mixtral" else "mlp"
    by_name = {p.name: p for p in list_players(model, "sublayer")}
    return [[by_name[n.replace("mlp", ffn)] for n in names] for names in COALITIONS]


def test_coalitions_decoded_together_equal_each_alone(family_model):
    """Batches of 7 rows split the 16 rows' coalitions and documents unevenly."""
    family, model = family_model
    removed = _removed(family, model)
    state = {k: v.clone() for k, v in model.state_dict().items()}
    names = [n for n, _ in model.named_modules()]
    alone = []
    for players in removed:
        with skip(model, players):
            alone.append(generate(model, REQUESTS, _decode))
    together = generate_coalitions(model, REQUESTS, removed, _decode, rows=7)
    for players, one, many in zip(COALITIONS, alone, together, strict=True):
        assert [g.tokens for g in many] == [g.tokens for g in one], f"{family} without {players}"
        assert [g.min_gap for g in many] == pytest.approx([g.min_gap for g in one], abs=1e-4)
    lengths = {len(g.tokens) for coalition in together for g in coalition}
    assert len(lengths) > 1  # rows left their batches at different steps
    assert [n for n, _ in model.named_modules()] == names
    assert all(torch.equal(state[k], v) for k, v in model.state_dict().items())


@pytest.mark.parametrize("family", ["llama", "gemma3_text"])
def test_a_coalition_without_every_player_passes_the_embedding_through(family):
    """A row whose coalition drops every block shares a batch with full rows: it decodes as the
    empty model does alone."""
    model = tiny_model(family)
    players = list_players(model, "block")
    everything = [[], players]
    with skip(model, players):
        empty = generate(model, REQUESTS[:2], _decode)
    together = generate_coalitions(model, REQUESTS[:2], everything, _decode)
    assert [g.tokens for g in together[1]] == [g.tokens for g in empty]


def test_the_prompt_runs_once_per_shared_prefix_of_blocks():
    """Three coalitions that part at block 2 run each prompt once through blocks 0 and 1; at block 2 the
    full model and the one without mlp.3 still share (they kept the same players so far), and at block 3
    only the rows that did the same at block 2 do."""
    model = tiny_model("llama")
    by_name = {p.name: p for p in list_players(model, "sublayer")}
    removed = [[], [by_name["attn.2"]], [by_name["mlp.3"]]]
    prompt_rows: list[tuple[int, int]] = []

    def record(block: int):
        def hook(module, args):
            if args[0].shape[1] > 1:  # the prompt's forward, not a decoding step
                prompt_rows.append((block, args[0].shape[0]))

        return hook

    handles = [block.register_forward_pre_hook(record(b)) for b, block in enumerate(model.model.layers)]
    try:
        generate_coalitions(model, REQUESTS, removed, _decode)
    finally:
        for handle in handles:
            handle.remove()
    n = len(REQUESTS)
    assert prompt_rows == [(0, n), (1, n), (2, n), (2, n), (3, 2 * n), (3, n)]
