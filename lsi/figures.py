"""The study's figures, drawn from tables (ablation tables, estimates, benchmark rows), never from a model.

Each function returns a matplotlib Figure; `lsi.style.save` writes it as PDF and PNG. Titles name
the model, task, metric, document count, dtype and estimator, so a figure read alone says what it is.
"""

from __future__ import annotations

import textwrap
from collections.abc import Mapping, Sequence

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib import ticker as mticker
from matplotlib.patches import Patch

from lsi import style
from lsi.estimators import ESTIMATORS

TITLE_WIDTH = 130  # characters of a title line at the page width


def _kind_legend(fig: plt.Figure, kinds: Sequence[str], extra: Sequence = ()) -> None:
    """One legend below the panels, where it can hide no bar."""
    handles = [Patch(color=style.KIND_COLORS[k], label=style.KIND_LABELS[k]) for k in dict.fromkeys(kinds)]
    fig.legend(handles=[*handles, *extra], loc="outside lower center", ncol=len(handles) + len(extra))


def _player_axis(ax: plt.Axes, players: Sequence[str], most_ticks: int = 8) -> None:
    """x = player index in forward order; ticks at the blocks' first players, labelled by block."""
    blocks = [int(p.partition(".")[2]) for p in players]
    step = -(-len(set(blocks)) // most_ticks)  # ceiling: at most `most_ticks` ticks
    ticks = [i for i, b in enumerate(blocks) if (i == 0 or blocks[i - 1] != b) and b % step == 0]
    ax.set_xticks(ticks, [str(blocks[i]) for i in ticks])
    ax.set_xlim(-1, len(players))
    ax.set_xlabel("block")


def _panel_title(table: pd.DataFrame, task: str) -> str:
    attrs = table.attrs
    flag = "" if attrs.get("above_chance", True) else "\nfull model NOT above chance"
    return f"{task} ({attrs['metric']}, {attrs['n_docs']} docs){flag}"


def ablation_grid(tables: Mapping[str, pd.DataFrame], title: str, ncols: int = 3) -> plt.Figure:
    """The paper's single-player ablation figure: one panel per task; each bar hangs from the full
    model's score down (or up) to the score without that player; dashed lines mark the original score
    and random guessing; whiskers are 95% bootstrap intervals of the ablated score."""
    style.apply()
    nrows = -(-len(tables) // ncols)
    ncols = min(ncols, len(tables))
    fig, axes = plt.subplots(
        nrows,
        ncols,
        figsize=(style.PAGE_WIDTH, 1.9 * nrows + 0.5),
        squeeze=False,
        sharey=True,
        constrained_layout=True,
    )
    for ax, (task, table) in zip(axes.flat, tables.items(), strict=False):
        full, chance = table.attrs["full"], table.attrs["chance"]
        x = np.arange(len(table))
        colors = [style.KIND_COLORS[k] for k in table["kind"]]
        ax.bar(x, table["score"] - full, bottom=full, color=colors, width=0.85, linewidth=0)
        ax.errorbar(
            x,
            table["score"],
            yerr=[table["score"] - table["score_low"], table["score_high"] - table["score"]],
            fmt="none",
            ecolor="0.3",
            elinewidth=0.4,
        )
        ax.axhline(full, color="k", ls="--", lw=0.8)
        ax.axhline(chance, color="0.45", ls=":", lw=0.9)
        ax.set_title(_panel_title(table, task))
        _player_axis(ax, table["player"].tolist())
        ax.set_ylim(min(0.0, table["score_low"].min() - 0.02), max(1.0, full + 0.05))
    for ax in axes.flat[len(tables) :]:
        ax.set_visible(False)
    axes[0, 0].set_ylabel("score without the player")
    lines = [
        plt.Line2D([], [], color="k", ls="--", lw=0.8, label="original"),
        plt.Line2D([], [], color="0.45", ls=":", lw=0.9, label="random"),
    ]
    _kind_legend(fig, next(iter(tables.values()))["kind"], lines)
    fig.suptitle(title)
    return fig


def shapley_bars(
    ax: plt.Axes,
    players: Sequence[str],
    values: Sequence[float],
    low: Sequence[float | None] | None = None,
    high: Sequence[float | None] | None = None,
    most_ticks: int = 8,
) -> None:
    """Shapley values over the players in forward order, coloured by kind, with intervals if given."""
    values = np.asarray(values, dtype=float)
    x = np.arange(len(players))
    ax.bar(x, values, color=[style.KIND_COLORS[style.kind_of(p)] for p in players], width=0.85, linewidth=0)
    if low is not None and high is not None:
        lo = np.asarray([np.nan if v is None else v for v in low], dtype=float)
        hi = np.asarray([np.nan if v is None else v for v in high], dtype=float)
        if np.isfinite(lo).any():
            ax.errorbar(x, values, yerr=[values - lo, hi - values], fmt="none", ecolor="0.3", elinewidth=0.4)
    ax.axhline(0, color="k", lw=0.5)
    _player_axis(ax, players, most_ticks)


def shapley_figure(
    players: Sequence[str],
    values: Sequence[float],
    low: Sequence[float | None] | None,
    high: Sequence[float | None] | None,
    title: str,
    ylabel: str,
    width: float = style.PAGE_WIDTH,
) -> plt.Figure:
    """One estimate's Shapley values with their intervals, as a figure of its own."""
    style.apply()
    fig, ax = plt.subplots(figsize=(width, 2.2), constrained_layout=True)
    shapley_bars(ax, players, values, low, high)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=7)
    return fig


def shapley_grid(estimates: pd.DataFrame, title: str) -> plt.Figure:
    """Shapley values per player: models in rows, tasks in columns (one estimate per cell).

    `estimates` rows need model, task, players, values, ci_low, ci_high (as `estimate_index` gives);
    an `above_chance` column, where present and False, flags the panel (its values measure noise), and a
    `metric` column names the task's metric.
    """
    style.apply()
    models = list(dict.fromkeys(estimates["model"]))
    tasks = list(dict.fromkeys(estimates["task"]))
    fig, axes = plt.subplots(
        len(models),
        len(tasks),
        figsize=(max(style.PAGE_WIDTH, 1.9 * len(tasks)), 1.7 * len(models) + 0.6),
        squeeze=False,
        constrained_layout=True,
    )
    cells = {(r.model, r.task): r for r in estimates.itertuples()}
    for i, model in enumerate(models):
        labelled = False
        for j, task in enumerate(tasks):
            ax = axes[i, j]
            row = cells.get((model, task))
            if row is None:
                ax.set_visible(False)
                continue
            shapley_bars(ax, row.players, row.values, row.ci_low, row.ci_high, most_ticks=4)
            noise = getattr(row, "above_chance", True) is False
            metric = f" ({row.metric})" if hasattr(row, "metric") else ""
            ax.set_title(f"{task}{metric}" + ("\nNOT above chance" if noise else ""), fontsize="small")
            if noise:
                ax.set_facecolor("0.94")
            if not labelled:  # the row's first panel names the model
                ax.set_ylabel(f"{model}\nShapley value")
                labelled = True
            if i < len(models) - 1:
                ax.set_xlabel("")
    fig.suptitle(title)
    return fig


def estimator_error(frame: pd.DataFrame, title: str) -> plt.Figure:
    """Error of each sampling estimator against exact values, or against a walk reference where the
    game is too large to enumerate (`lsi.references.against_reference` rows, which name `walk_pairs`),
    as the budget grows (median and quartiles over seeds), with the fixed-cost estimators (the paper's
    `window`, `window_efficient`) as single points: against distinct coalitions, and (second row, where
    the benchmark recorded them) against executed layer-forwards, as a coalition keeping |S| players
    runs |S| of them.

    Budgets that enumerate every coalition (the `exact` row's) are left out: there most estimators are
    exact to rounding, which would stretch the log axis over thirty decades.
    """
    style.apply()
    costs = [("evaluations", "distinct coalitions evaluated")]
    if "layer_forwards" in frame:
        costs.append(("layer_forwards", "layer-forwards executed"))
    truth = "reference" if "walk_pairs" in frame else "exact"
    panels = [
        ("mse", f"MSE vs {truth}"),
        ("spearman", f"Spearman vs {truth}"),
        ("top3_precision", "top-3 precision"),
    ]
    fig, axes = plt.subplots(
        len(costs), 3, figsize=(style.PAGE_WIDTH, 2.5 * len(costs)), layout="constrained", squeeze=False
    )
    full_budget = frame.loc[frame.estimator == "exact", "budget"].min()  # NaN (keep all) if none
    fixed = [name for name in frame.estimator.unique() if name != "exact" and ESTIMATORS[name].deterministic]
    samplers = frame[~frame.estimator.isin([*fixed, "exact"]) & ~(frame.budget >= full_budget)]
    palette = dict(zip(sorted(samplers.estimator.unique()), plt.cm.tab20.colors, strict=False))
    for row, (cost, xlabel) in zip(axes, costs, strict=True):
        for ax, (metric, label) in zip(row, panels, strict=True):
            for name, group in samplers.groupby("estimator"):
                by_budget = group.groupby("budget")
                q = by_budget[metric].quantile([0.25, 0.5, 0.75]).unstack()
                x = by_budget[cost].median()  # what the budget bought (some spend less)
                ax.plot(x, q[0.5], marker=".", ms=3, lw=1, color=palette[name], label=name)
                ax.fill_between(x, q[0.25], q[0.75], color=palette[name], alpha=0.12, lw=0)
            for name, marker in zip(fixed, "*Pdv", strict=False):  # one point each, at its fixed cost
                point = frame[frame.estimator == name].iloc[0]
                shown = "window (paper)" if name == "window" else name
                ax.plot(point[cost], point[metric], "k" + marker, ms=8 if marker == "*" else 5, label=shown)
            ax.set_xscale("log", base=2)
            if metric == "mse":
                ax.set_yscale("log")
            ax.set_xlabel(xlabel)
            ax.set_title(label)
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncol=min(len(labels), 7))
    # the benchmark's provenance lines run past the page; wrapped, they leave the panels their width
    fig.suptitle("\n".join(textwrap.fill(line, TITLE_WIDTH) for line in title.splitlines()))
    return fig


