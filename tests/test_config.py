"""The one typed configuration: the command line, the study grids and the notebooks' parameters cells
all come from `RunConfig`, and bad values are one clear line."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import jupytext
import pytest

from lsi.choices import Granularity, Metric
from lsi.cli import build_parser
from lsi.config import DEFAULTS, RunConfig, field_names
from lsi.errors import UserError
from lsi.study import PARAMETERS

ROOT = Path(__file__).resolve().parent.parent
# Parameters a notebook may have besides the configuration's fields (where it draws, what it pools).
NOTEBOOK_ONLY = {"figures_dir", "resamples", "shapley_estimator"}


def _parameters(notebook: str) -> dict[str, object]:
    """The names and literal values of a notebook source's parameters cell, in order."""
    cells = jupytext.read(ROOT / "notebooks" / notebook).cells
    (cell,) = [c for c in cells if "parameters" in c.metadata.get("tags", ())]
    return {
        node.targets[0].id: ast.literal_eval(node.value)
        for node in ast.parse(cell.source).body
        if isinstance(node, ast.Assign)
    }


def test_the_study_notebook_takes_exactly_the_configuration() -> None:
    assert _parameters("01_layer_importance.py") == DEFAULTS.parameters() == PARAMETERS
    assert list(_parameters("01_layer_importance.py")) == field_names()


@pytest.mark.parametrize("notebook", ["00_quickstart.py", "02_paper_figures.py"])
def test_other_notebooks_take_valid_configuration_fields(notebook: str) -> None:
    values = _parameters(notebook)
    assert set(values) - NOTEBOOK_ONLY <= set(field_names())
    RunConfig.from_parameters(values)  # their defaults are valid values of the configuration


def test_run_offers_every_field_with_the_configuration_defaults() -> None:
    parser = build_parser()
    args = parser.parse_args(["run"])
    assert {name: getattr(args, name) for name in field_names()} == DEFAULTS.parameters()
    args = parser.parse_args(["run", "--granularity", "block", "--limit", "7", "--removal-curves"])
    config = RunConfig.from_parameters(vars(args))
    assert (config.granularity, config.limit, config.removal_curves) == (Granularity.BLOCK, 7, True)
    assert config.store_path() == Path("results/scores/smollm2-135m/arc_easy/block-bfloat16-limit7")


def test_choices_come_from_the_enums(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        build_parser().parse_args(["run", "--dtype", "float8"])
    assert "(choose from 'float32', 'bfloat16', 'float16', 'auto')" in capsys.readouterr().err


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"limit": 0}, "limit must be an integer >= 1, got 0"),
        ({"granularity": "layer"}, "granularity must be one of block, sublayer, got 'layer'"),
        ({"value": "loss"}, "value must be one of score, margin"),
        ({"estimator": "windw"}, "unknown estimator 'windw'"),
        ({"removal_curves": "yes"}, "removal_curves must be true or false"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"results_dir": ""}, "results_dir must be a non-empty string"),
        ({"colour": "red"}, "unknown option(s) 'colour'"),
    ],
)
def test_bad_values_name_the_field(values: dict, message: str) -> None:
    with pytest.raises(UserError, match=message.replace("(", r"\(").replace(")", r"\)")):
        RunConfig.from_mapping(values)


def test_metric_names_as_lm_eval_does() -> None:
    assert str(Metric.parse("exact_match,remove_whitespace")) == "exact_match,remove_whitespace"
    assert Metric.parse("acc") == Metric("acc", "none")
    with pytest.raises(UserError, match="metric,filter"):
        Metric.parse(",none")


def test_a_bug_keeps_its_traceback() -> None:
    """Only a UserError becomes one line and exit 2; an internal KeyError is a bug: exit 1, traceback."""
    code = (
        "import sys, lsi.cli as cli\n"
        "cli.COMMANDS['tasks'] = lambda args: {}['missing']\n"
        "sys.exit(cli.main(['tasks']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert proc.returncode == 1
    assert "Traceback (most recent call last)" in proc.stderr and "KeyError: 'missing'" in proc.stderr


def test_a_user_error_is_one_line_and_exit_2() -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "lsi.cli", "scores", "--results", "/nonexistent"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 2 and proc.stderr.count("\n") == 1 and "no score store" in proc.stderr


def test_lm_eval_spellings_are_accepted():
    """lm-eval users type --include_path and --confirm_run_unsafe_code: both spellings set one field."""
    from lsi.cli import build_parser

    parsed = build_parser().parse_args(["score", "--include_path", "tasks", "--confirm_run_unsafe_code"])
    assert (parsed.include_path, parsed.confirm_run_unsafe_code) == ("tasks", True)
    parsed = build_parser().parse_args(["score", "--include-path", "tasks"])
    assert (parsed.include_path, parsed.confirm_run_unsafe_code) == ("tasks", False)
