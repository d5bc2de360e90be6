"""Pruning curves: remove k = 1 .. n/2 players in the order each importance measure gives, score every
step on the task (through the score store, so steps shared by measures are scored once) and on a
perplexity task.

One-shot: the order of the full model's measure. Iterative: the measure recomputed on the pruned model
after each removal. Costs, in scored coalitions or forward passes over the task's inputs, for n
players and K steps:
- ablation, iterative = greedy (SLEB's rule, with the task score instead of perplexity): round k scores
  the n - k + 1 candidates, sum_k (n - k + 1) coalitions in all (1,365 for n = 60, K = 30);
- bi and llmdrop, iterative: one forward pass over the inputs per round (K passes), no extra coalitions;
- shapley: one-shot only (an iterative variant needs a new estimate of the reduced game every round,
  the estimator's whole budget K times);
- angular: Gromov et al.'s best span of each length k (blocks only); a span is not a nested order, so
  it has no iterative variant.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from lsi.analysis import bootstrap_mean_interval
from lsi.errors import UserError
from lsi.importance import Importance
from lsi.players import Player, coalition_without, player_parameters
from lsi.store import write_atomic
from lsi.values import document_values

ITERATIVE = ("ablation", "bi", "llmdrop")
HOLDOUT_COLUMNS = ("holdout_score", "holdout_ci_low", "holdout_ci_high")


@dataclass
class Step:
    measure: str
    mode: str  # "one-shot" or "iterative"
    removed: tuple[str, ...]


def one_shot_steps(imp: Importance, measure: str, k_max: int) -> list[Step]:
    """Steps k = 1 .. k_max in the full model's order (angular: the best span of each length)."""
    if measure == "angular":
        if imp.spans is None:
            return []
        spans = imp.spans[imp.spans["k"] <= k_max].itertuples()
        return [
            Step(measure, "one-shot", tuple(f"block.{b}" for b in range(s.first_block, s.last_block + 1)))
            for s in spans
        ]
    if measure not in imp.table or imp.table[measure].isna().all():
        return []
    order = imp.order(measure)
    return [Step(measure, "one-shot", tuple(order[:k])) for k in range(1, min(k_max, len(order)) + 1)]


def greedy_ablation_steps(
    scorer, k_max: int, value: Callable[[pd.Series], float], progress: bool
) -> list[Step]:  # noqa: ANN001
    """SLEB's greedy rule on the task: each round removes the player whose removal scores highest."""
    removed: list[Player] = []
    steps = []
    for _ in range(k_max):
        candidates = [p for p in scorer.players if p not in removed]
        coalitions = [coalition_without(scorer.players, [*removed, p]) for p in candidates]
        rows = scorer.scores(coalitions, progress=progress).set_index("coalition")
        scores = [value(rows.loc[c]) for c in coalitions]
        removed.append(candidates[int(np.argmax(scores))])  # ties: the first in player order
        steps.append(Step("ablation", "iterative", tuple(p.name for p in removed)))
    return steps


def recomputed_steps(
    scorer,  # noqa: ANN001
    measure: str,
    k_max: int,
    sequences: Sequence[np.ndarray],
    pad_id: int,
    progress: bool = False,
    saved: Path | None = None,
) -> list[Step]:
    """Each round removes the lowest player by `measure` ("bi" or "llmdrop") recomputed on the model
    with the players removed so far skipped (one forward pass over the inputs per round). Each round's
    choice is written to `saved` as soon as it is made, and a rerun starts after the last saved round:
    an interrupted run loses at most the round in progress."""
    from lsi.masking import removal_plan, skip
    from lsi.measures import one_pass_measures

    model = scorer.lm.model
    removed = _saved_rounds(saved, measure, scorer.players)[:k_max]
    rounds = tqdm(
        range(len(removed), k_max),
        desc=f"{measure}, recomputed after each removal",
        initial=len(removed),
        total=k_max,
        disable=not progress,
    )
    for _ in rounds:
        kept_blocks, _ = removal_plan(removed, scorer.lm.identity.n_blocks)
        with skip(model, removed):
            measured = one_pass_measures(model, sequences, pad_id)
        values = {}
        for new, b in enumerate(kept_blocks):  # the skipped model's blocks are renumbered
            if measure == "bi":
                values[f"block.{b}"] = measured.block_influence[new]
            else:
                for j, kind in enumerate(("attn", scorer.players[1].kind)):
                    values[f"{kind}.{b}"] = measured.llm_drop[new][j]
        left = [p for p in scorer.players if p not in removed and p.name in values]
        if not left:
            raise UserError(f"measure {measure} is not defined for {scorer.players[0].kind} players")
        removed.append(min(left, key=lambda p: values[p.name]))  # ties: the first in player order
        if saved is not None:
            record = {"measure": measure, "removed": [p.name for p in removed]}
            write_atomic(saved, (json.dumps(record) + "\n").encode())
    names = tuple(p.name for p in removed)
    return [Step(measure, "iterative", names[:k]) for k in range(1, len(names) + 1)]


