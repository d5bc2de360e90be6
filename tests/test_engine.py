"""The packed prefix-tree engine gives the log-likelihoods of a plain forward of each request on the
model with the players removed by zeroing hooks (the paper's way), on every family."""

from __future__ import annotations

import random

import numpy as np
import pytest
import torch
from tiny_models import FAMILIES, tiny_model

from lsi.engine import Engine, TokenRequest, lm_eval_input, make_batches, score_requests, target_logprobs
from lsi.masking import zeroed
from lsi.players import list_players, removed_players

MAX_LENGTH = 24  # shorter than some requests: lm-eval's left truncation is exercised
TOL = 1e-4


def _requests(seed: int = 0) -> list[TokenRequest]:
    """Documents with 1, 2 or 4 choices sharing a context, contexts of 3..30 tokens."""
    rng = random.Random(seed)
    out = []
    for _ in range(7):
        context = tuple(rng.randrange(3, 90) for _ in range(rng.randrange(3, 30)))
        for _ in range(rng.choice([1, 2, 4])):
            out.append(TokenRequest(context, tuple(rng.randrange(3, 90) for _ in range(rng.randrange(1, 6)))))
    return out


REQUESTS = _requests()
SUBLAYER_COALITIONS = ["11111111", "01111111", "11011111", "11110011", "10101010", "00000000"]
BLOCK_COALITIONS = ["1111", "0111", "1010", "0000"]


def _reference(model, request: TokenRequest) -> float:
    """What lm-eval computes for one request: one unpadded forward, log-softmax, summed targets."""
    inp, cont = lm_eval_input(request, MAX_LENGTH)
    with torch.no_grad():
        logprobs = torch.log_softmax(model(torch.tensor([inp])).logits[0].float(), -1)
    positions = range(len(inp) - len(cont), len(inp))
    return sum(logprobs[p, t].item() for p, t in zip(positions, cont, strict=True))


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("granularity", ["sublayer", "block"])
def test_engine_equals_zeroed_forward(family, granularity):
    model = tiny_model(family)
    players = list_players(model, granularity)
    coalitions = SUBLAYER_COALITIONS if granularity == "sublayer" else BLOCK_COALITIONS
    batches = make_batches(REQUESTS, MAX_LENGTH, batch_tokens=64)
    loglik, _ = score_requests(Engine(model, players), batches, coalitions, len(REQUESTS))
    for row, coalition in zip(loglik, coalitions, strict=True):
        with zeroed(model, removed_players(coalition, players)):
            expected = np.array([_reference(model, r) for r in REQUESTS])
        np.testing.assert_allclose(row, expected, atol=TOL, rtol=0)


@pytest.mark.parametrize("stack_tokens", [1, 16384])
def test_prefix_tree_equals_scoring_each_coalition_alone(stack_tokens):
    """Without stacking (one block call per tree node) the tree is bit for bit the coalition alone;
    stacking sibling nodes into one call changes kernel shapes, so float rounding only."""
    model = tiny_model("llama")
    engine = Engine(model, list_players(model, "sublayer"), stack_tokens=stack_tokens)
    batches = make_batches(REQUESTS, MAX_LENGTH, batch_tokens=64)
    together, greedy = score_requests(engine, batches, SUBLAYER_COALITIONS, len(REQUESTS))
    for i, coalition in enumerate(SUBLAYER_COALITIONS):
        alone, alone_greedy = score_requests(engine, batches, [coalition], len(REQUESTS))
        if stack_tokens == 1:
            assert np.array_equal(alone[0], together[i])
        else:
            np.testing.assert_allclose(alone[0], together[i], atol=1e-5, rtol=0)
        assert np.array_equal(alone_greedy[0], greedy[i])


