"""The study's summary tables from the index of a results folder: the paper's task order, the latest
estimate of each (model, task) cell per Shapley grid, the cornerstone statistics over the tasks where
the model is above chance, and dense against mixture-of-experts.

`02_paper_figures` shows and saves what these return; nothing here needs a model.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

import pandas as pd

from lsi.store import ScoreStore

PAPER_TASKS = ("boolq", "arc_easy", "arc_challenge", "piqa", "winogrande", "openbookqa")
# What one ablation figure, one row of the statistics and one panel row of a grid share.
CONFIGURATION = ["model", "granularity", "dtype", "limit"]
GRID_KEYS = ["granularity", "dtype", "limit", "estimator", "value"]


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
        latest["metric"] = [ScoreStore.open(path).meta["metric"] for path in latest["store"]]
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