def _saved_rounds(saved: Path | None, measure: str, players: Sequence[Player]) -> list[Player]:
    """The players an earlier run of `recomputed_steps` removed, in its order (none without a file)."""
    if saved is None or not saved.exists():
        return []
    record = json.loads(saved.read_text())
    names = record.get("removed", [])
    by_name = {p.name: p for p in players}
    if record.get("measure") != measure or any(n not in by_name for n in names):
        raise UserError(f"{saved} holds another measure's or model's rounds; delete it to recompute them")
    return [by_name[n] for n in names]


def scored_curves(
    scorer,  # noqa: ANN001 - lsi.scoring.Scorer, as are the others
    steps: Sequence[Step],
    ppl_scorer=None,  # noqa: ANN001
    progress: bool = True,
    resamples: int = 1000,
    holdout_scorer=None,  # noqa: ANN001
) -> pd.DataFrame:
    """One row per step (and the full model as k = 0): task score with a 95% document-bootstrap
    interval, the perplexity task's value where a scorer for it is given, and the score with its
    interval on held-out documents where a scorer of them is given."""
    by_name = {p.name: p for p in scorer.players}
    coalitions = [coalition_without(scorer.players, [by_name[n] for n in s.removed]) for s in steps]
    full = "1" * len(scorer.players)
    task = _mean_intervals(scorer, [full, *coalitions], progress, resamples)
    holdout = holdout_scorer and _mean_intervals(holdout_scorer, [full, *coalitions], progress, resamples)
    ppl = None
    if ppl_scorer is not None:
        ppl_rows = ppl_scorer.scores([full, *coalitions], progress=progress).set_index("coalition")
        metric = ppl_scorer.store.meta["metric"]
        ppl = {c: json.loads(ppl_rows.at[c, "metrics"])[metric] for c in ppl_rows.index}
    out = []
    measures = dict.fromkeys((s.measure, s.mode) for s in steps)
    for measure, mode in measures:
        chosen = [
            (s, c) for s, c in zip(steps, coalitions, strict=True) if (s.measure, s.mode) == (measure, mode)
        ]
        for k, (step, coalition) in enumerate([(Step(measure, mode, ()), full), *chosen]):
            row = {
                "measure": measure,
                "mode": mode,
                "k": len(step.removed) if k else 0,
                "removed": ",".join(step.removed),
                "coalition": coalition,
                **dict(zip(("score", "ci_low", "ci_high"), task[coalition], strict=True)),
                "perplexity": None if ppl is None else ppl[coalition],
            }
            if holdout:
                row |= dict(zip(HOLDOUT_COLUMNS, holdout[coalition], strict=True))
            out.append(row)
    return pd.DataFrame(out)


def _mean_intervals(
    scorer,  # noqa: ANN001 - lsi.scoring.Scorer
    coalitions: Sequence[str],
    progress: bool,
    resamples: int,
) -> dict[str, tuple[float, float, float]]:
    """Each coalition's mean over the scorer's documents, with its 95% document-bootstrap interval."""
    rows = scorer.scores(list(dict.fromkeys(coalitions)), progress=progress).set_index("coalition")
    out = {}
    for coalition in rows.index:
        docs = document_values(scorer.store.meta, rows.loc[coalition].to_dict())
        out[coalition] = (float(docs.mean()), *bootstrap_mean_interval(docs, resamples))
    return out


def with_parameters(curves: pd.DataFrame, sizes: dict[str, int]) -> pd.DataFrame:
    """The curves with the parameters each step removes (`lsi.players.player_parameters`), as a count
    and as a share of all the players' parameters."""
    removed = curves["removed"].fillna("").map(lambda names: sum(sizes[n] for n in names.split(",") if n))
    return curves.assign(parameters_removed=removed, parameter_share=removed / sum(sizes.values()))


def best_at(curves: pd.DataFrame, n_players: int, share: float = 0.25) -> pd.DataFrame:
    """Each curve's score with `share` of the players removed (rounded), best first."""
    k = max(1, round(share * n_players))
    return _summary(curves[curves["k"] == k])


