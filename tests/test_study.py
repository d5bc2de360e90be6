"""The study runner: grid expansion and its errors, resume, failures that do not stop the grid,
--dry-run, and the figures notebook last. Throwaway notebooks, no model (about 1 s per notebook run)."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest
import yaml

from lsi.cli import main
from lsi.store import store_dir
from lsi.study import PARAMETERS, is_done, load_grid, run_grid

# The cell notebook logs each run to runs.log; it fails on task "bad" until a file "fixed" exists.
CELL_CODE = """\
from pathlib import Path

if task == "bad" and not Path("fixed").exists():
    raise ValueError("bad task on purpose")
log = Path(results_dir) / "runs.log"
log.parent.mkdir(parents=True, exist_ok=True)
with log.open("a") as f:
    f.write(f"{model} {task} {granularity} {limit}\\n")
"""
# The figures notebook, as a jupytext percent script only: the runner must convert it.
FIGURES_SCRIPT = """\
# %% tags=["parameters"]
results_dir = "nowhere"
figures_dir = "nowhere"

# %%
import json
from pathlib import Path

runs = (Path(results_dir) / "runs.log").read_text().splitlines()
Path(figures_dir).mkdir(parents=True, exist_ok=True)
(Path(figures_dir) / "drawn.json").write_text(json.dumps({"results_dir": results_dir, "runs": runs}))
"""


def _notebook(path, code):
    nb = nbformat.v4.new_notebook()
    parameters = nbformat.v4.new_code_cell("\n".join(f"{k} = {v!r}" for k, v in PARAMETERS.items()))
    parameters.metadata["tags"] = ["parameters"]
    nb.cells = [parameters, nbformat.v4.new_code_cell(code)]
    nbformat.write(nb, path)


@pytest.fixture
def project(tmp_path):
    """A project root (it holds pyproject.toml) with a cell notebook, a figures script, and studies/."""
    (tmp_path / "pyproject.toml").write_text("")
    (tmp_path / "nb").mkdir()
    _notebook(tmp_path / "nb" / "cell.ipynb", CELL_CODE)
    (tmp_path / "nb" / "figs.py").write_text(FIGURES_SCRIPT)
    (tmp_path / "studies").mkdir()
    return tmp_path


def _grid(root, **grid):
    base = {
        "notebook": "nb/cell.ipynb",
        "figures_notebook": "nb/figs.ipynb",
        "figures_dir": "figs",
        "defaults": {"limit": 8, "results_dir": "res"},
    }
    path = root / "studies" / "grid.yaml"
    path.write_text(yaml.safe_dump(base | grid))
    return path


def _runs(root):
    log = root / "res" / "runs.log"
    return log.read_text().splitlines() if log.exists() else []


def test_grid_expands_models_tasks_settings_with_per_setting_filters(project):
    path = _grid(
        project,
        models=["m1", "m2"],
        tasks=["t1", "t2"],
        settings=[
            {"granularity": "sublayer"},
            {"granularity": "block", "models": ["m1"], "seed": 3},
            {"estimator": "kernelshap", "models": ["m2"], "tasks": ["t2"]},
        ],
    )
    study = load_grid(path)
    assert study.root == project
    got = [(c.parameters["model"], c.parameters["task"], c.parameters["granularity"]) for c in study.cells]
    assert got == [
        ("m1", "t1", "sublayer"),
        ("m1", "t1", "block"),
        ("m1", "t2", "sublayer"),
        ("m1", "t2", "block"),
        ("m2", "t1", "sublayer"),
        ("m2", "t2", "sublayer"),
        ("m2", "t2", "sublayer"),
    ]
    assert study.cells[-1].parameters["estimator"] == "kernelshap"
    cell = study.cells[1]
    assert list(cell.parameters) == list(PARAMETERS)
    assert cell.parameters == PARAMETERS | {
        "model": "m1",
        "task": "t1",
        "granularity": "block",
        "seed": 3,
        "limit": 8,
        "results_dir": "res",
    }
    store = store_dir(project / "res", "m1", "t1", "block", "bfloat16", 8)
    assert cell.output == store / "cell-window-score-bNone-s3.ipynb"


def test_paper_and_smoke_grids_load():
    studies = Path(__file__).resolve().parents[1] / "studies"
    paper = load_grid(studies / "paper.yaml")
    # sublayer window + kernelshap per model; smollm2 blocks; four KernelSHAP references on ARC-Easy
    assert len(paper.cells) == 3 * 6 * 2 + 6 + 4
    assert {c.parameters["granularity"] for c in paper.cells if c.parameters["model"] != "smollm2-135m"} == {
        "sublayer"
    }
    assert all(c.parameters["limit"] == 200 and c.parameters["dtype"] == "bfloat16" for c in paper.cells)
    hub = load_grid(studies / "paper-hub.yaml")  # the paper's own models: loads offline, runs with internet
    assert len(hub.cells) == 3 * 6 + 6 and {c.parameters["limit"] for c in hub.cells} == {1000}
    assert {(c.parameters["model"], c.parameters["dtype"]) for c in hub.cells} == {
        ("meta-llama/Meta-Llama-3-8B", "float32"),
        ("mistralai/Mixtral-8x7B-v0.1", "bfloat16"),
        ("meta-llama/Meta-Llama-3-70B", "bfloat16"),
    }
    (seventy,) = {
        (c.parameters["backend"], c.parameters["gpus_per_worker"]) for c in hub.cells if "70B" in c.label
    }
    assert seventy == ("ray", 2)  # as the paper ran it: bfloat16, two 80 GB GPUs per worker
    smoke = load_grid(studies / "smoke.yaml")
    assert smoke.cells and all(c.parameters["limit"] == 8 for c in smoke.cells)


@pytest.mark.parametrize(
    ("grid", "message"),
    [
        ({"modles": ["m"]}, r"unknown key 'modles' in the grid; allowed: notebook, .*settings"),
        ({"defaults": {"limt": 8}}, r"unknown key 'limt' in defaults; allowed: granularity, .*bootstrap"),
        ({"settings": [{}, {"sed": 1}]}, r"unknown key 'sed' in setting 2; allowed: .*seed.*, models, tasks"),
        ({"settings": [{"models": ["m9"]}]}, r"setting 1 restricts to models not in the grid: m9"),
        ({"settings": [{}, {"tasks": ["t9"]}]}, r"setting 2 restricts to tasks not in the grid: t9"),
        ({"settings": [{"granularity": "layer"}]}, r"granularity must be one of block, sublayer"),
        ({"settings": [{"limit": 0}]}, r"limit must be an integer >= 1"),
        ({"settings": [{"estimator": "windw"}]}, r"unknown estimator 'windw'"),
        ({"tasks": []}, r"tasks in the grid must be a non-empty list"),
        ({"settings": [{"max_removed": 2}, {"max_removed": 3}]}, r"differ only in max_removed"),
    ],
)
def test_bad_grids_name_the_problem(project, grid, message):
    path = _grid(project, **({"models": ["m"], "tasks": ["t"]} | grid))
    with pytest.raises(ValueError, match=message):
        load_grid(path)


def test_cli_turns_a_bad_grid_into_one_line(project, capsys):
    path = _grid(project, models=["m"], tasks=["t"], colour="red")
    assert main(["study", str(path)]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("lsi: error: ") and "'colour'" in err and "\n" not in err


def test_dry_run_runs_nothing(project, capsys):
    path = _grid(project, models=["m"], tasks=["t1", "t2"])
    assert main(["study", str(path), "--dry-run"]) == 0
    out = capsys.readouterr().out
    assert "2 cells, 0 done, 2 to run" in out and out.count("  todo  ") == 2 and "figures" in out
    assert not (project / "res").exists() and not (project / "figs").exists()


@pytest.mark.slow  # runs notebooks with papermill
def test_failures_do_not_stop_the_grid_and_a_rerun_resumes(project, capsys):
    path = _grid(project, models=["m"], tasks=["t1", "bad", "t2"])
    study = load_grid(path)
    first = run_grid(study, progress=False)
    assert [o.status for o in first.cells] == ["ran", "failed", "ran"]
    assert first.exit_code == 1
    assert _runs(project) == ["m t1 sublayer 8", "m t2 sublayer 8"]
    failed = first.failed[0]
    assert failed.error == "ValueError: bad task on purpose"
    assert failed.output.exists() and not is_done(study.cells[1])
    summary = first.summary()
    assert "2 ran, 0 skipped (done), 1 failed" in summary
    assert "FAILED m | bad |" in summary and "bad task on purpose" in summary
    assert "partial notebook:" in summary
    # The figures notebook ran once, last (it saw both finished cells), with the grid's folders.
    assert [o.status for o in first.figures] == ["ran"]
    drawn = json.loads((project / "figs" / "drawn.json").read_text())
    assert drawn == {"results_dir": "res", "runs": ["m t1 sublayer 8", "m t2 sublayer 8"]}
    figures_output = nbformat.read(project / "res" / "notebooks" / "figs.ipynb", as_version=4)
    assert figures_output.metadata.papermill.parameters == {"results_dir": "res", "figures_dir": "figs"}

    # The dry run now knows which cells are done.
    assert main(["study", str(path), "--dry-run", "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "3 cells, 2 done, 1 to run" in out and "  todo  m | bad |" in out

    # Second run: the done cells are skipped (not re-executed), the failed one reruns and now passes.
    (project / "fixed").write_text("")
    assert main(["study", str(path), "--no-figures"]) == 0
    out = capsys.readouterr().out
    assert "1 ran, 2 skipped (done), 0 failed" in out and "not drawn (--no-figures)" in out
    assert _runs(project) == ["m t1 sublayer 8", "m t2 sublayer 8", "m bad sublayer 8"]
    assert all(is_done(c) for c in study.cells)


@pytest.mark.slow  # runs notebooks with papermill
def test_changed_parameters_or_force_rerun_a_done_cell(project):
    path = _grid(project, models=["m"], tasks=["t1"])
    assert run_grid(path, figures=False, progress=False).exit_code == 0
    (cell,) = load_grid(path).cells
    assert is_done(cell)
    cell.parameters["bootstrap"] = 7  # same output notebook, other parameters: not done
    assert not is_done(cell)
    forced = run_grid(path, force=True, figures=False, progress=False)
    assert [o.status for o in forced.cells] == ["ran"] and len(_runs(project)) == 2


@pytest.mark.slow  # runs notebooks with papermill
def test_parameter_added_later_at_its_default_keeps_cells_done(project):
    """A run made before a parameter existed counts as done when the grid asks for its default."""
    path = _grid(project, models=["m"], tasks=["t1"])
    run_grid(path, figures=False, progress=False)
    cell = load_grid(path).cells[0]
    nb = nbformat.read(cell.output, as_version=4)
    del nb.metadata.papermill.parameters["removal_curves"]  # as an older runner recorded it
    nbformat.write(nb, cell.output)
    assert is_done(cell)
    cell.parameters["removal_curves"] = True  # not the default: the older run did not do that
    assert not is_done(cell)
