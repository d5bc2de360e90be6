"""Greedy generation by a model with players removed: lm-eval's generate_until, decoded by lsi.

The model runs under `lsi.masking.skip`, so a removed block or branch costs nothing at any step
(its KV cache holds a one-number placeholder). Requests are decoded in batches sorted by prompt
length, left-padded as lm-eval's HFLM pads them; a row leaves the batch (and its KV cache) as soon
as it has produced a stop string, its end-of-sequence token or its token budget, so a batch's cost
follows the rows still running rather than its longest. Each step records how close the top two
logits were: a near tie is where two correct computation orders may pick different tokens.
`generate_coalitions` decodes the same requests under several coalitions in shared batches
(`lsi.routing`), so that their long tails share steps and each prompt runs once through the blocks
its coalitions treat alike.

This module is torch and transformers only (no lm-eval): the token prompts, stop strings and
budgets come from lm-eval's own request handling (`lsi.scoring`), and texts are cut at the stop
strings there.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass

import torch
from torch import nn
from transformers.cache_utils import Cache

from lsi.errors import UserError
from lsi.players import Player
from lsi.routing import routed


@dataclass(frozen=True)
class GenerationRequest:
    """One generate_until request as lm-eval's HFLM prepares it."""

    context: tuple[int, ...]  # prompt tokens, left-truncated to max_length - max_gen_toks
    until: tuple[str, ...]  # stop strings, the end-of-sequence text included
    max_gen_toks: int


@dataclass(frozen=True)
class Generated:
    tokens: tuple[int, ...]  # generated tokens, up to and including the one that stopped the row
    min_gap: float  # the smallest top-1 minus top-2 logit over its steps (inf: no step)


def eos_ids(model: nn.Module) -> set[int]:
    """The token ids that end a row, as `model.generate` reads them from the generation config."""
    eos = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    if eos is None:
        eos = model.config.eos_token_id
    return {eos} if isinstance(eos, int) else set(eos or ())


# Generation-config settings that change what greedy decoding picks, with their neutral values.
_NEUTRAL = {
    "repetition_penalty": (None, 1.0),
    "no_repeat_ngram_size": (None, 0),
    "bad_words_ids": (None,),
    "suppress_tokens": (None,),
    "begin_suppress_tokens": (None,),
    "forced_bos_token_id": (None,),
    "forced_eos_token_id": (None,),
    "min_new_tokens": (None, 0),
    "min_length": (None, 0),
}


def check_plain_greedy(model: nn.Module) -> None:
    """Refuse a generation config that `model.generate` would apply on top of greedy decoding:
    lm-eval's texts would then differ from this loop's."""
    config = getattr(model, "generation_config", None)
    changed = [k for k, neutral in _NEUTRAL.items() if getattr(config, k, None) not in neutral]
    if changed:
        raise UserError(
            f"the model's generation config sets {', '.join(changed)}, which lsi's greedy decoding does not "
            "apply; reset them (model.generation_config) to score generation tasks"
        )


def _stopped(tokens: list[int], until: Sequence[str], decode: Callable[[list[int]], str]) -> bool:
    """Whether the text so far holds a stop string. Only the last tokens are decoded each step (a stop
    string that just completed lies within as many tokens as it has characters, plus a margin for
    partial characters); the whole text confirms a hit, so a row never stops before its first stop."""
    terms = [term for term in until if term]
    tail = decode(tokens[-(max(map(len, terms), default=0) + 3) :])
    return any(term in tail for term in terms) and any(term in decode(tokens) for term in terms)


@torch.inference_mode()
def generate(
    model: nn.Module,
    requests: Sequence[GenerationRequest],
    decode: Callable[[list[int]], str],
    rows: int = 64,
    on_batch: Callable[[], None] | None = None,
) -> list[Generated]:
    """Greedy continuations of every request, in request order. `decode` turns generated tokens into
    text (special tokens skipped, as lm-eval decodes) for the stop strings."""
    return _decode(model, requests, decode, rows, on_batch, lambda batch: nullcontext())


