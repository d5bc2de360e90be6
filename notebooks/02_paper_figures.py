# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#       jupytext_version: 1.19.6
#   kernelspec:
#     display_name: Python 3
#     language: python
#     name: python3
# ---

# %% [markdown]
# # The paper's figures and tables, from cached scores alone
#
# Reads only `results_dir` (score stores, their Shapley estimates, the estimator benchmark): no model
# is loaded and nothing is scored. It redraws, for whatever results exist:
#
# 1. the single-layer ablation figure per model (bars hanging from the original score, attention red,
#    FFN blue, dashed original and dotted random lines);
# 2. the Shapley grid, models in rows and tasks in columns;
# 3. the cornerstone statistics (per model and task, and averaged over the tasks above chance);
# 4. the estimator comparison against exact values, and how the study's own estimates agree;
# 5. the dense-versus-MoE comparison, when an MoE model has results;
# 6. cumulative removal curves and 7. bfloat16-against-float32 agreement, where those were run;
# 8.-11. limits, pruning and pair interactions; 12. the window estimate against the walk references;
# 13. recall and perplexity against multiple choice; 14. one family at two sizes.
#
# Figures never mix limits, dtypes or granularities: each configuration gets its own file, named after it
# (section 13 sets tasks of different limits and dtypes side by side; each row names its own).
# Figures go to `figures_dir` as PDF and PNG, tables as CSV and Markdown.

# %% tags=["parameters"]
results_dir = "results"
figures_dir = "figures"
resamples = 1000  # bootstrap resamples of the ablation intervals
shapley_estimator = "window"  # whose Shapley values the mass shares use

# %%
from itertools import product
from pathlib import Path

import matplotlib.pyplot as plt
import pandas as pd
from IPython.display import Markdown, display

from lsi import figures, style
from lsi.analysis import (
    ablation_table,
    cornerstone_report,
    cornerstones,
    dtype_agreement,
    estimate_agreement,
    estimator_summary,
    full_model_table,
    latest_estimate,
    limit_agreement,
)
from lsi.estimators import ESTIMATORS, estimate
from lsi.importance import store_title
from lsi.interactions import by_distance, pairwise_interactions, reference_interactions, walk_tables
from lsi.layer_game import LayerGame
from lsi.pruning_curves import best_at, best_within_parameters
from lsi.references import against_reference, load_reference
from lsi.report import (
    CONFIGURATION,
    cornerstone_statistics,
    dense_vs_moe,
    recall_against_choice,
    recall_shapley,
    recall_summary,
    shapley_grids,
    task_order,
)
from lsi.results import estimate_index, store_index, write_table
from lsi.scale import compare_sizes, family_pairs
from lsi.store import ScoreStore
from lsi.values import chance_level

results, out = Path(results_dir), Path(figures_dir)
written: list[Path] = []


def show_and_save(fig: plt.Figure, stem: str) -> None:
    display(fig)
    written.extend(style.save(fig, out, stem))


def show_table(frame: pd.DataFrame, stem: str, if_empty: str = "nothing to show") -> None:
    if frame.empty:
        print(if_empty)
        return
    display(Markdown(frame.to_markdown(index=False, floatfmt=".3g")))
    written.extend(write_table(frame, out, stem))


stores = store_index(results)
estimates = estimate_index(results)
if stores.empty:
    raise SystemExit(f"no score stores under {results}: run a study first (notebook 01 or `lsi study`)")
# Every store, as a Markdown table: pandas would elide the middle rows of a long frame.
display(Markdown(stores.drop(columns=["path", "title"]).to_markdown(index=False)))

# %% [markdown]
# ## 1. Single-layer ablation, one figure per model and configuration