def test_shared_contexts_and_batching_do_not_change_results():
    model = tiny_model("gemma3_text")  # sliding window of 8: masks on packed rows must honour it
    engine = Engine(model, list_players(model, "block"))
    packed = score_requests(engine, make_batches(REQUESTS, MAX_LENGTH, 64), BLOCK_COALITIONS, len(REQUESTS))[
        0
    ]
    one_by_one = make_batches(REQUESTS, MAX_LENGTH, 1, share_contexts=False)
    assert len(one_by_one) == len(REQUESTS)
    single = score_requests(engine, one_by_one, BLOCK_COALITIONS, len(REQUESTS))[0]
    np.testing.assert_allclose(packed, single, atol=TOL, rtol=0)


def test_batches_respect_budgets_and_cover_every_scored_token():
    batches = make_batches(REQUESTS, MAX_LENGTH, batch_tokens=64, max_rows=3)
    for batch in batches:
        rows, width = batch.input_ids.shape
        assert rows <= 3 and (rows == 1 or rows * width <= 64)
    scored_per_request = np.zeros(len(REQUESTS), dtype=int)
    for batch in batches:
        np.add.at(scored_per_request, batch.owner.numpy(), 1)
    assert scored_per_request.tolist() == [len(r.continuation) for r in REQUESTS]
    # Without truncation each document's context is packed once, all its choices in one row.
    untruncated = make_batches(REQUESTS, 1000, batch_tokens=64, max_rows=3)
    assert sum(b.input_ids.shape[0] for b in untruncated) == len({r.context for r in REQUESTS})
    # With truncation, requests share a row only where their truncated inputs share the prefix.
    prefixes = set()
    for r in REQUESTS:
        inp, cont = lm_eval_input(r, MAX_LENGTH)
        prefixes.add(inp[: len(inp) - len(cont) + 1])
    assert sum(b.input_ids.shape[0] for b in batches) == len(prefixes) < len(REQUESTS)


def test_greedy_flags_match_argmax():
    model = tiny_model("qwen2")
    players = list_players(model, "block")
    request = REQUESTS[0]
    inp, cont = lm_eval_input(request, MAX_LENGTH)
    with torch.no_grad():
        logits = model(torch.tensor([inp])).logits[0]
    positions = range(len(inp) - len(cont), len(inp))
    expected = all(logits[p].argmax().item() == t for p, t in zip(positions, cont, strict=True))
    greedy_target = TokenRequest(
        request.context, tuple(logits[len(inp) - len(cont)].argmax().item() for _ in [0])
    )
    batches = make_batches([request, greedy_target], MAX_LENGTH, 64)
    _, greedy = score_requests(Engine(model, players), batches, ["1111"], 2)
    assert greedy[0, 0] == expected
    assert greedy[0, 1]  # a one-token continuation equal to the argmax is greedy


@pytest.mark.parametrize("softcap", [None, 30.0])
def test_target_logprobs_equal_log_softmax_and_argmax(softcap):
    """The row-chunked head reduction equals a plain float32 log_softmax and argmax, ties included."""
    gen = torch.Generator().manual_seed(0)
    logits = (torch.randn(37, 500, generator=gen) * 4).bfloat16()  # 37 rows: a partial last chunk
    targets = torch.randint(0, 500, (37,), generator=gen)
    targets[:5] = logits[:5].float().argmax(-1)  # greedy rows
    logits[5, 10] = logits[5, 11] = logits[5].max() + 1  # tied maxima
    targets[5] = 11  # tied with an earlier token: not greedy (argmax takes the first)
    targets[6] = logits[6].float().argmax(-1)
    token_lp, is_max = target_logprobs(logits, targets, softcap)
    reference = logits.float()
    if softcap is not None:
        reference = torch.tanh(reference / softcap) * softcap
    expected_lp = torch.log_softmax(reference, -1).gather(1, targets[:, None])[:, 0].double()
    assert token_lp.dtype == torch.float64
    assert torch.allclose(token_lp, expected_lp, atol=1e-5, rtol=0)
    assert torch.equal(is_max, reference.argmax(-1) == targets)
    assert is_max[:5].all() and not is_max[5] and is_max[6]
