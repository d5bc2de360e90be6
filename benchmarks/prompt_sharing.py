"""The prompt's prefix tree in `lsi.routing`: how much of a generative unit's prompt computation it
saves, counted and timed.

Count: over the blocks of a 30-block model, the rows each block runs during the prompt with and without
sharing, for every unit of the window estimator's coalitions as the scorer cuts generative work
(8 coalitions, the same documents in each). Time: one prompt forward of the embedded model in float32
under `routed`, shared (rows of one document carry one prompt id) against not shared (every row its
own id), alternately, on the first and a middle unit; prompts are random tokens (the cost depends only
on their length). Last-position logits of the two must agree to float error.

    python benchmarks/prompt_sharing.py [--docs 32] [--prompt-tokens 30] [--rounds 2]
"""

from __future__ import annotations

import argparse
import inspect
import statistics
import time

import torch
import transformers as T

from lsi.models import load_model
from lsi.players import list_players, removed_players, window_coalitions
from lsi.routing import _groups, routed
from lsi.scoring import GENERATION_CHUNK


def units(n_players: int) -> list[list[str]]:
    """The window coalitions in the scorer's order, cut into generative units."""
    coalitions = sorted(window_coalitions(n_players, 3), reverse=True)
    return [coalitions[at : at + GENERATION_CHUNK] for at in range(0, len(coalitions), GENERATION_CHUNK)]


def count(docs: int) -> None:
    config = T.LlamaConfig(num_hidden_layers=30, hidden_size=8, intermediate_size=8, num_attention_heads=1)
    model = T.AutoModelForCausalLM.from_config(config)  # only its structure is read
    for granularity in ("block", "sublayer"):
        players = list_players(model, granularity)
        every = shared = 0
        cut = units(len(players))
        for unit in cut:
            removed = [removed_players(c, players) for c in unit for _ in range(docs)]
            prompts = [doc for _ in unit for doc in range(docs)]
            for block in _groups(removed, prompts, 30, config):
                for group in block:
                    every += len(group.rows)
                    shared += len(group.rows) if group.prompt is None else len(group.prompt[0])
        print(
            f"count  {granularity:8s} {sum(map(len, cut))} window coalitions, {docs} documents: "
            f"prompt block-rows {every:,} -> {shared:,} ({every / shared:.2f}x fewer)"
        )


@torch.inference_mode()
def prompt_forward(model: torch.nn.Module, ids: torch.Tensor, removed: list, prompts: list[int]) -> tuple:
    cache_name = "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"
    start = time.perf_counter()
    with routed(model, removed, prompts) as cache:
        logits = model(input_ids=ids, use_cache=True, logits_to_keep=1, **{cache_name: cache}).logits
    return time.perf_counter() - start, logits


def timing(docs: int, tokens: int, rounds: int) -> None:
    torch.set_num_threads(2)
    lm = load_model("smollm2-135m", dtype="float32")
    players = list_players(lm.model, "block")
    prompt = torch.randint(100, 20000, (docs, tokens), generator=torch.Generator().manual_seed(0))
    all_units = units(len(players))
    for name, unit in (("first unit", all_units[0]), ("middle unit", all_units[len(all_units) // 2])):
        removed = [removed_players(c, players) for c in unit for _ in range(docs)]
        ids = prompt.repeat(len(unit), 1)
        settings = {"shared": [d for _ in unit for d in range(docs)], "not shared": list(range(len(ids)))}
        seconds: dict[str, list[float]] = {key: [] for key in settings}
        logits = {}
        for _ in range(rounds):
            for key, prompts in settings.items():
                took, logits[key] = prompt_forward(lm.model, ids, removed, prompts)
                seconds[key].append(took)
        diff = (logits["shared"] - logits["not shared"]).abs().max().item()
        base = statistics.median(seconds["not shared"])
        own = statistics.median(seconds["shared"])
        print(
            f"time   {name:11s} ({len(unit)} coalitions x {docs} prompts of {tokens} tokens, float32): "
            f"not shared {base:.2f} s, shared {own:.2f} s, {base / own:.2f}x; max |logit diff| {diff:.1e}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=32)
    parser.add_argument("--prompt-tokens", type=int, default=30)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    count(args.docs)
    timing(args.docs, args.prompt_tokens, args.rounds)


if __name__ == "__main__":
    main()