def removal_curves(curves: Mapping[str, pd.DataFrame], full: float, chance: float, title: str) -> plt.Figure:
    """Score as players are removed one by one, one line per removal order."""
    style.apply()
    fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH, 2.3), constrained_layout=True)
    for name, curve in curves.items():
        ax.plot(curve["removed"], curve["score"], marker=".", ms=3, lw=1, label=f"{name} order")
    ax.axhline(full, color="k", ls="--", lw=0.8, label="original")
    ax.axhline(chance, color="0.45", ls=":", lw=0.9, label="chance")  # "random" would read as an order
    ax.set_xlabel("players removed")
    ax.set_ylabel("score")
    ax.legend()
    ax.set_title(title)
    return fig


def _symmetric_heatmap(
    fig: plt.Figure, ax: plt.Axes, matrix: pd.DataFrame, limit: float, label: str, rotation: int
) -> None:
    """A labelled square matrix on a diverging scale centred on zero, with its colour bar."""
    image = ax.imshow(matrix.to_numpy(), vmin=-limit, vmax=limit, cmap="RdBu_r")
    ax.set_xticks(range(len(matrix)), matrix.columns, rotation=rotation)
    ax.set_yticks(range(len(matrix)), matrix.index)
    ax.grid(False)
    fig.colorbar(image, ax=ax, label=label)