def _summary(steps: pd.DataFrame) -> pd.DataFrame:
    """One step per curve, best score first, with the columns a reader compares them by."""
    columns = ["measure", "mode", "k", "parameter_share", "score", "ci_low", "ci_high", *HOLDOUT_COLUMNS]
    best = steps.sort_values("score", ascending=False)
    return best[[c for c in [*columns, "perplexity", "removed"] if c in best]].reset_index(drop=True)


def best_within_parameters(curves: pd.DataFrame, share: float = 0.25) -> pd.DataFrame:
    """Each curve's last step that removes at most `share` of the players' parameters, best first:
    orders that remove many small players (attention sub-layers) reach the same k with fewer
    parameters gone, so equal k is not equal pruning."""
    within = curves[curves["parameter_share"] <= share + 1e-9].sort_values("k")
    return _summary(within.groupby(["measure", "mode"], sort=False).tail(1))


def pruning_curves(
    config,  # noqa: ANN001 - lsi.config.RunConfig
    measures: Sequence[str],
    iterative: Sequence[str] = ("bi", "llmdrop"),
    ppl_task: str | None = "lambada_openai",
    ppl_limit: int | None = 1000,
    progress: bool = True,
    holdout_task: str | None = None,
) -> tuple[pd.DataFrame, Importance, dict]:
    """The curves of every measure (one-shot) and of the `iterative` ones, up to half the players,
    saved next to the store as pruning/curves.csv with a record of how they were made.

    `holdout_task`: documents the orders were not estimated on (found with the configuration's
    include path, e.g. studies/tasks/piqa_heldout.yaml), every step scored on all of them: the store's
    own curves select on the documents that ranked the players."""
    from lsi.importance import importance
    from lsi.measures import lm_eval_inputs
    from lsi.pipeline import LazyScorer, open_store
    from lsi.provenance import made_from, now, versions
    from lsi.scoring import Scorer
    from lsi.tasks import load_task

    if holdout_task == config.task:
        raise UserError(f"--holdout-task {holdout_task} is the task the orders come from; name another")
    include = [config.include_path] if config.include_path else []
    held_out = load_task(holdout_task, include_path=include) if holdout_task else None  # fails fast
    unknown = [m for m in iterative if m not in ITERATIVE]
    if unknown:
        raise UserError(
            f"no iterative variant of {', '.join(unknown)}; iterative measures: {', '.join(ITERATIVE)}"
        )
    lazy = LazyScorer(config)
    try:
        store = open_store(config, lazy)
        imp = importance(config, store, lazy, measures, progress)
        scorer = lazy()
        folder = store.path / "pruning"
        folder.mkdir(exist_ok=True)
        n = len(scorer.players)
        k_max = n // 2
        steps = [s for m in measures for s in one_shot_steps(imp, m, k_max)]
        if "ablation" in iterative:
            steps += greedy_ablation_steps(scorer, k_max, lambda row: float(row["score"]), progress)
        sequences = lm_eval_inputs(scorer.requests, scorer.max_length)
        pad = scorer.lm.tokenizer.pad_token_id or 0
        for measure in (m for m in iterative if m in ("bi", "llmdrop") and m in imp.table):
            if imp.table[measure].notna().any():
                saved = folder / f"iterative-{measure}.json"
                steps += recomputed_steps(scorer, measure, k_max, sequences, pad, progress, saved)
        ppl = None
        if ppl_task:
            ppl = Scorer(scorer.lm, ppl_task, ppl_limit, config.granularity.value, config.results)
        holdout = held_out and Scorer(scorer.lm, held_out, None, config.granularity.value, config.results)
        sizes = player_parameters(scorer.lm.model, scorer.players)
        curves = with_parameters(scored_curves(scorer, steps, ppl, progress, holdout_scorer=holdout), sizes)
    finally:
        lazy.close()
    curves.to_csv(folder / "curves.csv", index=False)
    record = made_from(store.meta) | {
        "granularity": config.granularity.value,
        "players": n,
        "k_max": k_max,
        "measures": list(measures),
        "iterative": list(iterative),
        "perplexity_task": ppl_task and {"task": ppl_task, "limit": ppl_limit, "store": str(ppl.store.path)},
        "holdout_task": holdout
        and {"task": holdout_task, "n_docs": holdout.store.meta["n_docs"], "store": str(holdout.store.path)},
        "importance": imp.record,
        "parameters": {"per_player": sizes, "all_players": sum(sizes.values())},
        "best_at_25_percent": best_at(curves, n).to_dict("records"),
        "created": now(),
        "versions": versions(),
    }
    (folder / "curves.json").write_text(json.dumps(record, indent=1, default=str) + "\n")
    return curves, imp, record
