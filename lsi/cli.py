"""`lsi` command line: parse, call the package, print. No logic lives only here."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from lsi.store import ScoreStore, store_dir

DEFAULT_MODEL = "smollm2-135m"


def _common(parser: argparse.ArgumentParser, task: bool = True) -> None:
    parser.add_argument(
        "--model", default=DEFAULT_MODEL, help="embedded name, .gguf file, checkpoint dir or hub id"
    )
    parser.add_argument("--granularity", default="block", choices=("block", "sublayer"))
    if task:
        parser.add_argument("--task", required=True, help="lm-eval task name (see `lsi tasks`)")
        parser.add_argument(
            "--limit", type=int, default=None, help="lm-eval limit: first N documents (per subtask)"
        )
        parser.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
        parser.add_argument(
            "--results", type=Path, default=Path("results"), help="folder holding the score stores"
        )
        parser.add_argument("--json", action="store_true", help="print one JSON object instead of a table")


def _runtime(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--batch-size", type=int, default=64, help="most packed rows per forward batch")
    parser.add_argument("--batch-tokens", type=int, default=4096, help="most tokens (with padding) per batch")
    parser.add_argument(
        "--threads", type=int, default=None, help="torch CPU threads (default: torch's choice)"
    )


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lsi", description="Layer Shapley importance for LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("players", help="list a model's players, one per line")
    _common(p, task=False)
    p.add_argument("--dtype", default="float32", choices=("float32", "bfloat16", "float16"))
    p = sub.add_parser("score", help="score one coalition (all players but the dropped ones)")
    _common(p)
    _runtime(p)
    p.add_argument("--drop", default="", help="comma-separated players to remove, e.g. attn.0,mlp.3")
    p = sub.add_parser("ablate", help="score the full model and every single-player removal")
    _common(p)
    _runtime(p)
    p = sub.add_parser("scores", help="print every stored coalition of a store (no model is loaded)")
    _common(p)
    sub.add_parser("models", help="list the models available offline")
    sub.add_parser("tasks", help="list the tasks available offline")
    return parser


def _quiet_libraries() -> None:
    """Keep the CLI's output to its own table and progress bar."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    for name in ("lm_eval", "lm-eval", "transformers", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)


def _quiet_loading() -> None:
    """transformers draws a bar per GGUF conversion (plain tqdm, no switch); the CLI shows only its own."""
    import functools

    import transformers.modeling_gguf_pytorch_utils as gguf_loading
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    if not isinstance(gguf_loading.tqdm, functools.partial):
        gguf_loading.tqdm = functools.partial(gguf_loading.tqdm, disable=True)


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    try:
        return COMMANDS[args.command](args)
    except (ValueError, OSError, RuntimeError, ImportError) as err:
        print(f"lsi: error: {err}", file=sys.stderr)
        return 2


def _scorer(args: argparse.Namespace):  # noqa: ANN202 - imports torch lazily, keeping `lsi scores` fast
    import torch

    from lsi.models import load_model
    from lsi.scoring import Scorer

    _quiet_loading()
    if args.threads:
        torch.set_num_threads(args.threads)
    if args.limit is not None and args.limit <= 0:
        raise ValueError(f"--limit must be a positive number of documents, got {args.limit}")
    from lsi.tasks import load_task

    task = load_task(args.task)  # fails fast on an unknown task, before the model loads
    lm = load_model(args.model, dtype=args.dtype, device=args.device)
    return Scorer(
        lm,
        task,
        args.limit,
        args.granularity,
        args.results,
        batch_tokens=args.batch_tokens,
        max_rows=args.batch_size,
    )


def cmd_players(args: argparse.Namespace) -> int:
    from lsi.models import load_model
    from lsi.players import list_players

    _quiet_loading()
    for player in list_players(load_model(args.model, dtype=args.dtype).model, args.granularity):
        print(player.name)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from lsi.players import coalition_without, parse_players

    scorer = _scorer(args)
    dropped = parse_players(args.drop.split(","), scorer.players)
    row = scorer.scores([coalition_without(scorer.players, dropped)], progress=not args.json).iloc[0]
    out = {
        "model": args.model,
        "task": scorer.task.name,
        "split": scorer.task.split,
        "limit": args.limit,
        "dtype": args.dtype,
        "granularity": args.granularity,
        "metric": scorer.task.metric,
        "score": row.score,
        "acc": row.acc,
        "acc_norm": _none(row.acc_norm),
        "n_docs": len(scorer.docs),
        "dropped": [p.name for p in dropped],
        "coalition": row.coalition,
        "near_ties": int(row.near_ties),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:12s} {value}")
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from lsi.ablation import single_ablation

    scorer = _scorer(args)
    table = single_ablation(scorer, progress=not args.json)
    scorer.store.compact()
    full = table.attrs["full"]
    if args.json:
        rows = [
            {
                "player": r.player,
                "score": r.score,
                "drop": r.drop,
                "acc": r.acc,
                "acc_norm": _none(r.acc_norm),
            }
            for r in table.itertuples()
        ]
        print(
            json.dumps(
                {
                    "model": args.model,
                    "task": scorer.task.name,
                    "metric": scorer.task.metric,
                    "limit": args.limit,
                    "dtype": args.dtype,
                    "n_docs": len(scorer.docs),
                    "chance": scorer.meta()["chance"],
                    "players": [p.name for p in scorer.players],
                    "full": full,
                    "ablation": rows,
                    "store": str(scorer.store.path),
                }
            )
        )
    else:
        print(
            f"{args.model} | {scorer.task.name} ({scorer.task.split}, {len(scorer.docs)} docs) | "
            f"{scorer.task.metric} | {args.dtype} | full model {full:.4f}"
        )
        print(table[["player", "score", "drop"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"store: {scorer.store.path}")
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    path = store_dir(args.results, args.model, args.task, args.granularity, args.dtype, args.limit)
    frame = ScoreStore.open(path).frame()
    cols = ["coalition", "n_kept", "acc", "acc_norm", "score", "near_ties"]
    records = [{k: _none(v) for k, v in r.items()} for r in frame[cols].to_dict("records")]
    if args.json:
        print(json.dumps(records))
    else:
        print(frame[cols].to_string(index=False))
    return 0


def cmd_models(_args: argparse.Namespace) -> int:
    from lsi.assets import embedded_models

    for name, info in embedded_models().items():
        print(f"{name:22s} {info.title} ({info.family}, {info.num_layers} blocks; {info.license})")
    print(
        "Also: any .gguf file, local Hugging Face checkpoint directory, or hub id (org/name, needs internet)."
    )
    return 0


def cmd_tasks(_args: argparse.Namespace) -> int:
    from lsi.tasks import available_tasks

    for name in available_tasks():
        print(name)
    return 0


def _none(value: object) -> object:
    """JSON-friendly: NaN and None both become null."""
    return None if value is None or (isinstance(value, float) and value != value) else value


COMMANDS = {
    "players": cmd_players,
    "score": cmd_score,
    "ablate": cmd_ablate,
    "scores": cmd_scores,
    "models": cmd_models,
    "tasks": cmd_tasks,
}

if __name__ == "__main__":
    sys.exit(main())