def importance_measures(table: pd.DataFrame, correlations: pd.DataFrame, title: str) -> plt.Figure:
    """Every measure along depth (each scaled to its own maximum), and their rank correlations."""
    style.apply()
    fig, (ax, heat) = plt.subplots(
        1, 2, figsize=(style.COLUMN_WIDTH * 2, 2.6), constrained_layout=True, width_ratios=(2.2, 1)
    )
    measures = [m for m in ("shapley", "ablation", "bi", "llmdrop") if m in table and table[m].notna().any()]
    x = np.arange(len(table))
    for m in measures:
        values = table[m].to_numpy(dtype=float)
        ax.plot(x, values / np.nanmax(np.abs(values)), marker=".", ms=3, lw=0.9, label=m)
    _player_axis(ax, table["player"].tolist())
    ax.set_ylabel("measure / its largest |value|")
    ax.legend(ncol=len(measures), fontsize="small")
    matrix = pd.DataFrame(np.eye(len(measures)), index=measures, columns=measures)
    for r in correlations.itertuples():
        if r.measure_a in measures and r.measure_b in measures:
            matrix.loc[r.measure_a, r.measure_b] = matrix.loc[r.measure_b, r.measure_a] = r.spearman
    _symmetric_heatmap(fig, heat, matrix, 1.0, "Spearman", rotation=45)
    for (i, j), rho in np.ndenumerate(matrix.to_numpy()):
        color = "white" if abs(rho) > 0.6 else "black"
        heat.text(j, i, f"{rho:.2f}", ha="center", va="center", fontsize="x-small", color=color)
    fig.suptitle(title)
    return fig


