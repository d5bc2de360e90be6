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
limit = None  # first N documents (None: all)
dtype = "bfloat16"
results_dir = "results"
include_path = None  # folders of your own lm-eval task YAMLs, ':'-separated (lm-eval's --include_path)
value = "score"  # "score": the task's metric; "margin": the gold choice's log-prob margin
metric = None  # the value's metric: METRIC[,FILTER] as lm-eval names it, or gold_loglik (None: the task's)
allow_nonfinite = False  # use coalitions with non-finite log-likelihoods (left out by default)
estimator = "window"  # window (the paper's), exact, permutation, kernelshap, svarm, ...
budget = None  # distinct coalitions for sampling estimators; None: the window estimator's cost
max_removed = 3  # window: the longest removed window (N_lim)
seed = 0
bootstrap = 200  # document resamples for the 95% intervals
removal_curves = False  # also remove players one by one (n more coalitions per order)
device = "cpu"
batch_size = 64  # most packed rows per forward batch
batch_tokens = 4096  # most tokens (with padding) per forward batch
threads = None  # torch CPU threads (None: torch's choice; a Ray CPU worker's: 1)
trust_remote_code = False  # run the Python code a checkpoint ships (auto_map); read it first
confirm_run_unsafe_code = False  # run a task marked unsafe_code (it executes code the model writes)
backend = "local"  # "local": this kernel runs the model; "ray": Ray workers do (see address, workers)
address = None  # ray: "auto" or host:port of a cluster (None: start a local instance)
workers = None  # ray: number of workers (None: one per GPU, else the CPUs / threads)
gpus_per_worker = None  # ray: GPUs per worker; more than 1 splits the model over them

# %%
from IPython.display import display

from lsi.config import RunConfig
from lsi.pipeline import run_cell

# %%
cell = run_cell(RunConfig.from_parameters(globals()))
players = cell.store.meta["players"]
print(cell.label)
print(f"{len(players)} players: {players[0]} .. {players[-1]}; store: {cell.store.path}")
print("model loaded:", cell.model_loaded, "(False: every coalition came from the store)")

# %% [markdown]
# ## Single-player ablation and cornerstones

# %%
flagged = cell.ablation
if not flagged.attrs["above_chance"]:
    print("WARNING: the full model is not clearly above chance here; its ablations measure noise.")
print(f"full {flagged.attrs['full']:.4f}, chance {flagged.attrs['chance']:.4f}")
print("cornerstone rule:", flagged.attrs["rule_text"])
display(flagged.sort_values("drop", ascending=False).head(10).round(4))
display(cell.ablation_figure())

# %% [markdown]
# ## Shapley values
# A sampling estimator with no budget gets the window estimator's cost, so the two compare at equal
# cost. The estimate is written next to the store.

# %%
shapley = cell.estimate
print(f"{shapley.estimator}: {shapley.evaluations} coalitions; efficiency {shapley.efficiency}")
print("written:", *cell.files)
display(shapley.table().sort_values("rank").head(10).round(4))
display(cell.shapley_figure())
cell.statistics

# %% [markdown]
# ## Cumulative removal (optional)
# With `removal_curves`, players were removed one at a time, least important first, most important
# first, and in random order, ranked by this estimate. The curves are written next to the store for
# `02_paper_figures`.

# %%
if cell.curves:
    from lsi import figures

    display(figures.removal_curves(cell.curves, flagged.attrs["full"], flagged.attrs["chance"], cell.label))
