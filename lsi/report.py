"""The study's summary tables from the index of a results folder: the paper's task order, the latest
estimate of each (model, task) cell per Shapley grid, the cornerstone statistics over the tasks where
the model is above chance, dense against mixture-of-experts, and recall set beside multiple choice.

`02_paper_figures` shows and saves what these return; nothing here needs a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pandas as pd

from lsi.analysis import ablation_table, cornerstones, latest_estimate
from lsi.store import ScoreStore
from lsi.values import metrics_of

PAPER_TASKS = ("boolq", "arc_easy", "arc_challenge", "piqa", "winogrande", "openbookqa")
# What one ablation figure, one row of the statistics and one panel row of a grid share.
CONFIGURATION = ["model", "granularity", "dtype", "limit"]
GRID_KEYS = ["granularity", "dtype", "limit", "estimator", "value"]
CHOICE_TASKS = ("arc_easy", "piqa")  # the multiple-choice tasks recall and perplexity are set beside


def task_order(tasks: Iterable[str]) -> list[str]:
    """The paper's task order first, then any others alphabetically."""
    present = set(tasks)
    return [t for t in PAPER_TASKS if t in present] + sorted(present - set(PAPER_TASKS))


def shapley_grids(estimates: pd.DataFrame, report: pd.DataFrame) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """One Shapley grid per (granularity, dtype, limit, estimator, value): its title, file stem and the
    latest all-player estimate of each (model, task) cell, in task order, with the task's metric and
    whether the full model is above chance there (from the cornerstone report; True where unknown)."""
    if estimates.empty:
        return
    verdicts = report.set_index([*CONFIGURATION, "task"])["above_chance"] if len(report) else pd.Series()
    full_game = estimates[estimates["restricted_to"].isna()].sort_values("created")
    for (granularity, dtype, limit, estimator, value), group in full_game.groupby(GRID_KEYS, dropna=False):
        latest = group.drop_duplicates(["model", "task"], keep="last")
        latest = latest.set_index("task").loc[task_order(latest["task"])].reset_index()
        cells = latest[[*CONFIGURATION, "task"]].itertuples(index=False, name=None)
        latest["above_chance"] = [bool(verdicts.get(cell, True)) for cell in cells]
        budget = ", ".join(sorted({str(b) for b in latest["evaluations"]}))
        title = (
            f"Shapley values ({estimator}, {budget} coalitions; value: {value}) | {granularity} | "
            f"{dtype} | limit {limit}"
        )
        yield title, f"shapley-{granularity}-{dtype}-limit{limit}-{estimator}-{value}", latest


def cornerstone_statistics(report: pd.DataFrame) -> pd.DataFrame:
    """Per configuration: how many tasks, how many above chance, and the mean of the paper's
    statistics over the tasks above chance only (on the others an ablation measures noise)."""
    numeric = ["full", "chance", "max_drop", "mean_drop_cornerstone", "mean_drop_other"]
    numeric += [c for c in ("positive_mass_share_cornerstone", "positive_mass_share_other") if c in report]
    counts = report.groupby(CONFIGURATION, dropna=False).agg(
        tasks=("task", "count"), tasks_above_chance=("above_chance", "sum")
    )
    clear = report[report["above_chance"]].groupby(CONFIGURATION, dropna=False)[numeric].mean()
    return counts.join(clear).reset_index()


def dense_vs_moe(report: pd.DataFrame) -> pd.DataFrame:
    """Mean largest drop and mean cornerstone drop, dense against MoE models per configuration;
    empty unless both kinds have results."""
    if report.empty or report["moe"].nunique() < 2:
        return pd.DataFrame()
    columns = ["max_drop", "mean_drop_cornerstone"]
    return report.groupby([*CONFIGURATION, "moe"])[columns].mean().reset_index()


def _largest(stores: pd.DataFrame) -> pd.DataFrame:
    """Per (model, granularity, task): the ablated store with the most documents (float32 on ties)."""
    ablated = stores[stores["has_ablation"]]
    ordered = ablated.sort_values(["n_docs", "dtype"], ascending=[False, False], kind="stable")
    return ordered.drop_duplicates(["model", "granularity", "task"])