def pruning_curves(curves: pd.DataFrame, chance: float | None, title: str) -> plt.Figure:
    """Task score (with its 95% interval), the score on held-out documents where the curves carry it,
    and perplexity as players are pruned, a line per measure; where the curves carry
    `parameter_share`, a second row puts them on the share of the players' parameters removed, since
    sub-layers differ in size."""
    style.apply()
    panels = [("score", "task score (the orders' documents)" if "holdout_score" in curves else "task score")]
    if "holdout_score" in curves:
        panels.append(("holdout_score", "task score (held-out documents)"))
    if curves["perplexity"].notna().any():
        panels.append(("perplexity", "perplexity (log scale)"))
    xs = [("k", "players removed")]
    if "parameter_share" in curves:
        xs.append(("parameter_share", "share of the players' parameters removed"))
    fig, axes = plt.subplots(
        len(xs),
        len(panels),
        figsize=(style.COLUMN_WIDTH * len(panels), 2.6 * len(xs)),
        constrained_layout=True,
        squeeze=False,
        sharey="col",
    )
    for row, (x, xlabel) in zip(axes, xs, strict=True):
        for (measure, mode), curve in curves.groupby(["measure", "mode"], sort=False):
            label = f"{measure}" + (" (iterative)" if mode == "iterative" else "")
            ls = "--" if mode == "iterative" else "-"
            color = None
            for ax, (y, _) in zip(row, panels, strict=True):
                (line,) = ax.plot(curve[x], curve[y], ls=ls, marker=".", ms=3, lw=1, label=label, color=color)
                color = line.get_color()
                low, high = ("ci_low", "ci_high") if y == "score" else ("holdout_ci_low", "holdout_ci_high")
                if y != "perplexity":
                    ax.fill_between(curve[x], curve[low], curve[high], color=color, alpha=0.12)
        for ax, (y, ylabel) in zip(row, panels, strict=True):
            ax.set_xlabel(xlabel)
            ax.set_ylabel(ylabel)
            if y == "perplexity":
                ax.set_yscale("log")
            elif chance is not None:
                ax.axhline(chance, color="0.45", ls=":", lw=0.9, label="chance")
            if x == "parameter_share":
                ax.xaxis.set_major_formatter(mticker.PercentFormatter(1.0, decimals=0))
    if "holdout_score" in curves:  # one score scale for both sets of documents
        low, high = zip(*(ax.get_ylim() for ax in axes[:, :2].flat), strict=True)
        for ax in axes[:, :2].flat:
            ax.set_ylim(min(low), max(high))
    axes[0, 0].legend(fontsize="x-small")
    fig.suptitle(title)
    return fig


def interaction_heatmap(main: pd.Series, matrix: pd.DataFrame, title: str) -> plt.Figure:
    """Pair interactions (red: complementary, blue: redundant) beside each player's main effect; the
    figure grows with the players so that 60 labels stay legible."""
    style.apply()
    height = max(3.0, 0.09 * len(main))
    fig, (heat, bars) = plt.subplots(
        1,
        2,
        figsize=(max(style.COLUMN_WIDTH * 2, 1.6 * height), height),
        constrained_layout=True,
        width_ratios=(1.4, 1),
    )
    limit = float(np.abs(matrix.to_numpy()).max()) or 1.0
    _symmetric_heatmap(fig, heat, matrix, limit, f"pair interaction ({main.name})", rotation=90)
    kinds = [name.partition(".")[0] for name in main.index]
    bars.barh(range(len(main)), main.to_numpy(), color=[style.KIND_COLORS[k] for k in kinds])
    bars.set_yticks(range(len(main)), main.index)
    bars.invert_yaxis()
    bars.set_xlabel(f"main effect ({main.name})")
    if len(main) > 20:
        for axis in (heat.xaxis, heat.yaxis, bars.yaxis):
            axis.set_tick_params(labelsize=5)
    fig.suptitle(title)
    return fig


