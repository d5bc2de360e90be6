"""Speed of lsi's generation against lm-eval's HFLM `generate_until`, side by side in one process.

lm-eval: HFLM at batch size 8 on the model with the coalition's blocks deleted (`pruned_copy`) or, for
sub-layer players, its branches zeroed (computed, then zeroed); it runs each batch until every row has
stopped. lsi: the local worker's `generate` (batches of 64 sorted by prompt length, removed players skipped,
finished rows leave the batch and its KV cache). Same model, task, documents, coalitions, dtype;
texts must be identical (a document decoded through a near tie is counted, not compared). Tokens/s
counts the generated tokens each document keeps (up to its stop) over the wall time. Last, lsi decodes
all the coalitions together, as it does a game's unit of coalitions (`lsi.routing`), against the sum of
lm-eval's times.

    python benchmarks/bench_generation.py [--task nq_open] [--limit 48] [--dtype float32] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

import torch

from lsi.masking import removed_by_reference
from lsi.models import LoadedModel, load_model
from lsi.players import coalition_without, parse_players, removed_players
from lsi.provenance import now, versions
from lsi.scoring import Scorer

COALITIONS = {  # name -> (granularity, dropped players)
    "full model": ("block", ()),
    "blocks 3-4 deleted": ("block", ("block.3", "block.4")),
    "attn.5 + mlp.2 removed": ("sublayer", ("attn.5", "mlp.2")),
    "mlp.0 removed (collapsed)": ("sublayer", ("mlp.0",)),
}


def lm_eval_texts(lm: LoadedModel, scorer: Scorer, coalition: str) -> tuple[float, list[str]]:
    """HFLM generate_until over the task's instances, players removed lm-eval-side."""
    instances = [i for task in scorer.task.subtasks.values() for i in task.instances]
    with removed_by_reference(lm.model, removed_players(coalition, scorer.players)) as model:
        hflm = LoadedModel(model, lm.tokenizer, lm.identity, lm.dtype, lm.add_bos_token).hflm(8)
        start = time.perf_counter()
        texts = hflm.generate_until(instances, disable_tqdm=True)
    return time.perf_counter() - start, texts


def _together(lm: LoadedModel, args: argparse.Namespace, results: Path, texts: list, rows: list) -> dict:
    """All the coalitions decoded in shared batches (`lsi.routing`), as a game's unit of coalitions is:
    their long tails share steps. Blocks are given as both of their sub-layers, one player set."""
    scorer = Scorer(lm, args.task, args.limit, "sublayer", results)
    coalitions = [
        coalition_without(scorer.players, parse_players(_as_sublayers(drop), scorer.players))
        for _, drop in COALITIONS.values()
    ]
    start = time.perf_counter()
    generated = scorer.backend.worker.generate(scorer.job, coalitions)
    seconds = time.perf_counter() - start
    same = sum(
        a == b
        for alone, one in zip(texts, generated, strict=True)
        for a, b in zip(alone, scorer.texts(one)[0], strict=True)
    )
    record = {
        "lsi_s": seconds,
        "lsi_one_by_one_s": sum(r["lsi_s"] for r in rows),
        "lm_eval_s": sum(r["lm_eval_s"] for r in rows),
        "identical_to_one_by_one": same,
        "texts": sum(len(alone) for alone in texts),
    }
    print(
        f"{'all together':28s} lm-eval {record['lm_eval_s']:6.1f} s  lsi {seconds:6.1f} s  "
        f"x{record['lm_eval_s'] / seconds:4.1f}  (one by one {record['lsi_one_by_one_s']:.1f} s)  "
        f"identical {same}/{record['texts']}",
        flush=True,
    )
    return record


def _as_sublayers(drop: tuple[str, ...]) -> tuple[str, ...]:
    """A block's name as its two branches' names (`block.3` -> `attn.3`, `mlp.3`)."""
    names: list[str] = []
    for player in drop:
        block = player.startswith("block.")
        names += [player.replace("block", b) for b in ("attn", "mlp")] if block else [player]
    return tuple(names)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="smollm2-135m")
    parser.add_argument("--task", default="nq_open")
    parser.add_argument("--limit", type=int, default=48)
    parser.add_argument("--dtype", default="float32")
    parser.add_argument("--out", type=Path, default=None, help="write the figures as JSON")
    args = parser.parse_args()
    lm = load_model(args.model, dtype=args.dtype)
    rows, texts = [], []
    with tempfile.TemporaryDirectory() as results:
        for name, (granularity, drop) in COALITIONS.items():
            scorer = Scorer(lm, args.task, args.limit, granularity, Path(results))
            coalition = coalition_without(scorer.players, parse_players(drop, scorer.players))
            theirs_s, theirs = lm_eval_texts(lm, scorer, coalition)
            start = time.perf_counter()
            ours, ties = scorer.texts(scorer.backend.worker.generate(scorer.job, [coalition])[0])
            ours_s = time.perf_counter() - start
            texts.append(ours)
            tokens = sum(len(lm.tokenizer(text, add_special_tokens=False)["input_ids"]) + 1 for text in ours)
            same = sum(a == b for a, b in zip(ours, theirs, strict=True))
            rows.append(
                {
                    "coalition": name,
                    "lm_eval_s": theirs_s,
                    "lsi_s": ours_s,
                    "speedup": theirs_s / ours_s,
                    "tokens": tokens,
                    "lm_eval_tokens_per_s": tokens / theirs_s,
                    "lsi_tokens_per_s": tokens / ours_s,
                    "identical_texts": same,
                    "near_tie_docs": ties,
                    "docs": len(ours),
                }
            )
            print(
                f"{name:28s} lm-eval {theirs_s:6.1f} s  lsi {ours_s:6.1f} s  x{theirs_s / ours_s:4.1f}  "
                f"{tokens / ours_s:6.0f} tok/s  identical {same}/{len(ours)} (near ties {ties})",
                flush=True,
            )
        together = _together(lm, args, Path(results), texts, rows)
    record = {
        "model": lm.identity.as_dict(),
        "weights_sha256": lm.identity.weights_sha256,
        "task": args.task,
        "limit": args.limit,
        "dtype": args.dtype,
        "threads": torch.get_num_threads(),
        "lm_eval_batch_size": 8,
        "rows": rows,
        "together": together,
        "versions": versions(),
        "created": now(),
    }
    if args.out:
        args.out.write_text(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
