"""The one-pass measures on every family: the hooked branch outputs rebuild each block's output, and
each measure equals the same quantity computed another way (hidden states, skipped branches)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from tiny_models import FAMILIES, N_BLOCKS, tiny_model

from lsi.engine import TokenRequest
from lsi.masking import skip
from lsi.measures import branch_outputs, lm_eval_inputs, one_pass_measures
from lsi.players import list_players

SEQS = [np.random.default_rng(i).integers(3, 90, size=n) for i, n in enumerate((12, 7, 12, 5))]


def _hidden(model, seq, removed=()):
    with torch.no_grad(), skip(model, removed):
        return model(torch.as_tensor(seq)[None], output_hidden_states=True).hidden_states


def _cos(a, b):
    return torch.nn.functional.cosine_similarity(a.double(), b.double(), dim=-1)


@pytest.fixture(scope="module", params=FAMILIES)
def family_model(request):
    return request.param, tiny_model(request.param)


def test_branch_outputs_rebuild_each_block(family_model):
    _, model = family_model
    with branch_outputs(model) as seen, torch.no_grad():
        model(torch.as_tensor(SEQS[0])[None])
        for t in seen:
            rebuilt = t["x"] + t["attn"].reshape(t["x"].shape) + t["ffn"].reshape(t["x"].shape)
            torch.testing.assert_close(rebuilt, t["y"], atol=1e-5, rtol=1e-5)


def test_measures_equal_hidden_states_and_skipped_branches(family_model):
    """Against output_hidden_states (blocks before the last, whose output is normed there) and against
    the block's output with its FFN or attention skipped, which is the residual the other branch sees."""
    family, model = family_model
    got = one_pass_measures(model, SEQS, batch_tokens=64)
    players = list_players(model, "sublayer")
    parallel = family == "gpt_neox"
    tokens = sum(len(s) for s in SEQS)
    for b in range(N_BLOCKS - 1):
        bi = attn = ffn = 0.0
        for seq in SEQS:
            hs = _hidden(model, seq)
            x, y = hs[b][0], hs[b + 1][0]
            bi += (1 - _cos(x, y)).sum().item()
            without_ffn = _hidden(model, seq, [players[2 * b + 1]])[b + 1][0]  # x + attn
            attn += (1 - _cos(x, without_ffn)).sum().item()
            if parallel:  # the FFN reads x: x + ffn is the output without the attention
                ffn += (1 - _cos(x, _hidden(model, seq, [players[2 * b]])[b + 1][0])).sum().item()
            else:
                ffn += (1 - _cos(without_ffn, y)).sum().item()
        assert got.block_influence[b] == pytest.approx(bi / tokens, abs=1e-5)
        assert got.llm_drop[b] == pytest.approx([attn / tokens, ffn / tokens], abs=1e-5)
    last = [np.stack([_hidden(model, s)[b][0, -1].double().numpy() for s in SEQS]) for b in range(N_BLOCKS)]
    for i in range(N_BLOCKS):
        for j in range(N_BLOCKS):
            cos = (
                np.sum(last[i] * last[j], 1)
                / np.linalg.norm(last[i], axis=1)
                / np.linalg.norm(last[j], axis=1)
            )
            expected = np.mean(np.arccos(np.clip(cos, -1, 1)) / math.pi)
            assert got.angular[i, j] == pytest.approx(expected, abs=1e-4)


def test_padding_changes_nothing():
    model = tiny_model("llama")
    alone = [one_pass_measures(model, [s]) for s in SEQS]
    together = one_pass_measures(model, SEQS, batch_tokens=10_000)
    weights = np.array([len(s) for s in SEQS]) / sum(len(s) for s in SEQS)
    np.testing.assert_allclose(
        together.block_influence,
        sum(w * m.block_influence for w, m in zip(weights, alone, strict=True)),
        atol=1e-6,
    )
    np.testing.assert_allclose(together.angular, np.mean([m.angular for m in alone], 0), atol=1e-6)
    assert together.tokens == sum(len(s) for s in SEQS) and together.sequences == len(SEQS)


def test_best_spans_pick_the_closest_pair():
    model = tiny_model("qwen2")
    got = one_pass_measures(model, SEQS)
    for span in got.best_spans():
        k, start = span["k"], span["first_block"]
        assert span["distance"] == min(got.angular[s, s + k] for s in range(N_BLOCKS - k + 1))
        assert got.angular[start, start + k] == span["distance"]


def test_lm_eval_inputs_drop_the_last_token_and_duplicates():
    requests = [TokenRequest((1, 2, 3), (4, 5)), TokenRequest((1, 2, 3), (4, 5)), TokenRequest((1, 2), (9,))]
    got = lm_eval_inputs(requests, max_length=3)
    assert [s.tolist() for s in got] == [[2, 3, 4], [1, 2]]