def reference_profile(
    players: Sequence[str],
    values: Sequence[float],
    stderr: Sequence[float],
    estimates: Mapping[str, Sequence[float]],
    title: str,
    ylabel: str,
) -> plt.Figure:
    """A walk reference's values (bars, with 95% intervals over walk pairs) and other estimates of the
    same players as markers: where an estimate leaves the reference's intervals, it disagrees."""
    style.apply()
    values, stderr = np.asarray(values, dtype=float), np.asarray(stderr, dtype=float)
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH, 2.4), constrained_layout=True)
    shapley_bars(ax, players, values, values - 1.96 * stderr, values + 1.96 * stderr)
    markers = iter("o^sDv")
    for label, estimate in estimates.items():
        ax.plot(
            np.arange(len(players)),
            estimate,
            next(markers),
            ms=2.5,
            mfc="none",
            mew=0.6,
            color="k",
            label=label,
        )
    ax.legend(loc="best", fontsize=6, frameon=False)
    ax.set_ylabel(ylabel)
    ax.set_title(title, fontsize=7)
    return fig


def gap_heatmap(table: pd.DataFrame, title: str) -> plt.Figure:
    """The share of the (full - floor) gap each single removal leaves, one row per (task, value) and a
    column per player (dark: collapsed); x marks the cornerstones. `table` is a long table with the
    columns task, value, n_docs, dtype, player, gap_left, cornerstone (`lsi.report.recall_against_choice`)."""
    style.apply()
    setting = " (" + table["n_docs"].astype(str) + ", " + table["dtype"] + ")"
    labels = table["task"] + "\n" + table["value"] + setting
    players = list(dict.fromkeys(table["player"]))
    rows = list(dict.fromkeys(labels))
    keyed = table.assign(label=labels)
    gaps = keyed.pivot(index="label", columns="player", values="gap_left").loc[rows, players]
    flags = keyed.pivot(index="label", columns="player", values="cornerstone").loc[rows, players]
    fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH, 0.4 * len(rows) + 1.1), constrained_layout=True)
    image = ax.imshow(gaps.to_numpy(dtype=float), vmin=0, vmax=1, cmap="viridis", aspect="auto")
    y, x = np.nonzero(flags.to_numpy(dtype=bool))
    ax.scatter(x, y, marker="x", s=14, color="white", linewidths=0.9)
    ax.set_yticks(range(len(rows)), rows, fontsize=6)
    _player_axis(ax, players, most_ticks=18)
    ax.set_xlabel("block (x: cornerstone)")
    ax.grid(False)
    fig.colorbar(image, ax=ax, label="gap left (clipped to 0-1)", shrink=0.9)
    fig.suptitle(title)
    return fig


def depth_profiles(
    profiles: Mapping[str, pd.DataFrame], title: str, cornerstones: Mapping[str, Sequence[str]] | None = None
) -> plt.Figure:
    """Shapley profiles of models of different depths on one axis: each `lsi.scale.depth_profile` as a
    multiple of an even share against relative depth, a panel per kind, cornerstones ringed."""
    style.apply()
    kinds = list(dict.fromkeys(k for p in profiles.values() for k in p["kind"]))
    fig, axes = plt.subplots(
        1, len(kinds), figsize=(style.PAGE_WIDTH, 2.3), sharey=True, layout="constrained", squeeze=False
    )
    for ax, kind in zip(axes[0], kinds, strict=True):
        for label, profile in profiles.items():
            rows = profile[profile["kind"] == kind].sort_values("depth")
            (line,) = ax.plot(rows["depth"], rows["share"], marker=".", ms=3, lw=1, label=label)
            ringed = rows[rows["player"].isin((cornerstones or {}).get(label, ()))]
            ax.plot(ringed["depth"], ringed["share"], "o", ms=7, mfc="none", color=line.get_color())
        ax.axhline(1, color="0.6", lw=0.6, ls=":")
        ax.set_xlabel("relative depth (block + 0.5) / blocks")
        ax.set_title(kind)
    axes[0, 0].set_ylabel("Shapley value / even share")
    axes[0, 0].legend(fontsize=6, frameon=False)
    fig.suptitle(title, fontsize=8)
    return fig