# %%
ablated = stores[stores["has_ablation"]]
ablations = {path: ablation_table(ScoreStore.open(path), resamples) for path in ablated["path"]}
for (model, granularity, dtype, limit), group in ablated.groupby(CONFIGURATION, dropna=False, sort=False):
    by_task = group.set_index("task")
    tables = {task: cornerstones(ablations[by_task.loc[task, "path"]]) for task in task_order(group["task"])}
    title = f"Single-player ablation: {group['title'].iloc[0]} | {granularity} | {dtype} | limit {limit}"
    show_and_save(
        figures.ablation_grid(tables, title), f"ablation-{model}-{granularity}-{dtype}-limit{limit}"
    )

# %% [markdown]
# The cornerstone report (section 3) also says which (model, task) pairs are not clearly above chance;
# their panels are flagged in the Shapley grid.

# %%
report = cornerstone_report(stores, estimates, estimator=shapley_estimator, ablations=ablations)

# %% [markdown]
# ## 2. Shapley values: models x tasks
# One grid per (granularity, dtype, limit, estimator, value); the latest all-player estimate of each
# (model, task) cell.

# %%
if estimates.empty:
    print("no Shapley estimates yet")
for title, stem, latest in shapley_grids(estimates, report):
    show_and_save(figures.shapley_grid(latest, title), stem)

# %% [markdown]
# ## 3. Cornerstone statistics
# Per (model, task): the cornerstones by the stated rule, the mean drop when one is removed against
# any other player, and the share of the positive Shapley mass they hold. Then the mean over tasks,
# as the paper reports it, but over the tasks where the full model is clearly above chance only: on
# the others an ablation measures noise.

# %%
print("rule:", report.attrs["rule"])
report["cornerstones"] = report["cornerstones"].map(", ".join)
show_table(report, "cornerstones")
show_table(cornerstone_statistics(report), "cornerstone-statistics")

# %% [markdown]
# ## 4. Estimators against exact values and against walk references
# From `benchmarks/bench_estimators.py` runs on fully enumerated real games, and (tables `large-*`)
# from `benchmarks/bench_references.py` runs on games too large to enumerate, measured against the
# walk references of section 12; there `spearman_corrected` allows for the reference's own noise.

# %%
for csv in sorted((results / "estimator_benchmark").glob("*.csv")):
    bench = pd.read_csv(csv)
    header = csv.with_suffix(".md").read_text().split("\n\n")[0]  # the benchmark's title lines
    show_and_save(figures.estimator_error(bench, header), f"estimators-{csv.stem}")
    show_table(estimator_summary(bench), f"estimators-{csv.stem}")

# %% [markdown]
# The study's own estimates have no exact reference (2^60 coalitions), so they are compared with each
# other: every pair of all-player estimates of one store, and the mean over seeds where one sampler ran
# with several seeds at the same budget.

# %%
show_table(estimate_agreement(estimates), "estimate-agreement", "no store has two estimates yet")

# %% [markdown]
# ## 5. Dense versus mixture-of-experts
# The paper finds the MoE model leans less on any single cornerstone. Drawn only when both kinds have
# results in the same configuration.

# %%
show_table(dense_vs_moe(report), "dense-vs-moe", "no MoE model has results yet: nothing to compare")

# %% [markdown]
# ## 6. How many players can go: cumulative removal
# Where a study ran with `removal_curves=True`: players removed one by one in the order an estimate
# ranks them (least important first, most important first) and in random order.

# %%
for csv in sorted(results.glob("scores/*/*/*/removal/*.csv")):
    store = stores.set_index("path").loc[csv.parent.parent]
    table = ablations[csv.parent.parent]
    curves = {name: curve for name, curve in pd.read_csv(csv).groupby("order", sort=False)}
    title = (
        f"{store['title']} | {store['task']} ({store['metric']}, {store['n_docs']} docs)\n"
        f"{store['granularity']} | {store['dtype']} | orders by {csv.stem}"
    )
    fig = figures.removal_curves(curves, table.attrs["full"], table.attrs["chance"], title)
    show_and_save(fig, f"removal-{store['model']}-{store['task']}-{csv.parent.parent.name}-{csv.stem}")

