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
# # Layer importance of one model on one task
#
# Runs, or resumes, one (model, task) study: single-player ablation with bootstrap intervals and
# cornerstone detection, then Shapley values by the chosen estimator. Everything scored lands in the
# score store under `results_dir` (the estimate next to it), so a rerun only scores what is missing and
# `02_paper_figures` can redraw everything without a model.
#
# Batch: `papermill notebooks/01_layer_importance.ipynb out.ipynb -p model smollm2-135m -p task boolq`,
# or a whole grid with `lsi study studies/paper.yaml`.

# %% tags=["parameters"]
model = "smollm2-135m"  # embedded name, .gguf file, checkpoint folder or hub id
task = "arc_easy"  # lm-eval task name (`lsi tasks`)
granularity = "sublayer"  # "block", or "sublayer" (attention and FFN/MoE, the paper's players)
estimator = "window"  # window (the paper's), exact, permutation, kernelshap, svarm, ...
budget = None  # distinct coalitions for sampling estimators; None: the window estimator's cost
max_removed = 3  # window: the longest removed window (N_lim)
limit = 100  # first N documents (None: all)
device = "cpu"
dtype = "bfloat16"
batch_size = 64  # most packed rows per forward batch
results_dir = "results"
seed = 0
value = "score"  # "score": the task's metric; "margin": the gold choice's log-prob margin
bootstrap = 200  # document resamples for the 95% intervals
removal_curves = False  # also remove players one by one (n more coalitions per order)

# %%
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from lsi import figures, style
from lsi.ablation import single_ablation
from lsi.analysis import (
    ablation_table,
    cornerstones,
    cumulative_removal,
    removal_orders,
    summary_statistics,
)
from lsi.estimators import estimate, estimator_options, resolve_budget
from lsi.layer_game import LayerGame
from lsi.models import load_model
from lsi.results import save_estimate, save_removal_curves
from lsi.scoring import Scorer

# %%
lm = load_model(model, dtype=dtype, device=device)
scorer = Scorer(lm, task, limit, granularity, Path(results_dir), max_rows=batch_size)
n = len(scorer.players)
label = (
    f"{lm.identity.title} | {task} ({scorer.task.split}, {len(scorer.docs)} docs, {scorer.task.metric}) "
    f"| {dtype}"
)
print(label)
print(f"{n} players: {scorer.players[0].name} .. {scorer.players[-1].name}; store: {scorer.store.path}")

# %% [markdown]
# ## Single-player ablation and cornerstones

# %%
single_ablation(scorer)
flagged = cornerstones(ablation_table(scorer.store))
if not flagged.attrs["above_chance"]:
    print("WARNING: the full model is not clearly above chance here; its ablations measure noise.")
print(f"full {flagged.attrs['full']:.4f}, chance {flagged.attrs['chance']:.4f}")
print("cornerstone rule:", flagged.attrs["rule_text"])
display(flagged.sort_values("drop", ascending=False).head(10).round(4))
fig = figures.ablation_grid(
    {task: flagged}, f"Single-player ablation: {lm.identity.title} | {dtype}", ncols=1
)
display(fig)
plt.close(fig)

# %% [markdown]
# ## Shapley values
# A sampling estimator with no budget gets the window estimator's cost, so the two compare at equal
# cost. The estimate is written next to the store.

# %%
options = estimator_options(estimator, max_removed)
budget = resolve_budget(estimator, budget, n, max_removed)
game = LayerGame(scorer.store, value, scorer=scorer)
shapley = estimate(game, estimator, budget, seed, bootstrap, **options)
config = {
    "model": model,
    "task": task,
    "limit": limit,
    "dtype": dtype,
    "granularity": granularity,
    "value": value,
    "restricted_to": None,
}
path, _ = save_estimate(scorer.store, shapley, config)
print(f"{estimator}: {shapley.evaluations} coalitions; efficiency {shapley.efficiency}; written to {path}")
display(shapley.table().sort_values("rank").head(10).round(4))

# %%
fig, ax = plt.subplots(figsize=(style.PAGE_WIDTH, 2.2), constrained_layout=True)
figures.shapley_bars(ax, shapley.players, shapley.values, shapley.ci_low, shapley.ci_high)
ax.set_ylabel(f"Shapley value ({value})")
noise = "" if flagged.attrs["above_chance"] else " | full model NOT above chance"
ax.set_title(f"{estimator} estimate, {shapley.evaluations} coalitions | {label}{noise}")
display(fig)
plt.close(fig)
stats = summary_statistics(flagged, shapley.values if value == "score" else None)
stats

# %% [markdown]
# ## Cumulative removal (optional)
# Remove players one at a time, least important first, most important first, and in random order,
# ranked by this estimate. The curves are written next to the store for `02_paper_figures`.

# %%
if removal_curves:
    orders = removal_orders(shapley.values, list(shapley.players), seed)
    curves = {name: cumulative_removal(scorer, order) for name, order in orders.items()}
    print("curves written to", save_removal_curves(scorer.store, curves, estimator, value))
    fig = figures.removal_curves(curves, flagged.attrs["full"], flagged.attrs["chance"], label)
    display(fig)
    plt.close(fig)