def recall_against_choice(
    stores: pd.DataFrame, resamples: int = 1000
) -> Iterator[tuple[str, str, pd.DataFrame]]:
    """Per (model, granularity) with an ablated store of a task without choices (generation, perplexity):
    one row per (task, value, player) with the share of the (full - floor) gap the player's removal
    leaves and whether it is a cornerstone, for every value that store keeps, beside ARC-Easy and PIQA.

    `stores` is `lsi.results.store_index(results, choices_only=False)`. Each task's largest ablated store
    is used. A value whose floor is unknown (a log-likelihood before the empty model is scored) has no
    gap and is left out. Yields a title, a file stem and the long table.
    """
    largest = _largest(stores)
    others = largest[largest["output_type"] != "multiple_choice"]
    for (model, granularity), group in others.groupby(["model", "granularity"], sort=True):
        choice = largest[
            (largest["model"] == model)
            & (largest["granularity"] == granularity)
            & largest["task"].isin(CHOICE_TASKS)
        ].sort_values("task", key=lambda tasks: tasks.map(CHOICE_TASKS.index))
        rows = []
        for s in pd.concat([group, choice]).itertuples():
            store = ScoreStore.open(s.path)
            first = store.usable().iloc[0].to_dict()
            values = [s.metric] if s.output_type == "multiple_choice" else metrics_of(store.meta, first)
            for value in values:
                ablation = ablation_table(store, resamples, metric=value)
                if ablation.attrs["chance"] is None:
                    continue
                flagged = cornerstones(ablation)
                rows.append(
                    flagged[["player", "score", "gap_left", "cornerstone"]].assign(
                        task=s.task,
                        value=value,
                        output_type=s.output_type,
                        store=s.path,
                        dtype=s.dtype,
                        n_docs=s.n_docs,
                        full=ablation.attrs["full"],
                        floor=ablation.attrs["chance"],
                        above_floor=ablation.attrs["above_chance"],
                    )
                )
        title = f"{group['title'].iloc[0]} | {granularity}: single removals, gap to the floor left"
        table = pd.concat(rows, ignore_index=True)
        table.attrs.update(model=model, granularity=granularity)
        yield title, f"recall-{model}-{granularity}", table


def recall_shapley(table: pd.DataFrame, estimates: pd.DataFrame, estimator: str = "window") -> pd.DataFrame:
    """The full-game Shapley values by `estimator` of every (task, value) of a `recall_against_choice`
    table, from the same stores: one row per player, one column per (task, value) that has such an
    estimate, in the table's order. Its rank correlations say whether recall, perplexity and multiple
    choice put the same players first, beyond single removals (`estimates` is `estimate_index`; estimates
    of a player subset are left out)."""
    columns = {}
    for (task, value, store), _ in table.groupby(["task", "value", "store"], sort=False):
        latest = latest_estimate(estimates, store, estimator, value)
        if latest is not None:
            columns[f"{task}: {value}"] = pd.Series(latest["values"], index=latest["players"])
    return pd.DataFrame(columns)


def recall_summary(table: pd.DataFrame) -> pd.DataFrame:
    """Per (task, value) of a `recall_against_choice` table, under its model and granularity: its
    cornerstones, and those whose removal every multiple-choice task there survives (not a cornerstone
    on any of them)."""
    choice = set(table.loc[(table["output_type"] == "multiple_choice") & table["cornerstone"], "player"])
    rows = []
    for (task, value), group in table.groupby(["task", "value"], sort=False):
        corner = group.loc[group["cornerstone"], "player"].tolist()
        survives = (
            []
            if group["output_type"].iloc[0] == "multiple_choice"
            else [p for p in corner if p not in choice]
        )
        rows.append(
            {
                "model": table.attrs["model"],
                "granularity": table.attrs["granularity"],
                "task": task,
                "value": value,
                "n_docs": int(group["n_docs"].iloc[0]),
                "dtype": group["dtype"].iloc[0],
                "full": float(group["full"].iloc[0]),
                "floor": float(group["floor"].iloc[0]),
                "above_floor": bool(group["above_floor"].iloc[0]),
                "cornerstones": ", ".join(corner),
                "multiple_choice_survives": ", ".join(survives),
            }
        )
    return pd.DataFrame(rows)