# %% [markdown]
# ## 7. bfloat16 against float32
# The study runs in bfloat16; a float32 store of the same (model, task, granularity, limit) checks it:
# documents whose correctness flips per shared coalition.

# %%
show_table(dtype_agreement(stores), "dtype-agreement", "no configuration has a float32 twin of a store yet")

# %% [markdown]
# ## 8. A later stage against an earlier one
# The study raises `limit` in stages, and a stage may be scored on another machine (a lent GPU). On
# the documents both stages hold, the answers per shared coalition should agree up to bfloat16's
# near ties.

# %%
show_table(limit_agreement(stores), "limit-agreement", "no configuration has stores at two limits yet")

# %% [markdown]
# ## 9. From importance to pruning
# Where `lsi importance` and `lsi pruning-curves` ran on a store (docs/pruning.md): every measure per
# player with their rank correlations, and the task score and perplexity as players are removed in
# each measure's order (by players removed, and by the share of the players' parameters removed, since
# an attention sub-layer is a fraction of an FFN); the tables give each curve's score at 25% of the
# players removed, and at its last step within 25% of their parameters.

# %%
for csv in sorted(results.glob("scores/*/*/*/measures/importance-*[!s].csv")):
    meta = ScoreStore.open(csv.parent.parent).meta
    stem = f"{meta['model']['name']}-{meta['task']}-{csv.parent.parent.name}"
    correlations = pd.read_csv(csv.with_name(f"{csv.stem}-correlations.csv"))
    title = f"{store_title(meta, meta['granularity'])} | {meta['dtype']}"
    show_and_save(figures.importance_measures(pd.read_csv(csv), correlations, title), f"importance-{stem}")
    show_table(correlations, f"importance-correlations-{stem}")
pruning = {"pruning-at-25-percent": [], "pruning-at-25-percent-of-parameters": []}
for csv in sorted(results.glob("scores/*/*/*/pruning/curves.csv")):
    meta = ScoreStore.open(csv.parent.parent).meta
    stem = f"{meta['model']['name']}-{meta['task']}-{csv.parent.parent.name}"
    curves = pd.read_csv(csv)
    title = f"{store_title(meta, meta['granularity'])} | {meta['dtype']}"
    show_and_save(figures.pruning_curves(curves, chance_level(meta, None), title), f"pruning-{stem}")
    cell = {"model": meta["model"]["name"], "task": meta["task"], "granularity": meta["granularity"]}
    bests = best_at(curves, len(meta["players"])), best_within_parameters(curves)
    for rows, best in zip(pruning.values(), bests, strict=True):
        rows.append(pd.concat([pd.DataFrame(cell, index=best.index), best.drop(columns="removed")], axis=1))
for name, rows in pruning.items():
    show_table(
        pd.concat(rows) if rows else pd.DataFrame(),
        name,
        "no store has pruning curves yet (`make pruning-curves`)",
    )

# %% [markdown]
# ## 10. Pairwise interactions on the enumerated games
# The estimator benchmark's two 10-player games (every other player kept) hold all 2^10 coalitions, so
# their order-2 Shapley interactions (k-SII) are exact. A positive pair is complementary: the pair is
# worth more than its two players apart. A negative pair is redundant. The distance table asks whether
# the pairs that interact are neighbours in forward order.

# %%
ENUMERATED = {"early": ("attn.0", 10), "middle": ("attn.12", 10)}  # first player, players
enumerated = results / "scores/smollm2-135m/arc_easy/sublayer-bfloat16-limit40"
distances = []
for (game_name, (first, n)), value in product(ENUMERATED.items(), ("margin", "score")):
    if not (enumerated / "meta.json").exists():
        print(f"{enumerated} is absent: no enumerated game to read")
        break
    parent = LayerGame(ScoreStore.open(enumerated), value)
    start = parent.names.index(first)
    game = parent.restricted(list(range(start, start + n)))
    main, matrix = pairwise_interactions(game, "k-SII")
    title = f"SmolLM2 | arc_easy (40 docs) | {game_name} game ({first} ..) | {value} | exact k-SII"
    show_and_save(figures.interaction_heatmap(main, matrix, title), f"interactions-{game_name}-{value}")
    distances.append(by_distance(matrix).assign(game=game_name, value=value))
    show_table(matrix.reset_index(names="player"), f"interactions-{game_name}-{value}")