@torch.inference_mode()
def generate_coalitions(
    model: nn.Module,
    requests: Sequence[GenerationRequest],
    removed: Sequence[Sequence[Player]],
    decode: Callable[[list[int]], str],
    rows: int = 64,
    on_batch: Callable[[], None] | None = None,
) -> list[list[Generated]]:
    """Every request's greedy continuation under each coalition (given by the players it removes),
    decoded together: a batch holds the same documents under several coalitions (`lsi.routing`), so
    the rows that run to their token budget share their steps instead of each paying a full one, and
    each prompt is computed once per prefix of blocks its coalitions share."""
    flat = [request for _ in removed for request in requests]
    n = len(requests)  # row i holds request i % n under coalition i // n

    def route(batch: list[int]) -> AbstractContextManager[Cache]:
        return routed(model, [removed[i // n] for i in batch], [i % n for i in batch])

    out = _decode(model, flat, decode, rows, on_batch, route)
    return [out[c * len(requests) : (c + 1) * len(requests)] for c in range(len(removed))]


def _decode(
    model: nn.Module,
    requests: Sequence[GenerationRequest],
    decode: Callable[[list[int]], str],
    rows: int,
    on_batch: Callable[[], None] | None,
    route: Callable[[list[int]], AbstractContextManager[Cache | None]],
) -> list[Generated]:
    """Batches sorted by prompt length, each decoded under `route(batch)`, which yields its first cache."""
    check_plain_greedy(model)
    order = sorted(range(len(requests)), key=lambda i: -len(requests[i].context))
    out: list[Generated | None] = [None] * len(requests)
    stop = eos_ids(model)
    device = model.get_input_embeddings().weight.device
    for at in range(0, len(order), rows):
        batch = order[at : at + rows]
        with route(batch) as cache:
            generated = _batch(model, [requests[i] for i in batch], decode, stop, device, cache)
        for i, one in zip(batch, generated, strict=True):
            out[i] = one
        if on_batch is not None:
            on_batch()
    return out  # type: ignore[return-value]


def _batch(
    model: nn.Module,
    requests: list[GenerationRequest],
    decode: Callable[[list[int]], str],
    stop: set[int],
    device: torch.device,
    cache: Cache | None = None,
) -> list[Generated]:
    width = max(len(r.context) for r in requests)
    ids = torch.zeros(len(requests), width, dtype=torch.long)
    mask = torch.zeros(len(requests), width, dtype=torch.long)
    for row, request in enumerate(requests):
        ids[row, width - len(request.context) :] = torch.tensor(request.context)
        mask[row, width - len(request.context) :] = 1
    # Positions as `generate` makes them for left padding: count real tokens, padding at 1.
    positions = (mask.cumsum(-1) - 1).masked_fill(mask == 0, 1)
    tokens: list[list[int]] = [[] for _ in requests]
    gaps = [float("inf")] * len(requests)
    live = list(range(len(requests)))  # rows still generating, in the order the cache holds them
    # transformers 5.24 names the KV cache `cache`; earlier 5.x `past_key_values`.
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    step_ids, step_positions = ids, positions
    while live:
        output = model(
            input_ids=step_ids.to(device),
            attention_mask=mask.to(device),
            position_ids=step_positions.to(device),
            use_cache=True,
            logits_to_keep=1,
            **{cache_name: cache},
        )
        cache = getattr(output, cache_name)
        logits = output.logits[:, -1].float()
        top = logits.topk(2, dim=-1).values
        chosen = logits.argmax(-1).tolist()
        keep = []
        for slot, row in enumerate(live):
            token = chosen[slot]
            tokens[row].append(token)
            gaps[row] = min(gaps[row], float(top[slot, 0] - top[slot, 1]))
            done = token in stop or len(tokens[row]) >= requests[row].max_gen_toks
            if not done and _stopped(tokens[row], requests[row].until, decode):
                done = True
            if not done:
                keep.append(slot)
        if len(keep) < len(live):
            if keep:
                index = torch.tensor(keep, device=device)
                cache.batch_select_indices(index)
            mask, step_positions_last = mask[keep], step_positions[keep, -1:]
            live = [live[slot] for slot in keep]
        else:
            step_positions_last = step_positions[:, -1:]
        if not live:
            break
        step_ids = torch.tensor([[tokens[row][-1]] for row in live])
        step_positions = step_positions_last + 1
        mask = torch.cat([mask, torch.ones(len(live), 1, dtype=torch.long)], dim=1)
    return [Generated(tuple(t), g) for t, g in zip(tokens, gaps, strict=True)]