show_table(pd.concat(distances) if distances else pd.DataFrame(), "interactions-by-distance")

# %% [markdown]
# ## 11. Pairwise interactions on a large game (60 sub-layers), from the reference walks
# SmolLM2's 60-sub-layer ARC-Easy game cannot be enumerated, but its store holds the antithetic
# permutation walks of its reference Shapley values. Order-2 FSII is fitted to those coalitions alone
# (the Shapley-kernel regression, each visit weighted by kernel / visits per walk), with standard errors
# over walk pairs (jackknife) and over documents; a pair is significant under Benjamini-Hochberg at 5%.
# About 20 s per value on 2 cores.

# %%
reference_file = results / "references/smollm2-arc_easy-sublayer-margin.json"
for value in ("margin", "score"):
    if not reference_file.exists():
        print(f"{reference_file} is absent: no large game to read")
        break
    fit, names = reference_interactions(reference_file, value, root=results.parent)
    main = pd.Series(fit.main, index=names, name=f"FSII, {value}")
    matrix = pd.DataFrame(fit.pairs, index=names, columns=names)
    title = (
        f"SmolLM2 | arc_easy (200 docs) | 60 sub-layers | {value} | FSII from "
        f"{fit.info['rows']:,} walk coalitions ({fit.info['clusters']} walk pairs)"
    )
    show_and_save(figures.interaction_heatmap(main, matrix, title), f"interactions-large-sublayer-{value}")
    for name, table in walk_tables(fit, names).items():
        show_table(table, f"interactions-large-sublayer-{value}-{name}")

# %% [markdown]
# ## 12. The window estimate against the walk references (claim 6)
# Each reference in `results/references/` pools the antithetic permutation walks of a game too large
# to enumerate (SmolLM2's 30 blocks and 60 sub-layers on 200 ARC-Easy documents, margin and accuracy).
# The figure sets the paper's window estimate against the reference's values and 95% intervals; the
# table measures it, and the KernelSHAP runs whose coalitions the store holds, against each reference.
# `reliability` is the reference's split-half Spearman stepped up to all its walk pairs: how well a
# second reference of the same size would agree with it. `spearman_corrected` divides the observed
# Spearman by its square root (an estimate of the agreement with a reference of unlimited walks).

# %%
agreement_tables = []
for reference_path in sorted((results / "references").glob("*.json")):
    record, game, ref = load_reference(reference_path, results.parent)
    n, value = game.n_players, record["value"]
    window = estimate(game.restricted(list(range(n))), "window", None, 0, bootstrap=0)
    title = (
        f"SmolLM2 | arc_easy (200 docs) | {n} {'sub-layers' if n > 30 else 'blocks'} | {value} | "
        f"reference: {ref.pairs} walk pairs (reliability {ref.split_half()[1]:.2f})"
    )
    profile = {"window (paper)": window.values}
    figure = figures.reference_profile(
        game.names, ref.values, ref.stderr, profile, title, f"Shapley ({value})"
    )
    show_and_save(figure, f"reference-{reference_path.stem}")
    kernelshap = [ESTIMATORS["window"].min_budget(n, {}), *[360] * 4]
    candidates = [("window", None, 0), *(("kernelshap", b, s) for s, b in enumerate(kernelshap))]
    table = against_reference(game, ref, candidates)
    agreement_tables.append(table.assign(reference=reference_path.stem))
show_table(
    pd.concat(agreement_tables) if agreement_tables else pd.DataFrame(),
    "reference-agreement",
    "no reference in results/references yet (benchmarks/reference_walks.py)",
)

# %% [markdown]
# ## 13. Recall and perplexity against multiple choice
# Where a model has an ablated store of a task without choices (a generative task such as TriviaQA,
# or LAMBADA's perplexity): the share of the gap between the full model and the floor that each single
# removal leaves, for every value the store keeps, beside ARC-Easy and PIQA (the largest ablated store
# of each). The floor is 0 for exact match and accuracy, chance for multiple choice, and the empty
# model's value for a log-likelihood (left out until the empty model is scored). The table lists each
# value's cornerstones, and those whose removal no multiple-choice task counts as a cornerstone.
# Where the same stores have window estimates, two more tables per model: the five players with the
# largest Shapley values of each value, and the Spearman correlation between the values' Shapley
# profiles (do recall, perplexity and multiple choice put the same players first?).

# %%
recall = []
for title, stem, gaps in recall_against_choice(store_index(results, choices_only=False), resamples):
    show_and_save(figures.gap_heatmap(gaps, title), stem)
    recall.append(recall_summary(gaps))
    shapley = recall_shapley(gaps, estimates)
    if shapley.shape[1] > 1:
        show_table(
            pd.DataFrame({value: shapley[value].nlargest(5).index for value in shapley}),
            f"{stem}-shapley-top5",
        )
        spearman = shapley.corr(method="spearman").round(2)
        show_table(spearman.rename_axis("Spearman").reset_index(), f"{stem}-shapley-spearman")
show_table(
    pd.concat(recall) if recall else pd.DataFrame(),
    "recall-cornerstones",
    "no ablated store of a task without choices yet (`make recall`)",
)

# %% [markdown]
# ## 14. One family at two sizes
# Where two models of one family (Qwen2.5-Coder 0.5B and 1.5B) have stores of the same task and
# configuration: on how many tasks each is clearly above chance (every store holding the full model
# counts, ablated or not, and the table after it lists the family's full models). Where both stores
# hold the single-player ablation: the cornerstones and their relative depth, (block + 0.5) / blocks,
# and how little the other removals cost. Where both also have a `shapley_estimator` estimate: how
# much of the positive Shapley mass the cornerstones hold (does importance concentrate with scale?),
# and the correlation of the two profiles along relative depth, the shallower model's interpolated
# onto the deeper one's depths, per kind, with a permutation p-value.

# %%
full_models = full_model_table(stores)
above = full_models.groupby(["model", *CONFIGURATION[1:]], dropna=False)["above_chance"]
above = above.agg(above_chance="sum", tasks="size").reset_index()
rows = report.set_index(["task", *CONFIGURATION])
scale_rows, scale_correlations = [], []
pairs = family_pairs(stores)
for pair in pairs:
    if not all(tuple(s[k] for k in rows.index.names) in rows.index for s in pair):
        continue  # a store without the ablation
    records = [latest_estimate(estimates, s["path"], shapley_estimator, s["metric"]) for s in pair]
    sizes = compare_sizes(pair, records, rows)
    scale_rows += sizes.rows
    if sizes.profiles:
        show_and_save(figures.depth_profiles(sizes.profiles, sizes.title, sizes.cornerstones), sizes.stem)
        scale_correlations.append(sizes.correlation)
show_table(above, "scale-above-chance")
families = {store["family"] for pair in pairs for store in pair}
show_table(full_models[full_models["family"].isin(families)].drop(columns="family"), "scale-full-models")
show_table(pd.DataFrame(scale_rows), "scale-cornerstones", "no family has two ablated sizes yet")
show_table(
    pd.concat(scale_correlations) if scale_correlations else pd.DataFrame(),
    "scale-depth-correlation",
    "no family has two sizes with estimates yet",
)

# %%
print(f"{len(written)} files written to {out}:")
for path in written:
    print(" ", path)
